"""Keras's own layer checks (`run_layer_test`) for the MK embedding tables."""

import numpy as np
import pytest
from absl.testing import parameterized

from keras_mk import _keras_private
from keras_mk import layers

TestCase = _keras_private.layer_test_case()
TOKENS = np.array([[1, 2, 3], [0, 1, 3]], "int32")


class MKEmbeddingKerasTest(TestCase):
    def check(self, cls, init_kwargs, weights, seeds=1, **data):
        """`run_layer_test` in training mode, no masking, no losses."""
        self.run_layer_test(
            cls,
            init_kwargs={**init_kwargs, "seed": 1},
            call_kwargs={"training": True},
            expected_num_trainable_weights=weights,
            expected_num_non_trainable_weights=0,
            expected_num_seed_generators=seeds,
            expected_num_losses=0,
            supports_masking=False,
            **data,
        )

    @parameterized.named_parameters(
        ("expansion_3", 3, 3, 1), ("expansion_1", 1, 1, 0)
    )
    def test_run_layer_test(self, expansion, weights, seeds):
        self.check(
            layers.MKEmbedding,
            {"input_dim": 4, "output_dim": 3, "expansion": expansion},
            weights,
            seeds,
            input_data=TOKENS,
            expected_output_shape=(2, 3, 3),
        )

    @parameterized.named_parameters(("keras", False), ("keras_hub", True))
    def test_run_layer_test_reversible(self, hub):
        cls = layers.MKReversibleEmbedding
        if hub:
            pytest.importorskip("keras_hub")
            from keras_mk.layers import mk_hub_embedding

            cls = mk_hub_embedding.MKHubReversibleEmbedding
        self.check(
            cls,
            {
                "input_dim": 4,
                "output_dim": 3,
                "tie_weights": False,
                "expansion": 2,
            },
            4,
            input_data=TOKENS,
            expected_output_shape=(2, 3, 3),
        )

    def test_run_layer_test_position_embedding(self):
        pytest.importorskip("keras_hub")
        from keras_mk.layers.mk_hub_embedding import MKPositionEmbedding

        self.check(
            MKPositionEmbedding,
            {"sequence_length": 6, "expansion": 3},
            3,
            input_shape=(2, 4, 3),
            expected_output_shape=(2, 4, 3),
        )

"""Keras's own layer checks (`run_layer_test`) for every MK layer."""

import os

import layer_specs
from absl.testing import parameterized

from keras_mk import _keras_private
from keras_mk import layers

TestCase = _keras_private.layer_test_case()

# name, class, arguments beyond its spec's, (input, output) shapes when
# they differ from the spec's. One case per registered MK class, then
# variants of the bias.
CASES = [(cls.__name__, cls, {}, None) for cls in layer_specs.MK_CLASSES] + [
    ("MKDense_expand_bias", layers.MKDense, {"expand_bias": True}, None),
    (
        "MKDense_no_bias",
        layers.MKDense,
        {"use_bias": False},
        ((2, 3, 5), (2, 3, 4)),
    ),
    ("MKEinsumDense_no_bias", layers.MKEinsumDense, {"bias_axes": None}, None),
]
UNIFORM_CASES = [c for c in CASES if c[0] in ("MKDense", "MKConv2D")]


def _arguments(cls, extra, shapes):
    """Init kwargs, input and output shape, trainable weights at e=3."""
    spec = layer_specs.spec(cls)
    in_shape, out_shape = shapes or (spec.input_shape, spec.output_shape)
    bias = bool(spec.bias and extra.get("use_bias", extra.get("bias_axes", 1)))
    # 3 copies of each simulated weight, then one bias or 3 copies of it.
    weights = 3 * len(cls.mk_weights)
    weights += (3 if extra.get("expand_bias") else 1) * bias
    return {**spec.kwargs, **extra}, in_shape, out_shape, weights


class MKLayerKerasTest(TestCase):
    @parameterized.named_parameters(CASES)
    def test_run_layer_test(self, cls, extra, shapes):
        kwargs, in_shape, out_shape, weights = _arguments(cls, extra, shapes)
        self.run_layer_test(
            cls,
            init_kwargs={**kwargs, "expansion": 3, "seed": 1},
            input_shape=in_shape,
            call_kwargs={"training": True},
            expected_output_shape=out_shape,
            expected_num_trainable_weights=weights,
            expected_num_non_trainable_weights=0,
            expected_num_seed_generators=1,
            expected_num_losses=0,
            supports_masking=None,
        )

    @parameterized.named_parameters(UNIFORM_CASES)
    def test_run_layer_test_uniform_and_concentration(self, cls, extra, shapes):
        kwargs, in_shape, out_shape, weights = _arguments(cls, extra, shapes)
        # Uniform p is deterministic: no random state.
        for more, seeds in (
            ({"probabilities": "uniform"}, 0),
            ({"concentration": 2.5}, 1),
        ):
            self.run_layer_test(
                cls,
                init_kwargs={**kwargs, "expansion": 2, **more},
                input_shape=in_shape,
                call_kwargs={"training": True},
                expected_output_shape=out_shape,
                expected_num_trainable_weights=weights - 1,
                expected_num_seed_generators=seeds,
            )


def test_every_registered_mk_class_has_a_spec_or_its_own_tests():
    from keras_mk.conversion import class_map

    specs, own = layer_specs.SPECS, layer_specs.OWN_TESTS
    registered = class_map.mk_classes().values()
    missing = [
        c.__name__
        for c in registered
        if c not in specs and c.__name__ not in own
    ]
    assert not missing, f"add a spec to tests/layers/layer_specs.py: {missing}"
    here = os.path.dirname(__file__)
    for cls, (name, through) in own.items():
        with open(os.path.join(here, name)) as f:
            assert through in f.read(), (cls, name)
    assert len(layer_specs.MK_CLASSES) >= 12

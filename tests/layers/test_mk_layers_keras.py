"""Keras's own layer checks (`run_layer_test`) for every MK layer."""

from absl.testing import parameterized

from keras_mk import _keras_private
from keras_mk import layers

TestCase = _keras_private.layer_test_case()

# name, class, init kwargs, input shape, output shape, trainable weights
# (copies + bias) for expansion=3.
CASES = [
    ("dense", layers.MKDense, {"units": 4}, (2, 5), (2, 4), 4),
    (
        "dense_expand_bias",
        layers.MKDense,
        {"units": 4, "expand_bias": True},
        (2, 5),
        (2, 4),
        6,
    ),
    (
        "dense_no_bias",
        layers.MKDense,
        {"units": 4, "use_bias": False},
        (2, 3, 5),
        (2, 3, 4),
        3,
    ),
    (
        "einsum_dense",
        layers.MKEinsumDense,
        {"equation": "abc,cde->abde", "output_shape": (3, 2, 4)},
        (2, 3, 5),
        (2, 3, 2, 4),
        3,
    ),
    (
        "einsum_dense_bias",
        layers.MKEinsumDense,
        {"equation": "ab,bc->ac", "output_shape": 4, "bias_axes": "c"},
        (2, 5),
        (2, 4),
        4,
    ),
    (
        "conv1d",
        layers.MKConv1D,
        {"filters": 4, "kernel_size": 3},
        (2, 8, 3),
        (2, 6, 4),
        4,
    ),
    (
        "conv2d",
        layers.MKConv2D,
        {"filters": 4, "kernel_size": 3, "padding": "same"},
        (2, 6, 6, 3),
        (2, 6, 6, 4),
        4,
    ),
    (
        "conv3d",
        layers.MKConv3D,
        {"filters": 2, "kernel_size": 2},
        (2, 4, 4, 4, 3),
        (2, 3, 3, 3, 2),
        4,
    ),
    (
        "depthwise_conv1d",
        layers.MKDepthwiseConv1D,
        {"kernel_size": 3, "depth_multiplier": 2},
        (2, 8, 3),
        (2, 6, 6),
        4,
    ),
    (
        "depthwise_conv2d",
        layers.MKDepthwiseConv2D,
        {"kernel_size": 3},
        (2, 6, 6, 3),
        (2, 4, 4, 3),
        4,
    ),
    (
        "conv1d_transpose",
        layers.MKConv1DTranspose,
        {"filters": 4, "kernel_size": 3},
        (2, 8, 3),
        (2, 10, 4),
        4,
    ),
    (
        "conv2d_transpose",
        layers.MKConv2DTranspose,
        {"filters": 4, "kernel_size": 3, "strides": 2, "padding": "same"},
        (2, 4, 4, 3),
        (2, 8, 8, 4),
        4,
    ),
    (
        "conv3d_transpose",
        layers.MKConv3DTranspose,
        {"filters": 2, "kernel_size": 2},
        (2, 3, 3, 3, 3),
        (2, 4, 4, 4, 2),
        4,
    ),
]


class MKLayerKerasTest(TestCase):
    @parameterized.named_parameters(CASES)
    def test_run_layer_test(self, cls, kwargs, in_shape, out_shape, n_weights):
        self.run_layer_test(
            cls,
            init_kwargs={**kwargs, "expansion": 3, "seed": 1},
            input_shape=in_shape,
            call_kwargs={"training": True},
            expected_output_shape=out_shape,
            expected_num_trainable_weights=n_weights,
            expected_num_non_trainable_weights=0,
            expected_num_seed_generators=1,
            expected_num_losses=0,
            supports_masking=None,
        )

    @parameterized.named_parameters(CASES[:1] + CASES[6:7])
    def test_run_layer_test_uniform_and_concentration(
        self, cls, kwargs, in_shape, out_shape, n_weights
    ):
        # Uniform p is deterministic: no random state.
        for extra, seeds in (
            ({"probabilities": "uniform"}, 0),
            ({"concentration": 2.5}, 1),
        ):
            self.run_layer_test(
                cls,
                init_kwargs={**kwargs, "expansion": 2, **extra},
                input_shape=in_shape,
                call_kwargs={"training": True},
                expected_output_shape=out_shape,
                expected_num_trainable_weights=n_weights - 1,
                expected_num_seed_generators=seeds,
            )

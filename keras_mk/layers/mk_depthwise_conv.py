import keras

from keras_mk.layers.docstrings import layer_doc
from keras_mk.layers.mk_layer import MKLayer


def _doc(base, example_shape):
    return layer_doc(
        base,
        "Stores `expansion` copies of the depthwise kernel and mixes them "
        "with per-element probabilities in training, their mean in "
        "inference. The copies are initialised from "
        "`depthwise_initializer`.",
        (("kernel_size", "int or tuple, the size of the depthwise window."),),
        "3",
        example_shape,
    )


def depthwise_unit_axes(ndim):
    """The output-unit axes of a depthwise kernel of rank `ndim`.

    A depthwise kernel is `(..., input channels, depth multiplier)`: each
    (input channel, multiplier) pair is one output channel.
    """
    return (ndim - 2, ndim - 1)


class _MKDepthwise(MKLayer):
    mk_weights = (("kernel", "depthwise_initializer", "depthwise_regularizer"),)

    def _output_unit_axes(self, ndim, name="kernel"):
        return depthwise_unit_axes(ndim)


@keras.saving.register_keras_serializable(package="keras_mk")
class MKDepthwiseConv1D(_MKDepthwise, keras.layers.DepthwiseConv1D):
    __doc__ = _doc("DepthwiseConv1D", "(2, 16, 4)")


@keras.saving.register_keras_serializable(package="keras_mk")
class MKDepthwiseConv2D(_MKDepthwise, keras.layers.DepthwiseConv2D):
    __doc__ = _doc("DepthwiseConv2D", "(2, 16, 16, 4)")

import keras

from keras_mk.layers.docstrings import layer_doc
from keras_mk.layers.mk_depthwise_conv import depthwise_unit_axes
from keras_mk.layers.mk_layer import MKLayer


def _doc(base, example_shape):
    return layer_doc(
        base,
        "Stores `expansion` copies of the depthwise kernel and of the "
        "pointwise kernel. In training every call draws one `p` per weight "
        "(each with its own shape) and convolves with the mixes; in "
        "inference it uses the mean of each weight's copies.",
        (
            ("filters", "int, the number of output filters."),
            ("kernel_size", "int or tuple, the size of the depthwise window."),
        ),
        "8, 3",
        example_shape,
        example_more="\n    >>> sorted(layer.weight_copies)"
        "\n    ['bias', 'depthwise_kernel', 'pointwise_kernel']",
    )


class _MKSeparable(MKLayer):
    mk_weights = (
        (
            "depthwise_kernel",
            "depthwise_initializer",
            "depthwise_regularizer",
        ),
        (
            "pointwise_kernel",
            "pointwise_initializer",
            "pointwise_regularizer",
        ),
    )

    def _output_unit_axes(self, ndim, name="depthwise_kernel"):
        if name == "depthwise_kernel":
            return depthwise_unit_axes(ndim)
        return (ndim - 1,)


@keras.saving.register_keras_serializable(package="keras_mk")
class MKSeparableConv1D(_MKSeparable, keras.layers.SeparableConv1D):
    __doc__ = _doc("SeparableConv1D", "(2, 16, 4)")


@keras.saving.register_keras_serializable(package="keras_mk")
class MKSeparableConv2D(_MKSeparable, keras.layers.SeparableConv2D):
    __doc__ = _doc("SeparableConv2D", "(2, 16, 16, 4)")

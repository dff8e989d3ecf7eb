import keras

from keras_mk.layers.config import arguments_doc
from keras_mk.layers.mk_layer import MKLayer

_DOC = """A `{base}` layer with Majority Kernels.

    Stores `expansion` copies of the depthwise kernel and of the pointwise
    kernel. In training every call draws one `p` per weight (each with its
    own shape) and convolves with the mixes; in inference it uses the mean
    of each weight's copies. Accepts every argument of
    `keras.layers.{base}`.

    Args:
        filters: int, the number of output filters.
        kernel_size: int or tuple, the size of the depthwise window.
{mk_args}
        **kwargs: any other argument of `keras.layers.{base}`.

    Input shape:
        As for `keras.layers.{base}`.

    Output shape:
        As for `keras.layers.{base}`.

    Example:

    >>> layer = keras_mk.layers.MK{base}(8, 3, expansion=3, seed=0)
    >>> y = layer(np.ones({example_shape}), training=True)
    >>> sorted(layer.weight_copies)
    ['bias', 'depthwise_kernel', 'pointwise_kernel']
    """


def _doc(base, example_shape):
    return _DOC.format(
        base=base, mk_args=arguments_doc(), example_shape=example_shape
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
            # (..., input channels, depth multiplier): one channel each.
            return (ndim - 2, ndim - 1)
        return (ndim - 1,)


@keras.saving.register_keras_serializable(package="keras_mk")
class MKSeparableConv1D(_MKSeparable, keras.layers.SeparableConv1D):
    __doc__ = _doc("SeparableConv1D", "(2, 16, 4)")


@keras.saving.register_keras_serializable(package="keras_mk")
class MKSeparableConv2D(_MKSeparable, keras.layers.SeparableConv2D):
    __doc__ = _doc("SeparableConv2D", "(2, 16, 16, 4)")

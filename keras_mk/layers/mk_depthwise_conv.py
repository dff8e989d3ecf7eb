import keras

from keras_mk.layers.config import arguments_doc
from keras_mk.layers.mk_layer import MKLayer

_DOC = """A `{base}` layer with Majority Kernels.

    Stores `expansion` copies of the depthwise kernel and mixes them with
    per-element probabilities in training, their mean in inference. The
    copies are initialised from `depthwise_initializer`. Accepts every
    argument of `keras.layers.{base}`.

    Args:
        kernel_size: int or tuple, the size of the depthwise window.
{mk_args}
        **kwargs: any other argument of `keras.layers.{base}`.

    Input shape:
        As for `keras.layers.{base}`.

    Output shape:
        As for `keras.layers.{base}`.

    Example:

    >>> layer = keras_mk.layers.MK{base}(3, expansion=3, seed=0)
    >>> y = layer(np.ones({example_shape}), training=True)
    """


def _doc(base, example_shape):
    return _DOC.format(
        base=base, mk_args=arguments_doc(), example_shape=example_shape
    )


class _MKDepthwise(MKLayer):
    mk_weights = (("kernel", "depthwise_initializer", "depthwise_regularizer"),)

    def _output_unit_axes(self, ndim, name="kernel"):
        # (..., input channels, depth multiplier): one output channel each.
        return (ndim - 2, ndim - 1)


@keras.saving.register_keras_serializable(package="keras_mk")
class MKDepthwiseConv1D(_MKDepthwise, keras.layers.DepthwiseConv1D):
    __doc__ = _doc("DepthwiseConv1D", "(2, 16, 4)")


@keras.saving.register_keras_serializable(package="keras_mk")
class MKDepthwiseConv2D(_MKDepthwise, keras.layers.DepthwiseConv2D):
    __doc__ = _doc("DepthwiseConv2D", "(2, 16, 16, 4)")

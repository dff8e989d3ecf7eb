import keras

from keras_mk.layers.config import arguments_doc
from keras_mk.layers.mk_layer import MKLayer


@keras.saving.register_keras_serializable(package="keras_mk")
class MKEinsumDense(MKLayer, keras.layers.EinsumDense):
    __doc__ = f"""An `EinsumDense` layer with Majority Kernels.

    Stores `expansion` copies of the kernel and mixes them with per-element
    probabilities in training, their mean in inference. Accepts every
    argument of `keras.layers.EinsumDense`.

    Args:
        equation: the einsum equation, as for `keras.layers.EinsumDense`.
        output_shape: the expected output shape (without the batch axis).
{arguments_doc()}
        **kwargs: any other argument of `keras.layers.EinsumDense`.

    Input shape:
        As for `keras.layers.EinsumDense`.

    Output shape:
        As for `keras.layers.EinsumDense`.

    Example:

    >>> layer = keras_mk.layers.MKEinsumDense("ab,bc->ac", output_shape=4)
    >>> tuple(layer(np.ones((2, 8)), training=True).shape)
    (2, 4)
    """

    lora_factors = ("lora_kernel_a", "lora_kernel_b")

    def _output_unit_axes(self, ndim, name="kernel"):
        # The kernel axes whose letters appear in the output ("ab,bc->ac":
        # c); the others are contracted away.
        operands, output = self.equation.split("->")
        kernel_spec = operands.split(",")[1].strip()
        return tuple(i for i, c in enumerate(kernel_spec) if c in output)

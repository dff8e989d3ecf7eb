import keras

from keras_mk.layers.docstrings import layer_doc
from keras_mk.layers.mk_layer import MKLayer

_ARGS = (
    ("filters", "int, the number of output filters."),
    ("kernel_size", "int or tuple, the size of the convolution window."),
)


def _doc(base, rank, example_shape):
    return layer_doc(
        base,
        "Stores `expansion` copies of the convolution kernel and mixes them"
        " with per-element probabilities in training, their mean in "
        "inference.",
        _ARGS,
        "8, 3",
        example_shape,
        input_note=f": a {rank}D+2 tensor",
    )


@keras.saving.register_keras_serializable(package="keras_mk")
class MKConv1D(MKLayer, keras.layers.Conv1D):
    __doc__ = _doc("Conv1D", 1, "(2, 16, 4)")
    lora_factors = ("lora_kernel_a", "lora_kernel_b")


@keras.saving.register_keras_serializable(package="keras_mk")
class MKConv2D(MKLayer, keras.layers.Conv2D):
    __doc__ = _doc("Conv2D", 2, "(2, 16, 16, 4)")
    lora_factors = ("lora_kernel_a", "lora_kernel_b")


@keras.saving.register_keras_serializable(package="keras_mk")
class MKConv3D(MKLayer, keras.layers.Conv3D):
    __doc__ = _doc("Conv3D", 3, "(2, 8, 8, 8, 4)")
    lora_factors = ("lora_kernel_a", "lora_kernel_b")


class _MKConvTranspose(MKLayer):
    def _output_unit_axes(self, ndim, name="kernel"):
        # (..., filters, input channels): filters index the output units.
        return (ndim - 2,)


@keras.saving.register_keras_serializable(package="keras_mk")
class MKConv1DTranspose(_MKConvTranspose, keras.layers.Conv1DTranspose):
    __doc__ = _doc("Conv1DTranspose", 1, "(2, 16, 4)")


@keras.saving.register_keras_serializable(package="keras_mk")
class MKConv2DTranspose(_MKConvTranspose, keras.layers.Conv2DTranspose):
    __doc__ = _doc("Conv2DTranspose", 2, "(2, 16, 16, 4)")


@keras.saving.register_keras_serializable(package="keras_mk")
class MKConv3DTranspose(_MKConvTranspose, keras.layers.Conv3DTranspose):
    __doc__ = _doc("Conv3DTranspose", 3, "(2, 8, 8, 8, 4)")

import keras

from keras_mk.layers.config import arguments_doc
from keras_mk.layers.mk_layer import MKLayer


@keras.saving.register_keras_serializable(package="keras_mk")
class MKDense(MKLayer, keras.layers.Dense):
    __doc__ = f"""A `Dense` layer with Majority Kernels.

    Stores `expansion` copies of the kernel. In training every call draws
    fresh per-element probabilities `p` and computes
    `activation(inputs @ sum_k W_k p_k + bias)`; in inference it uses the mean
    of the copies, so the deployed layer is an ordinary `Dense` (see
    `keras_mk.collapse`). Accepts every argument of `keras.layers.Dense`.

    Args:
        units: Positive integer, dimensionality of the output space.
{arguments_doc()}
        **kwargs: any other argument of `keras.layers.Dense`.

    Input shape:
        N-D tensor with shape `(batch_size, ..., input_dim)`.

    Output shape:
        N-D tensor with shape `(batch_size, ..., units)`.

    Example:

    >>> layer = keras_mk.layers.MKDense(4, expansion=3, seed=0)
    >>> y = layer(np.ones((2, 8)), training=True)
    >>> tuple(layer.expanded_kernel.shape)
    (3, 8, 4)

    References:
        Mazzawi et al., "Majority Kernels: An Approach to Leverage Big Model
        Dynamics for Efficient Small Model Training", 2024.
    """

    lora_factors = ("lora_kernel_a", "lora_kernel_b")

import keras

from keras_mk.layers.mk_layer import MKLayer

MK_ARGS_DOC = """        expansion: int >= 1, the number of kernel copies `e`.
            Default 3. `expansion=1` is exactly the plain Keras layer.
        probabilities: `"exponential"` (default): every training call draws
            per-element probabilities `p` (iid Exponential(1) normalised over
            the copies, Eq. 2.2 of the paper) and uses `sum_k W_k p_k` as the
            kernel. `"uniform"`: always the mean of the copies (the ablation
            of Lemma B.2: with SGD, plain training at learning rate `lr / e`).
        concentration: float > 0, default 1.0. `p` is Dirichlet(concentration)
            per element; 1.0 is exactly the paper's normalised exponentials
            (sampled as uniform spacings), larger values mean less noise.
        expand_bias: bool, default False (as in the paper). If True the bias
            is expanded and mixed like the kernel.
        copy_initialization: `"replicate"` (default): one draw of the kernel
            initializer copied into every copy. `"independent"`: one draw
            per copy. Measured in `docs/layers.md`.
        probability_sharing: what one draw of `p` is shared by.
            `"element"` (default, the paper's algorithm): a fresh `p` for
            every kernel element. `"unit"`: one `p` per output unit (per
            output column of a `Dense` kernel, per filter of a conv), the
            same for all its inputs. `"layer"`: one `p` for the whole
            kernel. Fewer random numbers per step (faster where drawing
            them dominates, see `docs/performance.md`), less noise: not the
            paper's algorithm.
        seed: int, None or a `keras.random.SeedGenerator`: the source of
            every random draw of this layer."""


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
{MK_ARGS_DOC}
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

"""The small models the experiments train: MLPs and a small CNN."""

import keras

ARCHITECTURES = ("mlp", "cnn")


def build_mlp(input_shape, num_classes, hidden_units=(256, 128), seed=0):
    """A fully connected network: flatten, ReLU hidden layers, logits.

    Args:
        input_shape: shape of one input, e.g. `(8, 8, 1)` or `(3072,)`.
        num_classes: the number of output logits.
        hidden_units: the width of each hidden layer.
        seed: seed of the kernel initializers.

    Returns:
        A built `keras.Sequential` outputting logits.
    """
    layers = [keras.Input(input_shape), keras.layers.Flatten()]
    for i, units in enumerate(hidden_units):
        layers.append(
            keras.layers.Dense(
                units,
                activation="relu",
                kernel_initializer=keras.initializers.GlorotUniform(seed + i),
                name=f"dense_{i}",
            )
        )
    layers.append(
        keras.layers.Dense(
            num_classes,
            kernel_initializer=keras.initializers.GlorotUniform(seed + 99),
            name="logits",
        )
    )
    return keras.Sequential(layers, name="mlp")


def build_cnn(input_shape, num_classes, filters=(32, 64), seed=0):
    """A small CNN for 8x8 images: two 3x3 convolutions, pooling, logits.

    Args:
        input_shape: shape of one image, e.g. `(8, 8, 1)`.
        num_classes: the number of output logits.
        filters: the number of filters of the two convolutions.
        seed: seed of the kernel initializers.

    Returns:
        A built `keras.Sequential` outputting logits.
    """

    def init(offset):
        return keras.initializers.GlorotUniform(seed + offset)

    return keras.Sequential(
        [
            keras.Input(input_shape),
            keras.layers.Conv2D(
                filters[0],
                3,
                padding="same",
                activation="relu",
                kernel_initializer=init(0),
                name="conv_0",
            ),
            keras.layers.MaxPooling2D(),
            keras.layers.Conv2D(
                filters[1],
                3,
                padding="same",
                activation="relu",
                kernel_initializer=init(1),
                name="conv_1",
            ),
            keras.layers.GlobalAveragePooling2D(),
            keras.layers.Dense(
                num_classes, kernel_initializer=init(99), name="logits"
            ),
        ],
        name="cnn",
    )


def build_model(architecture, input_shape, num_classes, seed=0):
    """Builds one of `ARCHITECTURES` with its default sizes."""
    if architecture == "mlp":
        return build_mlp(input_shape, num_classes, seed=seed)
    if architecture == "cnn":
        return build_cnn(input_shape, num_classes, seed=seed)
    raise ValueError(
        f"`architecture` must be one of {ARCHITECTURES}. "
        f"Received: {architecture!r}"
    )


def build_subset_mlp(
    input_shape, num_classes, hidden_units, expansion=3, seed=0
):
    """The SUBSET-BASELINE MLP: hidden layers select among `e * units`.

    Each hidden `Dense(units)` becomes a
    `keras_mk.baselines.SubsetDense(units, expansion)` (Appendix F); the
    logits layer stays a plain `Dense`.

    Returns:
        A built `keras.Sequential`; `keras_mk.baselines.subset_to_dense`
        turns it into the plain MLP of `build_mlp`.
    """
    from keras_mk import baselines

    layers = [keras.Input(input_shape), keras.layers.Flatten()]
    for i, units in enumerate(hidden_units):
        layers.append(
            baselines.SubsetDense(
                units,
                expansion=expansion,
                activation="relu",
                kernel_initializer=keras.initializers.GlorotUniform(seed + i),
                name=f"dense_{i}",
            )
        )
    layers.append(
        keras.layers.Dense(
            num_classes,
            kernel_initializer=keras.initializers.GlorotUniform(seed + 99),
            name="logits",
        )
    )
    return keras.Sequential(layers, name="subset_mlp")

"""The paper's fully connected networks (Appendix G): plain and SUBSET;
and MNIST-1D's small CNN (Greydanus, 2020)."""

import keras

from keras_mk import baselines

CNN = "cnn"
# Table 5's topologies: the hidden layers' widths; CNN is MNIST-1D's.
TOPOLOGIES = {
    "A1": (100,),
    "A2": (200, 100),
    "A3": (400, 200, 100),
    "CNN": CNN,
}


def build_model(input_shape, num_classes, hidden_units, seed=0):
    """`build_cnn` when `hidden_units` is `CNN`, else `build_mlp`."""
    if hidden_units == CNN:
        return build_cnn(input_shape, num_classes, seed=seed)
    return build_mlp(input_shape, num_classes, hidden_units, seed=seed)


def build_cnn(input_shape, num_classes, filters=25, seed=0):
    """MNIST-1D's published CNN: three strided `Conv1D`s and the logits.

    Greydanus (2020) reports about 94% test accuracy for it on MNIST-1D:
    convolutions of 25 channels, kernel 5 then 3 and 3, stride 2, ReLU.

    Args:
        input_shape: shape of one sequence, e.g. `(40,)`.
        num_classes: the number of output logits.
        filters: channels of each convolution.
        seed: seed of the kernel initializers.

    Returns:
        A `keras.Sequential` outputting logits.
    """
    layers = [keras.Input(input_shape), keras.layers.Reshape((-1, 1))]
    for i, size in enumerate((5, 3, 3)):
        layers.append(
            keras.layers.Conv1D(
                filters,
                size,
                strides=2,
                padding="same",
                activation="relu",
                kernel_initializer=keras.initializers.GlorotUniform(seed + i),
                name=f"conv_{i}",
            )
        )
    layers += [
        keras.layers.Flatten(),
        keras.layers.Dense(
            num_classes,
            kernel_initializer=keras.initializers.GlorotUniform(seed + 99),
            name="logits",
        ),
    ]
    return keras.Sequential(layers, name="cnn")


def build_mlp(input_shape, num_classes, hidden_units, seed=0):
    """A fully connected network: flatten, ReLU hidden layers, logits.

    Args:
        input_shape: shape of one input, e.g. `(40,)` or `(3072,)`.
        num_classes: the number of output logits.
        hidden_units: the width of each hidden layer.
        seed: seed of the kernel initializers.

    Returns:
        A `keras.Sequential` outputting logits.
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


def build_subset_mlp(
    input_shape, num_classes, hidden_units, expansion=3, seed=0
):
    """The SUBSET-BASELINE MLP (Algorithm F.1).

    Each hidden `Dense(units)` becomes a
    `keras_mk.baselines.SubsetDense(units, expansion)`; the logits layer is
    a `SubsetDense(num_classes, expansion=1)` so that its rows stay tied to
    the previous layer's candidate neurons and its kernel is initialized on
    the plain layer's shape.

    Returns:
        A `keras.Sequential`; `keras_mk.baselines.subset_to_dense` turns it
        into the plain MLP of `build_mlp`.
    """
    if hidden_units == CNN:
        raise ValueError("SUBSET (Algorithm F.1) is for MLPs, not the CNN.")
    layers = [keras.Input(input_shape), keras.layers.Flatten()]
    widths = list(hidden_units) + [num_classes]
    for i, units in enumerate(widths):
        last = i == len(hidden_units)
        layers.append(
            baselines.SubsetDense(
                units,
                expansion=1 if last else expansion,
                input_expansion=1 if i == 0 else expansion,
                activation=None if last else "relu",
                kernel_initializer=keras.initializers.GlorotUniform(
                    seed + (99 if last else i)
                ),
                name="logits" if last else f"dense_{i}",
            )
        )
    return keras.Sequential(layers, name="subset_mlp")

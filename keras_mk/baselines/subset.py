"""SUBSET-BASELINE: greedy submodular neuron selection (Appendix F).

A `SubsetDense` layer holds `expansion * units` candidate neurons (columns of
its kernel, the rows `U_i` of the paper) and, before every training step,
selects `units` of them with the greedy algorithm for the objective of
Eq. F.9:

    f(S) = alpha * sum_{i in S} u(i) - beta * sum_{{i, j} in S, E} s(i, j),

with `u(i) = ||U_i|| + c`, `s` the cosine similarity, `E` the edges of the
`t`-nearest-neighbour graph of the candidates (by cosine similarity,
`t = 10`) and `c = max_l sum_{j: {l, j} in E} s(l, j)`. Only the selected
neurons take part in the step. The layer outputs all `expansion * units`
candidate positions, zero where a candidate is not selected, so row `i` of
the next layer's kernel always belongs to candidate neuron `i`: the next
layer sees the selected neurons in a fixed correspondence, whichever are
selected (Algorithm F.1). At the end `subset_to_dense` selects once more and
returns the plain model made of the selected columns of each kernel and the
matching rows of the next one.

The selection runs inside the train step with Keras ops (so it compiles with
the step on TensorFlow and JAX): a cosine-similarity matrix (`O(N^2 d)` for
`N = expansion * units` candidates of dimension `d`), a top-`t` per row and
`units` greedy rounds of `O(N)` each.
"""

import keras
from keras import ops

from keras_mk import _keras_private
from keras_mk.baselines.submodular import greedy_subset
from keras_mk.layers.weight_copies import reseeded


def _validate_int(name, value, minimum):
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(
            f"`{name}` must be an integer >= {minimum}. "
            f"Received: {name}={value!r}"
        )
    return value


@keras.saving.register_keras_serializable(package="keras_mk")
class SubsetDense(keras.layers.Layer):
    """A dense layer selecting `units` of `expansion * units` neurons.

    The SUBSET-BASELINE of the paper (Algorithm F.1). The kernel has shape
    `(input_dim, expansion * units)`; every training call first selects
    `units` candidate neurons with `greedy_subset` (Eq. F.9) on the current
    weights and stores the selection. The output has one position per
    candidate: `activation(inputs @ kernel + bias)` at the selected ones and
    0 elsewhere, so the next layer's kernel row `i` is tied to candidate `i`
    (a fixed correspondence, whatever is selected). Inference uses the
    stored selection (the last one). Gradients reach only the selected
    neurons, and only the next layer's rows of selected neurons.
    `subset_to_dense` converts a trained model to plain `Dense` layers.

    Args:
        units: positive integer, the number of neurons kept.
        expansion: integer >= 1, the number of candidates per kept neuron.
            Default 3.
        input_expansion: integer >= 1, the `expansion` of the `SubsetDense`
            layer feeding this one (1 for any other input). The kernel is
            initialized as if the layer had `input_dim / input_expansion`
            inputs, the number the selected plain network has. Default 1.
        neighbours: `t` of the nearest-neighbour graph. Default 10.
        alpha: weight of the utility term of Eq. F.9. Default 1.
        beta: weight of the similarity term. Default 1.
        activation: activation function. Default None.
        use_bias: whether to add a bias. Default True.
        kernel_initializer: initializer of the kernel. Default
            `"glorot_uniform"`. Each `(input_dim / input_expansion, units)`
            block is one draw on the shape of the kept layer, with its own
            seed, so the candidate neurons differ.
        bias_initializer: initializer of the bias. Default `"zeros"`.
        **kwargs: base layer arguments (e.g. `name`).

    Input shape:
        2-D tensor of shape `(batch_size, input_dim)`.

    Output shape:
        2-D tensor of shape `(batch_size, expansion * units)`, zero outside
        the `units` selected positions.

    Example:

    ```python
    model = keras.Sequential([
        keras.Input((64,)),
        keras_mk.baselines.SubsetDense(100, activation="relu"),
        keras_mk.baselines.SubsetDense(10, expansion=1, input_expansion=3),
    ])
    model.compile("adam", "sparse_categorical_crossentropy")
    model.fit(x, y)
    plain = keras_mk.baselines.subset_to_dense(model)  # 64 -> 100 -> 10
    ```

    References:
        Mazzawi et al., "Majority Kernels", 2024, Appendix F, Algorithm F.1.
    """

    def __init__(
        self,
        units,
        expansion=3,
        input_expansion=1,
        neighbours=10,
        alpha=1.0,
        beta=1.0,
        activation=None,
        use_bias=True,
        kernel_initializer="glorot_uniform",
        bias_initializer="zeros",
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.units = _validate_int("units", units, 1)
        self.expansion = _validate_int("expansion", expansion, 1)
        self.input_expansion = _validate_int(
            "input_expansion", input_expansion, 1
        )
        self.neighbours = _validate_int("neighbours", neighbours, 1)
        self.alpha = float(alpha)
        self.beta = float(beta)
        self.activation = keras.activations.get(activation)
        self.use_bias = use_bias
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.bias_initializer = keras.initializers.get(bias_initializer)

    @property
    def candidates(self):
        """The number of candidate neurons, `expansion * units`."""
        return self.expansion * self.units

    def build(self, input_shape):
        input_dim = input_shape[-1]
        if input_dim % self.input_expansion:
            raise ValueError(
                "The input dimension must be a multiple of `input_expansion`. "
                f"Received: input_dim={input_dim}, "
                f"input_expansion={self.input_expansion}"
            )
        block = (input_dim // self.input_expansion, self.units)
        # One draw per (input block, candidate block), each with its own
        # seed: an unseeded or int-seeded initializer repeats its values.
        kernel = ops.concatenate(
            [
                ops.concatenate(
                    [
                        reseeded(
                            self.kernel_initializer, r * self.expansion + k
                        )(block)
                        for k in range(self.expansion)
                    ],
                    axis=1,
                )
                for r in range(self.input_expansion)
            ],
            axis=0,
        )
        self.kernel = self.add_weight(
            name="kernel",
            shape=(input_dim, self.candidates),
            initializer="zeros",
        )
        self.kernel.assign(kernel)
        self.bias = None
        if self.use_bias:
            self.bias = self.add_weight(
                name="bias",
                shape=(self.candidates,),
                initializer=self.bias_initializer,
            )
        self.selected = self.add_weight(
            name="selected",
            shape=(self.units,),
            initializer="zeros",
            dtype="int32",
            trainable=False,
        )
        if not _keras_private.in_symbolic_scope():
            self.selected.assign(self.select())

    def select(self):
        """Runs the greedy selection on the current kernel (no side effect).

        Returns:
            int32 tensor of shape `(units,)`, the selected neurons ascending.
        """
        return greedy_subset(
            ops.transpose(self.kernel),
            self.units,
            neighbours=self.neighbours,
            alpha=self.alpha,
            beta=self.beta,
        )

    def call(self, inputs, training=None):
        if training:
            selected = self.select()
            self.selected.assign(selected)
        else:
            selected = self.selected
        mask = ops.sum(
            ops.one_hot(selected, self.candidates, dtype=inputs.dtype), axis=0
        )
        outputs = ops.matmul(inputs, self.kernel)
        if self.use_bias:
            outputs = ops.add(outputs, self.bias)
        return ops.multiply(self.activation(outputs), mask)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:-1]) + (self.candidates,)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "units": self.units,
                "expansion": self.expansion,
                "input_expansion": self.input_expansion,
                "neighbours": self.neighbours,
                "alpha": self.alpha,
                "beta": self.beta,
                "activation": keras.activations.serialize(self.activation),
                "use_bias": self.use_bias,
                "kernel_initializer": keras.initializers.serialize(
                    self.kernel_initializer
                ),
                "bias_initializer": keras.initializers.serialize(
                    self.bias_initializer
                ),
            }
        )
        return config


# Layers that act on each feature alone: the selection passes through them.
_ELEMENTWISE = (
    keras.layers.Activation,
    keras.layers.Dropout,
    keras.layers.ReLU,
    keras.layers.LeakyReLU,
    keras.layers.InputLayer,
)


def subset_to_dense(model):
    """The plain model: every `SubsetDense` becomes a `Dense` of its units.

    Runs the greedy selection once more on the final weights (the last line
    of Algorithm F.1), keeps the selected columns of each `SubsetDense`
    kernel and, in the layer after it, the rows of those neurons.

    Args:
        model: a Sequential or Functional model whose layers form a chain;
            a `SubsetDense` may be followed by `SubsetDense`, `Dense` or
            elementwise layers (activations, dropout) only.

    Returns:
        A new model with the same inputs and outputs in which each
        `SubsetDense(units)` is a `keras.layers.Dense(units)` and the layer
        after it reads only the selected neurons; other layers keep their
        weights.
    """

    def clone(layer):
        if isinstance(layer, SubsetDense):
            return keras.layers.Dense(
                layer.units,
                activation=layer.activation,
                use_bias=layer.use_bias,
                name=layer.name,
            )
        return layer.__class__.from_config(layer.get_config())

    plain = keras.models.clone_model(model, clone_function=clone)
    rows = None  # The neurons the previous SubsetDense kept.
    for old, new in zip(model.layers, plain.layers):
        if isinstance(old, (SubsetDense, keras.layers.Dense)):
            kernel = old.kernel
            if rows is not None:
                kernel = ops.take(kernel, rows, axis=0)
            if isinstance(old, SubsetDense):
                selected = old.select()
                new.kernel.assign(ops.take(kernel, selected, axis=1))
                if old.use_bias:
                    new.bias.assign(ops.take(old.bias, selected, axis=0))
                rows = selected
            else:
                new.kernel.assign(kernel)
                if old.use_bias:
                    new.bias.assign(old.bias)
                rows = None
        elif rows is not None and not isinstance(old, _ELEMENTWISE):
            raise ValueError(
                "`subset_to_dense` needs the layer after a `SubsetDense` to "
                "be a `Dense`, a `SubsetDense` or elementwise. Received: "
                f"layer={old.name!r} ({type(old).__name__})"
            )
        else:
            new.set_weights(old.get_weights())
    return plain

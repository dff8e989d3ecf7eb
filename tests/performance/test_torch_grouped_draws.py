"""PyTorch: the small kernels of a forward pass drawn and mixed together.

From the second call of a model on, one compiled loop draws and mixes the
small kernels its last call asked for (`sampling.torch_grouping`). Nothing
a user sees may change: each kernel's draw, the outputs, the gradients,
the trained weights and the seed states are those of every kernel drawing
alone, bit for bit, whatever the model does between calls (a layer called
twice, a path that changes, a seed generator shared by layers, several
forward passes before an update, no gradient, a stateless call).
"""

import gc

import keras
import numpy as np
import pytest
from keras import ops

import keras_mk
from keras_mk.layers import MKDense
from keras_mk.layers.walk import mk_layers
from keras_mk.sampling import torch_backend
from keras_mk.sampling import torch_grouping

pytestmark = pytest.mark.skipif(
    keras.backend.backend() != "torch", reason="PyTorch's grouped draws"
)

X = np.random.default_rng(0).normal(size=(4, 6, 6, 3)).astype("float32")
Y = np.random.default_rng(1).integers(0, 5, size=(4,))


@pytest.fixture
def group_calls(monkeypatch):
    """Counts the grouped draws; kernels of <= 200 elements are grouped
    (so this small model has kernels on both sides of the limit)."""
    calls = []
    original = torch_backend.group_mix

    def spy(states, layout, flat):
        calls.append(int(states.shape[0]))
        return original(states, layout, flat)

    monkeypatch.setattr(torch_backend, "group_mix", spy)
    monkeypatch.setattr(torch_grouping, "MAX_ELEMENTS", 200)
    return calls


def build():
    """A model with what can break a prediction of the draws: a layer
    called twice, a kernel too large to group whose bias is grouped (one
    generator, two requests), two layers sharing one seed generator."""
    keras.utils.set_random_seed(3)
    inputs = keras.Input((6, 6, 3))
    x = keras.layers.Conv2D(4, 3, padding="same")(inputs)
    x = keras.layers.DepthwiseConv2D(3, padding="same")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    x = keras.layers.Dense(24, activation="tanh")(x)
    twice = keras.layers.Dense(24, activation="tanh")
    x = twice(twice(x))
    x = keras.layers.Dense(16, activation="tanh")(x)
    plain = keras.Model(inputs, keras.layers.Dense(5)(x))
    model = keras_mk.clone_model(plain, expansion=3, seed=11, expand_bias=True)
    shared = keras.random.SeedGenerator(7)
    head = keras.Sequential(
        [
            MKDense(6, expansion=3, seed=shared),
            MKDense(5, expansion=3, seed=shared),
        ]
    )
    model = keras.Sequential([model, head])
    model(X[:1])  # builds the head; inference draws nothing
    diverge(model)
    return model


def diverge(model):
    """Gives every copy its own values: the draws show in every output."""
    rng = np.random.default_rng(5)
    for layer in mk_layers(model):
        for copies in getattr(layer, "weight_copies", {}).values():
            for copy in copies:
                copy.assign(
                    rng.normal(scale=0.5, size=copy.shape).astype("float32")
                )


def seed_states(model):
    return [
        ops.convert_to_numpy(v)
        for v in model.non_trainable_variables
        if "seed" in v.path
    ]


def train(model, steps=4):
    model.compile(
        optimizer=keras.optimizers.SGD(0.1),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    losses = [float(model.train_on_batch(X, Y)) for _ in range(steps)]
    return losses, [ops.convert_to_numpy(w) for w in model.weights]


def assert_same(a, b):
    assert len(a) == len(b)
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)


def alone(monkeypatch):
    monkeypatch.setattr(torch_grouping, "MAX_ELEMENTS", 0)


@pytest.mark.parametrize("e", [2, 3, 5])
def test_kernels_mixed_together_are_each_kernel_mixed_alone(e):
    import torch

    rng = np.random.default_rng(e)
    shapes = [(7,), (3, 3, 4, 1), (24, 16), (1,), (5, 300)]
    copies = [
        [
            torch.tensor(
                rng.normal(size=shape).astype("float32")
            ).requires_grad_()
            for _ in range(e)
        ]
        for shape in shapes
    ]
    states = torch.tensor(rng.integers(-(2**31), 2**31, (len(shapes), 2)))
    states = states.to(torch.int32)
    upstream = [
        torch.tensor(rng.normal(size=s).astype("float32")) for s in shapes
    ]

    alone = []
    for shape, mine, state, up in zip(shapes, copies, states, upstream):
        generator = keras.random.SeedGenerator(0)
        generator.state.assign(state)
        out = torch_backend.fused_mix(shape, e)(mine, generator)
        grads = torch.autograd.grad(out, mine, up)
        alone.append((out, grads))

    sizes = [int(np.prod(s)) for s in shapes]
    flat = [torch.cat([c[k].reshape(-1) for c in copies]) for k in range(e)]
    layout = torch_backend.group_layout(sizes, "cpu")
    together = torch_backend.group_mix(states, layout, flat)
    grads = torch.autograd.grad(
        together, flat, torch.cat([u.reshape(-1) for u in upstream])
    )
    for m, (out, alone_grads) in enumerate(alone):
        part = slice(sum(sizes[:m]), sum(sizes[: m + 1]))
        assert torch.equal(together[part], out.reshape(-1))
        for k in range(e):
            assert torch.equal(grads[k][part], alone_grads[k].reshape(-1))


def test_training_is_bit_for_bit_that_of_kernels_drawn_alone(
    group_calls, monkeypatch
):
    losses, weights = train(build())
    assert group_calls, "nothing was grouped: the test would prove nothing"
    # Every step after the first (which learns what the model asks for).
    assert len(group_calls) == 3 and min(group_calls) >= 8
    alone(monkeypatch)
    expected_losses, expected_weights = train(build())
    assert losses == expected_losses
    assert_same(weights, expected_weights)


def test_seed_states_advance_as_when_drawn_alone(group_calls, monkeypatch):
    model = build()
    train(model)
    grouped = seed_states(model)
    assert group_calls
    alone(monkeypatch)
    reference = build()
    train(reference)
    assert_same(grouped, seed_states(reference))


def forward_passes(model, calls):
    """Outputs of a sequence of training calls, some without gradient."""
    import torch

    outputs = []
    for kind in calls:
        if kind == "no_grad":
            with torch.no_grad():
                y = model(X, training=True)
        elif kind == "stateless":
            variables = [v.value for v in model.variables]
            with keras.StatelessScope(
                state_mapping=list(zip(model.variables, variables))
            ):
                y = model(X, training=True)
        else:
            y = model(X, training=True)
            ops.sum(y * y).backward()
        outputs.append(ops.convert_to_numpy(y))
    assert not np.array_equal(outputs[0], outputs[1])  # the draws show
    grads = [
        ops.convert_to_numpy(v.value.grad)
        for v in model.trainable_variables
        if v.value.grad is not None
    ]
    return outputs, grads, seed_states(model)


@pytest.mark.parametrize(
    "calls",
    [
        ["grad", "grad", "grad"],  # accumulated: no update in between
        ["grad", "no_grad", "grad", "no_grad"],
        ["grad", "stateless", "grad", "grad"],
    ],
)
def test_calls_without_update_or_gradient_draw_as_alone(
    group_calls, monkeypatch, calls
):
    grouped = forward_passes(build(), calls)
    assert group_calls
    alone(monkeypatch)
    expected = forward_passes(build(), calls)
    for a, b in zip(grouped, expected):
        assert_same(a, b)


class Branching(keras.Model):
    """Skips its second layer on even calls: a path that changes. The
    second and third layers share a seed generator, so the third's state
    at its turn depends on whether the second ran."""

    def __init__(self):
        super().__init__()
        shared = keras.random.SeedGenerator(2)
        mk = dict(expansion=3, copy_initialization="independent")
        self.first = MKDense(8, seed=1, **mk)
        self.second = MKDense(8, seed=shared, **mk)
        self.third = MKDense(3, seed=shared, **mk)
        self.calls = 0

    def call(self, x, training=None):
        self.calls += 1
        x = self.first(x, training=training)
        if self.calls % 2:
            x = self.second(x, training=training)
        return self.third(x, training=training)


def test_a_path_that_changes_draws_as_alone(group_calls, monkeypatch):
    x = X.reshape(4, -1)[:, :8]

    def run():
        keras.utils.set_random_seed(3)
        model = Branching()
        return [
            ops.convert_to_numpy(model(x, training=True)) for _ in range(5)
        ] + seed_states(model)

    grouped = run()
    assert group_calls
    assert not np.array_equal(grouped[0], grouped[2])  # the draws show
    alone(monkeypatch)
    assert_same(grouped, run())


class FrozenFirst(Branching):
    """Runs its first layer without gradient (a frozen feature
    extractor): the draws made at its request have no graph."""

    def call(self, x, training=None):
        import torch

        with torch.no_grad():
            x = self.first(x, training=training)
        x = self.second(x, training=training)
        return self.third(x, training=training)


def test_kernels_asked_for_with_gradient_get_their_gradient(
    group_calls, monkeypatch
):
    x = X.reshape(4, -1)[:, :8]

    def run():
        keras.utils.set_random_seed(3)
        model = FrozenFirst()
        for _ in range(3):
            y = model(x, training=True)
            ops.sum(y * y).backward()
        return [
            ops.convert_to_numpy(v.value.grad)
            for v in model.trainable_variables
            if v.value.grad is not None
        ]

    grouped = run()
    assert group_calls
    alone(monkeypatch)
    expected = run()
    assert len(expected) == 2 * (3 + 1)  # second, third: 3 copies, a bias
    assert_same(grouped, expected)


def test_inference_and_a_lone_kernel_draw_nothing_ahead(group_calls):
    layer = MKDense(4, expansion=3, seed=0)  # one kernel: nothing to group
    for _ in range(3):
        layer(X.reshape(4, -1)[:, :8], training=True)
    assert group_calls == []
    model = build()
    for _ in range(2):
        model(X, training=True)
    assert len(group_calls) == 1
    for _ in range(3):
        model(X, training=False)
        model(X)
    assert len(group_calls) == 1


def test_what_was_learned_does_not_keep_a_model_alive(group_calls):
    import weakref

    model = build()
    train(model, steps=3)
    assert group_calls
    ref = weakref.ref(model)
    del model
    gc.collect()
    assert ref() is None

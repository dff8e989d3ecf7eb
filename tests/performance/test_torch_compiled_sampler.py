"""PyTorch's draw-and-mix: two `torch.compile`d loops shared by all kernels.

The uniforms are the counter hash's, bit for bit (the same as on JAX and
in TensorFlow's XLA clusters), the mix is `sum_k p_k W_k` and its gradient
`p_k * upstream`; one compilation serves every kernel shape; where
`torch.compile` fails, the same draws run eagerly after one warning.
"""

import warnings

import keras
import numpy as np
import pytest
from keras import ops

from keras_mk import sampling
from keras_mk.sampling import torch_backend

pytestmark = pytest.mark.skipif(
    keras.backend.backend() != "torch", reason="PyTorch's sampler"
)

# (kernel shape, shape of `p`): per element, and shared along axes.
SHAPES = [
    ((7,), (7,)),
    ((24, 16), (24, 16)),
    ((3, 3, 8, 16), (3, 3, 8, 16)),
    ((3, 3, 8, 16), (1, 1, 1, 16)),
    ((24, 16), (1, 1)),
    ((24, 16), (24, 1)),  # along a trailing axis: the eager mix
    # At least SHARED_MIN_ELEMENTS, shared along the leading axes: the
    # compiled shared loops.
    ((512, 256), (1, 256)),
    ((3, 3, 128, 128), (1, 1, 1, 1)),
]


def numpy(x):
    return ops.convert_to_numpy(x)


def mix_and_gradients(shape, p_shape, e, seed):
    """The mixed kernel, the replayed `p` and each copy's gradient."""
    import torch

    rng = np.random.default_rng(e)
    copies = [
        torch.tensor(rng.normal(size=shape).astype("float32")).requires_grad_()
        for _ in range(e)
    ]
    generator = keras.random.SeedGenerator(seed)
    state = numpy(generator.state)
    out = sampling.sampled_mix_for(p_shape, e)(copies, generator)
    # A permuted upstream, as a conv's gradient reaches its kernel.
    upstream = torch.tensor(
        rng.normal(size=shape[::-1]).astype("float32")
    ).permute(*reversed(range(len(shape))))
    out.backward(upstream)
    s = sampling.sample_spacings(p_shape, e, state, hashed=True)
    p = numpy(sampling.spacings_to_probabilities(s))
    return copies, numpy(out), p, numpy(upstream), state


@pytest.mark.parametrize("shape,p_shape", SHAPES)
@pytest.mark.parametrize("e", [2, 3, 5])
def test_compiled_mix_is_the_hashed_draw_and_its_gradient_p_times_upstream(
    shape, p_shape, e
):
    copies, out, p, upstream, state = mix_and_gradients(shape, p_shape, e, 5)
    values = [numpy(c.detach()) for c in copies]
    np.testing.assert_allclose(
        out, np.sum([v * p_k for v, p_k in zip(values, p)], 0), atol=1e-6
    )
    for copy, p_k in zip(copies, p):
        np.testing.assert_allclose(
            numpy(copy.grad), np.broadcast_to(p_k * upstream, shape), atol=1e-6
        )
    # The uniforms themselves: the counter hash's, bit for bit.
    size = int(np.prod(p_shape))
    ours = torch_backend.hashed_spacings(
        ops.convert_to_tensor(state), size, e - 1, "cpu"
    )
    hashed = sampling.sample_spacings((size,), e, state, hashed=True)
    for a, b in zip(ours, hashed):
        np.testing.assert_array_equal(numpy(a), numpy(b))


def test_equal_copies_mix_to_the_copy_exactly():
    import torch

    w = torch.tensor(np.random.default_rng(0).normal(size=(3, 3, 4, 8)))
    w = w.float()
    copies = [w.clone().requires_grad_() for _ in range(3)]
    generator = keras.random.SeedGenerator(1)
    out = sampling.sampled_mix_for((3, 3, 4, 8), 3)(copies, generator)
    np.testing.assert_array_equal(numpy(out), numpy(w))


def test_one_compilation_serves_every_kernel_shape():
    import torch

    mix_and_gradients((24, 16), (24, 16), 3, 0)  # compiled (or cached)
    # Fails on any recompilation: the other shapes, ranks and sizes, and
    # kernels that are views of another layout, reuse the compiled loops.
    with torch.compiler.set_stance("fail_on_recompile"):
        for shape, p_shape in SHAPES[:3]:
            mix_and_gradients(shape, p_shape, 3, 1)
        mix_and_gradients((40, 96), (40, 96), 3, 2)


def test_one_compilation_serves_every_large_kernel_sharing_p_per_unit():
    import torch

    # One `p` per output unit: `p` repeats along the kernel's leading
    # axes; a large kernel mixes each row with it in one compiled loop.
    assert torch_backend.repeats_along_leading_axes(
        (3, 3, 8, 16), (1, 1, 1, 16)
    )
    assert torch_backend.repeats_along_leading_axes((24, 16), (1, 1))
    assert not torch_backend.repeats_along_leading_axes((24, 16), (24, 1))
    mix_and_gradients((3, 3, 128, 128), (1, 1, 1, 128), 3, 0)
    assert "shared_forward" in torch_backend._COMPILED
    with torch.compiler.set_stance("fail_on_recompile"):
        mix_and_gradients((512, 256), (1, 256), 3, 1)
        mix_and_gradients((16, 96, 128), (1, 1, 128), 3, 2)
        mix_and_gradients((3, 3, 64, 256), (1, 1, 64, 256), 3, 3)


def test_a_failed_compilation_warns_once_and_draws_the_same(monkeypatch):
    import torch

    expected = mix_and_gradients((3, 3, 8, 16), (3, 3, 8, 16), 3, 7)

    def no_compiler(function, **kwargs):
        def fails(*args):
            raise RuntimeError("no C++ compiler")

        return fails

    monkeypatch.setattr(torch, "compile", no_compiler)
    monkeypatch.setattr(torch_backend, "_COMPILED", {})
    with pytest.warns(RuntimeWarning, match="no C\\+\\+ compiler"):
        got = mix_and_gradients((3, 3, 8, 16), (3, 3, 8, 16), 3, 7)
    for a, b in zip(got[0], expected[0]):
        np.testing.assert_allclose(numpy(a.grad), numpy(b.grad), atol=1e-6)
    np.testing.assert_allclose(got[1], expected[1], atol=1e-6)
    # Eager from then on, silently: one warning per process.
    assert torch_backend._COMPILED["failed"]
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        mix_and_gradients((3, 3, 8, 16), (3, 3, 8, 16), 3, 8)


def test_a_kernel_laid_out_transposed_keeps_its_layout_and_its_draw():
    import torch

    rng = np.random.default_rng(3)
    values = [rng.normal(size=(6, 5)).astype("float32") for _ in range(3)]
    # Transposed in memory, as Keras's `orthogonal` leaves a weight.
    copies = [torch.tensor(v.T.copy()).t().requires_grad_() for v in values]
    generator = keras.random.SeedGenerator(2)
    state = numpy(generator.state)
    out = sampling.sampled_mix_for((6, 5), 3)(copies, generator)
    assert out.stride() == copies[0].stride()
    s = sampling.sample_spacings((6, 5), 3, state, hashed=True)
    p = numpy(sampling.spacings_to_probabilities(s))
    np.testing.assert_allclose(
        numpy(out.detach()),
        np.sum([v * q for v, q in zip(values, p)], 0),
        atol=1e-6,
    )

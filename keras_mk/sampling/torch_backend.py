"""PyTorch: the draw, the mix and its gradient as two compiled loops.

Eager PyTorch runs the draw, the sort and the mix op by op: about ten
kernel-sized passes a step and a dozen Python dispatches per kernel. Here
the counter hash of each element (`counter_hash`: the same uniforms as on
JAX and TensorFlow), the sort and the mix are one `torch.compile`d function
(TorchInductor: one fused, multi-threaded loop on the CPU), the gradient
another, compiled with dynamic sizes: one compilation per expansion and
dtype, shared by every kernel (flattened) of every model. The uniforms are
recomputed from the seed state in the backward pass instead of kept.

Inside the user's own compiled step (`jit_compile=True`) the same functions
are traced into it. Where `torch.compile` is disabled
(`TORCH_COMPILE_DISABLE=1`) they run eagerly, and where it fails (no C++
compiler) they run eagerly after one warning: the same draws either way,
only slower.

`group_mix` draws and mixes several kernels laid end to end in one pair
of loops, each kernel's draw its own, bit for bit (`torch_grouping` uses
it for a forward pass's small kernels).

PyTorch has no `ops.custom_gradient`: the mixes' hand-written gradients are
autograd Functions.
"""

import functools
import math
import warnings

import numpy as np

from keras_mk.sampling import counter_hash

# The hash's constants as Python ints (TorchDynamo traces them as such).
_M1, _M2, _GOLDEN = (
    int(c)
    for c in (counter_hash.MIX_1, counter_hash.MIX_2, counter_hash.GOLDEN)
)
# A kernel of at least this many elements whose `p` is shared along its
# leading axes (`probability_sharing="unit"` or `"layer"`) mixes in one
# compiled loop forward and one backward; a smaller one eagerly, which
# costs less than the compiled call there. Forward and backward, e = 3,
# interleaved (2026-12-02): 400x200 0.26 ms eager against 0.31 compiled,
# 512x256 0.45 against 0.34, 3072x400 4.1 against 2.8.
SHARED_MIN_ELEMENTS = 1 << 17
# Defined once, on first use: a training call is on the hot path.
_FUNCTIONS = {}
# name -> compiled function; "failed": True once a compilation failed.
_COMPILED = {}


def _fmix32(x):
    """`counter_hash._fmix32` in PyTorch ops (traceable by TorchDynamo)."""
    x = x ^ ((x >> 16) & 0xFFFF)
    x = x * _M1
    x = x ^ ((x >> 13) & 0x7FFFF)
    x = x * _M2
    return x ^ ((x >> 16) & 0xFFFF)


def spacings_at(state, index, size, count):
    """Sorted uniforms of the elements `index` of a hashed draw of `size`.

    `sample_spacings((size,), count + 1, state, hashed=True)` taken at the
    int32 flat indices `index`, in PyTorch ops (traceable by TorchDynamo),
    bit for bit (`counter_hash`): uniform `j` of element `i` is the hash
    of `i + j * size`. A list of `count` float32 tensors shaped as `index`.
    """
    k0, k1 = _keys(state)
    return _sorted_uniforms(k0, k1, index, size, count)


def _keys(state):
    """`counter_hash.hash_keys` of seed states (`(2,)` or `(n, 2)`)."""
    import torch

    state = state.to(torch.int32)
    k0 = _fmix32(state[..., 0] * _GOLDEN + state[..., 1])
    return k0, _fmix32(k0 ^ state[..., 0])


def _sorted_uniforms(k0, k1, index, size, count):
    # `k0`, `k1` and `size` are one draw's, or each element's own.
    import torch

    u = []
    for j in range(count):
        bits = _fmix32(_fmix32((index + j * size) ^ k0) + k1)
        top = ((bits >> 9) & 0x7FFFFF).to(torch.float32)
        u.append(top * 2.0**-23 + 2.0**-24)
    if count == 1:
        return u
    if count == 2:
        return [torch.minimum(u[0], u[1]), torch.maximum(u[0], u[1])]
    return list(torch.sort(torch.stack(u), dim=0).values.unbind(0))


def hashed_spacings(state, size, count, device):
    """`spacings_at` every element of a draw of `size` (flat tensors)."""
    import torch

    index = torch.arange(size, dtype=torch.int32, device=device)
    return spacings_at(state, index, size, count)


def gathered_spacings(state, index, size, count):
    """`spacings_at`, compiled: the rows an embedding lookup gathers."""
    flat = index.reshape(-1)
    s = _run("gathered", spacings_at, state, flat, size, count)
    return [x.reshape(index.shape) for x in s]


def fused_forward(state, *flat):
    """The mixed flat kernel `sum_k p_k flat[k]` of one draw (`state`)."""
    s = hashed_spacings(state, flat[0].shape[0], len(flat) - 1, flat[0].device)
    s = [x.to(flat[0].dtype) for x in s]
    return _telescope(flat, s)


def fused_backward(state, upstream, count):
    """Each copy's gradient `p_k * upstream` of one draw (`state`)."""
    s = hashed_spacings(state, upstream.shape[0], count, upstream.device)
    return _gaps_times(upstream, [x.to(upstream.dtype) for x in s])


def group_layout(sizes, device):
    """What `group_mix` needs to draw kernels of `sizes` laid end to end.

    Int32, one per element, built once: its index in its own kernel, its
    kernel's size, and its kernel (which kernel's keys it takes).
    """
    import torch

    counts = torch.tensor(sizes, device=device)
    total = int(sum(sizes))
    members = torch.repeat_interleave(
        torch.arange(len(sizes), device=device), counts, output_size=total
    )
    starts = torch.cumsum(counts, 0) - counts
    index = torch.arange(total, device=device) - starts[members]
    return tuple(x.to(torch.int32) for x in (index, counts[members], members))


def group_keys(states, layout):
    """Each element's hash keys: its kernel's (`states`: one per kernel).

    Gathered eagerly (`index_select`): a gather inside the compiled loop
    keeps TorchInductor from vectorising it (3x slower, measured).
    """
    members = layout[2]
    return tuple(k.index_select(0, members) for k in _keys(states))


def group_forward(keys, layout, *flat):
    """`fused_forward` of kernels laid end to end (see `group_mix`)."""
    s = _sorted_uniforms(*keys, *layout[:2], len(flat) - 1)
    return _telescope(flat, [x.to(flat[0].dtype) for x in s])


def group_backward(keys, layout, upstream, count):
    """`fused_backward` of kernels laid end to end (see `group_mix`)."""
    s = _sorted_uniforms(*keys, *layout[:2], count)
    return _gaps_times(upstream, [x.to(upstream.dtype) for x in s])


def _telescope(copies, s):
    # The telescoping form, starting with one `lerp` (exact at both ends):
    # exactly W when every copy is W.
    import torch

    out = torch.lerp(copies[-1], copies[-2], s[-1])
    for j in range(len(copies) - 2):
        out = torch.addcmul(out, torch.sub(copies[j], copies[j + 1]), s[j])
    return out


def _gaps_times(upstream, s):
    # `p_k * upstream` from the products `t_j = s_j * upstream`: `t_0`,
    # `t_j - t_{j-1}`, `upstream - t_{e-2}`.
    t = [upstream * s_j for s_j in s]
    grads = [t[0]] + [t[j] - t[j - 1] for j in range(1, len(t))]
    grads.append(upstream - t[-1])
    return tuple(grads)


def _run(name, function, *args):
    """`function(*args)`, compiled once per process (dynamic sizes).

    Traced into the user's compiled step as is; eager in every later call
    once a compilation has failed, after one warning (see the module
    docstring). An error that the eager call raises too is the caller's.
    """
    import torch

    if torch.compiler.is_compiling() or _COMPILED.get("failed"):
        return function(*args)
    if name not in _COMPILED:
        _COMPILED[name] = torch.compile(function, dynamic=True)
    try:
        return _COMPILED[name](*args)
    except Exception as error:  # noqa: BLE001 - reported once, then eager
        result = function(*args)
        _COMPILED["failed"] = True
        warnings.warn(
            "keras_mk: `torch.compile` of MK's draw-and-mix failed "
            f"({type(error).__name__}: {str(error)[:300]}). It runs "
            "eagerly from now on: the same draws, slower.",
            RuntimeWarning,
            stacklevel=2,
        )
        return result


def _fused_function():
    import torch

    class FusedMix(torch.autograd.Function):
        @staticmethod
        def forward(ctx, state, *flat):
            ctx.save_for_backward(state)
            ctx.count = len(flat) - 1
            # Detached: no `_base` view for TorchDynamo to guard on (one
            # compilation for every kernel shape).
            flat = [f.detach() for f in flat]
            return _run("forward", fused_forward, state, *flat)

        @staticmethod
        def backward(ctx, upstream):
            (state,) = ctx.saved_tensors
            grads = _run(
                "backward",
                fused_backward,
                state,
                upstream.contiguous(),
                ctx.count,
            )
            return (None, *grads)

    return FusedMix


@functools.cache
def mixes_rows(shape, p_shape):
    """Whether a contiguous kernel of `shape` sharing a `p` of `p_shape`
    mixes its rows in compiled loops: large enough
    (`SHARED_MIN_ELEMENTS`) and `p` repeating along its leading axes.
    Cached: asked at every training call."""
    return math.prod(shape) >= SHARED_MIN_ELEMENTS and (
        repeats_along_leading_axes(shape, p_shape)
    )


def repeats_along_leading_axes(shape, p_shape):
    """Whether a `p` of `p_shape` broadcast to `shape` repeats every
    `prod(p_shape)` elements of the flat kernel: 1s on leading axes, the
    kernel's own sizes after them (one `p` per output unit of a `Dense`
    or conv kernel, one per layer)."""
    if len(shape) != len(p_shape):
        return False
    lead = 0
    while lead < len(p_shape) and p_shape[lead] == 1:
        lead += 1
    return tuple(p_shape[lead:]) == tuple(shape[lead:])


def _group_function():
    import torch

    class GroupMix(torch.autograd.Function):
        @staticmethod
        def forward(ctx, layout, states, *flat):
            keys = group_keys(states, layout)
            ctx.save_for_backward(*keys)
            ctx.layout = layout[:2]
            ctx.count = len(flat) - 1
            flat = [f.detach() for f in flat]
            return _run("group_forward", group_forward, keys, layout[:2], *flat)

        @staticmethod
        def backward(ctx, upstream):
            grads = _run(
                "group_backward",
                group_backward,
                ctx.saved_tensors,
                ctx.layout,
                upstream.contiguous(),
                ctx.count,
            )
            return (None, None, *grads)

    return GroupMix


def group_mix(states, layout, flat):
    """The mixes of several flat kernels laid end to end, in one call.

    Kernel `m`'s mix is `fused_forward(states[m], ...)` of its own copies,
    bit for bit: its uniforms hash its own indices with its own keys.

    Args:
        states: `(n, 2)` seed states, one per kernel.
        layout: `group_layout` of the kernels' sizes.
        flat: the `expansion` copies, each the kernels' copies
            concatenated.

    Returns:
        The mixed kernels, concatenated (its gradient reaches `flat`).
    """
    if "group" not in _FUNCTIONS:
        _FUNCTIONS["group"] = _group_function()
    return _FUNCTIONS["group"].apply(layout, states, *flat)


def fused_mix(shape, expansion):
    """The draw, the mix and its gradient of a kernel of `shape`, fused.

    The values are those of `sampled_mix(copies, state, shape,
    hashed=True)`, up to the rounding of the mix. A `p` broadcast along
    the leading axes of the copies (`shape` has 1s there: one `p` per
    output unit or per layer) on a large kernel mixes each row of it with
    `p` in compiled loops (`mix`); one broadcast along other axes, or
    copies laid out in another order in memory, are drawn by another
    compiled function and mixed eagerly.

    Returns:
        A function `(copies, seed_generator) -> mixed kernel`.
    """
    size = int(np.prod(shape))
    shape = tuple(shape)

    count = expansion - 1

    def fused(copies, seed_generator):
        kernel = tuple(copies[0].shape)
        if kernel == shape and copies[0].is_contiguous():
            return fused_alone(copies, seed_generator)
        # `p` shared along some axes, or a kernel laid out in memory in
        # another order than its shape's (Keras's `orthogonal` leaves one
        # transposed): `p`'s own elements drawn by a compiled function.
        s = _run(
            "spacings",
            hashed_spacings,
            seed_generator.next(),
            size,
            count,
            copies[0].device,
        )
        if copies[0].is_contiguous() and mixes_rows(kernel, shape):
            # Shared along the leading axes (per unit, per layer): each
            # row of the kernel mixed with `p` by one compiled loop
            # forward and one backward.
            rows = [c.reshape(-1, size) for c in copies]
            s = [x.to(copies[0].dtype) for x in s]
            return mix(rows, s, compiled=True).reshape(kernel)
        # Else the mix eager, in the kernel's own layout (a matmul rounds
        # differently on another one).
        s = [x.reshape(shape).to(copies[0].dtype) for x in s]
        return mix(copies, s)

    def fused_alone(copies, seed_generator):
        if "fused" not in _FUNCTIONS:
            _FUNCTIONS["fused"] = _fused_function()
        flat = [c.reshape(size) for c in copies]
        out = _FUNCTIONS["fused"].apply(seed_generator.next(), *flat)
        return out.reshape(shape)

    return fused


def mix(copies, s, compiled=False):
    """`sum_k p_k copies[k]` (`p` the gaps of `s`) with its gradient.

    `compiled`: one compiled loop forward and one backward (a kernel's
    rows sharing one `p`, see `SHARED_MIN_ELEMENTS`), else eager ops.
    """
    if "mix" not in _FUNCTIONS:
        _FUNCTIONS["mix"] = _mix_function()
    return _FUNCTIONS["mix"].apply(compiled, list(s), *copies)


def _mix_function():
    import torch

    class Mix(torch.autograd.Function):
        @staticmethod
        def forward(ctx, compiled, s, *copies):
            ctx.s, ctx.compiled = s, compiled
            if compiled:
                # Detached: no `_base` view for TorchDynamo to guard on.
                copies = [c.detach() for c in copies]
                return _run("shared_forward", _telescope, copies, s)
            return _telescope(copies, s)

        @staticmethod
        def backward(ctx, upstream):
            # A conv's upstream is a permuted view (Keras transposes the
            # kernel to PyTorch's layout): made contiguous once, like the
            # copies, so the passes stream memory in order.
            upstream = upstream.contiguous()
            if ctx.compiled:
                grads = _run("shared_backward", _gaps_times, upstream, ctx.s)
            else:
                grads = _gaps_times(upstream, ctx.s)
            return (None, None, *grads)

    return Mix

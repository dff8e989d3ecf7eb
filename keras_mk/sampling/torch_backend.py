"""PyTorch: parallel CPU uniforms and the mix as an autograd Function.

`torch.rand` is one mt19937 stream, on one core. A draw of at least
`BLOCK` elements on the CPU is cut into blocks of `BLOCK`, each from its
own PCG64 generator seeded by (seed state, block index), filled by a thread
pool (NumPy releases the GIL while it fills): ~1.5x faster per core than
mt19937, and on every core. The values depend only on the seed state and
the shape, never on the number of threads.

PyTorch has no `ops.custom_gradient`: the mix's hand-written gradient is an
autograd Function with in-place accumulation.
"""

import concurrent.futures

import keras
import numpy as np
from keras import ops

from keras_mk import _keras_private
from keras_mk.sampling import counter_hash
from keras_mk.sampling.cores import available_cores

BLOCK = 1 << 18
_POOL = []
_MIX = []


def uses_parallel_uniforms(shape, seed):
    """Whether `uniforms(shape, seed)` fills blocks on the CPU in parallel."""
    if seed is None or int(np.prod(shape)) < BLOCK:
        return False
    import torch

    if torch.compiler.is_compiling():  # traced by `jit_compile=True`
        return False
    state = seed.state.value if hasattr(seed, "state") else seed
    return not hasattr(state, "device") or state.device.type == "cpu"


def generator_uniforms(shape, seed):
    """`keras.random.uniform(shape, seed=seed)`, float32, the same values.

    Keras draws `torch.rand` and then computes `(1 - 0) * u + 0`: two more
    passes over the draw, exact no-ops. Under `torch.compile` (and on the
    meta device) this is Keras's own call.
    """
    import torch

    generator = None
    if not torch.compiler.is_compiling():
        generator = _keras_private.torch_seed_generator(seed)
    if generator is None:
        return keras.random.uniform(shape, seed=seed)
    return torch.rand(
        size=tuple(shape),
        generator=generator,
        dtype=torch.float32,
        device=generator.device,
    )


def _thread_pool():
    if not _POOL:
        _POOL.append(concurrent.futures.ThreadPoolExecutor(available_cores()))
    return _POOL[0]


def parallel_uniforms(shape, seed):
    """Uniform[0, 1) float32 of `shape` (a torch tensor on the CPU)."""
    import torch

    words = ops.convert_to_numpy(counter_hash.seed_state(seed))
    key = [int(w) & 0xFFFFFFFF for w in words.astype(np.int64)]
    size = int(np.prod(shape))
    out = np.empty(size, dtype=np.float32)

    def fill(start):
        block = np.random.SeedSequence(key + [start // BLOCK])
        generator = np.random.Generator(np.random.PCG64(block))
        generator.random(out=out[start : start + BLOCK], dtype=np.float32)

    list(_thread_pool().map(fill, range(0, size, BLOCK)))
    return torch.from_numpy(out).reshape(tuple(shape))


def mix(copies, s):
    """`sum_k p_k copies[k]` (`p` the gaps of `s`) with its gradient."""
    if not _MIX:  # defined once: a training call is on the hot path
        _MIX.append(_mix_function())
    return _MIX[0].apply(list(s), *copies)


def _mix_function():
    import torch

    class Mix(torch.autograd.Function):
        @staticmethod
        def forward(ctx, s, *copies):
            ctx.s = s
            # The telescoping form, starting with one `lerp` (exact at
            # both ends): exactly W when every copy is W.
            out = torch.lerp(copies[-1], copies[-2], s[-1])
            for j in range(len(copies) - 2):
                out.addcmul_(torch.sub(copies[j], copies[j + 1]), s[j])
            return out

        @staticmethod
        def backward(ctx, upstream):
            # `p_k * upstream` from the products `t_j = s_j * upstream`:
            # `t_0`, `t_j - t_{j-1}`, `upstream - t_{e-2}`; fewer passes
            # over the kernel than forming the gaps first. A conv's
            # upstream is a permuted view (Keras transposes the kernel
            # to PyTorch's layout): made contiguous once, like the
            # copies, so the passes below stream memory in order.
            upstream = upstream.contiguous()
            t = [torch.mul(upstream, s_j) for s_j in ctx.s]
            grads = [t[0]]
            grads += [torch.sub(t[j], t[j - 1]) for j in range(1, len(t))]
            grads.append(torch.sub(upstream, t[-1]))
            return (None, *grads)

    return Mix

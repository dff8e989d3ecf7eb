"""PyTorch: one draw and mix for all the small kernels of a forward pass.

Each kernel's compiled draw-and-mix (`torch_backend.fused_mix`) costs about
220 us a step of Python and dispatch, whatever the kernel's size: on a
mobile model's many small kernels (depthwise, 1x1, squeeze-excite) that is
most of what MK adds. A Keras model's forward pass asks its MK layers for
their mixed kernels one by one, so here the kernels that one outermost call
(`model(x, training=True)`: one Keras call context) asked for are
remembered, and at the next call of the same outermost layer the first
request draws and mixes all of the small ones at once: their copies
concatenated, one compiled loop forward and one backward
(`torch_backend.group_mix`). Each later request takes its share.

The draws are the ones each kernel would draw alone, bit for bit: kernel
`m` is drawn from the state its seed generator will have when it asks
(the state now, advanced once per earlier request of that generator in the
remembered call). A request takes its share only if its copies are the
same tensors and its generator moved exactly as predicted (its state
tensor's version counter: no device synchronisation); then the generator
is advanced as drawing alone would. Otherwise the request draws alone:
a layer called twice in one pass, a model whose path changes, a generator
advanced some other way. A share nobody takes costs its compute and
nothing else: its generator is never advanced.
"""

import math
import threading
import weakref

import keras

from keras_mk import _keras_private
from keras_mk.sampling import torch_backend

#: Kernels of at most this many elements are drawn together. Larger ones
#: cost more to concatenate than their dispatch (measured in
#: `docs/performance.md`).
MAX_ELEMENTS = 2**16

_LOCAL = threading.local()
# (device, dtype) -> the increment of a seed state.
_STEPS = {}


def grouped(shape, expansion, fused):
    """`fused` (a kernel's own draw-and-mix) taking its share of a group.

    Args:
        shape: the shape of the kernel's `p`.
        expansion: the number of copies.
        fused: `(copies, seed_generator) -> mixed kernel`, drawing alone.

    Returns:
        A function `(copies, seed_generator) -> mixed kernel`, the same
        values as `fused`.
    """
    shape = tuple(shape)
    size = math.prod(shape)

    def mix(copies, seed_generator):
        taken = _request(
            copies,
            seed_generator,
            size <= MAX_ELEMENTS
            and tuple(copies[0].shape) == shape
            and copies[0].is_contiguous(),
        )
        if taken is not None:
            return taken.view(shape)
        return fused(copies, seed_generator)

    return mix


class _Call:
    """One outermost call: what it asked for and what was drawn for it."""

    def __init__(self, context):
        self.context = weakref.ref(context)
        self.entry = weakref.ref(context.entry_layer)
        self.requests = []
        self.drawn = {}


def _request(copies, generator, groupable):
    """This kernel's share of the call's grouped draw, or None.

    Records the request (what the model's next call draws ahead) and, if
    a share was drawn for these copies and still fits, takes it and
    advances `generator` as drawing alone would. None: draw alone.
    """
    import torch

    if (
        not isinstance(generator, keras.random.SeedGenerator)
        or torch.compiler.is_compiling()
    ):
        return None
    context = _keras_private.current_call_context()
    if context is None or _keras_private.in_stateless_scope():
        return None
    call = getattr(_LOCAL, "call", None)
    if call is None or call.context() is not context:
        call = _begin(call, context)
    call.requests.append(
        (tuple(weakref.ref(c) for c in copies), weakref.ref(generator))
        + (groupable,)
    )
    share = call.drawn.pop(id(copies[0]), None) if groupable else None
    if share is None or not share.fits(copies, generator):
        return None
    _advance(generator.state.value)
    return share.value


def _advance(state):
    """`SeedGenerator.next()`'s update, in place: one op, not five.

    The same new state (`+ [0, 1]`) and one version step, as Keras's
    `assign` (`copy_`) makes; outside a `keras.StatelessScope` only.
    """
    import torch

    key = (state.device, state.dtype)
    step = _STEPS.get(key)
    if step is None:
        step = _STEPS[key] = torch.tensor(
            [0, 1], dtype=state.dtype, device=state.device
        )
    with torch.no_grad():
        state.add_(step)


def _begin(previous, context):
    """Starts a call: learns from the previous one, draws for this one."""
    plans = getattr(_LOCAL, "plans", None)
    if plans is None:
        plans = _LOCAL.plans = weakref.WeakKeyDictionary()
    entry = None if previous is None else previous.entry()
    if entry is not None:
        plans[entry] = _Plan.learn(previous.requests, plans.get(entry))
    call = _LOCAL.call = _Call(context)
    plan = plans.get(context.entry_layer)
    if plan is not None:
        call.drawn = plan.draw()
    return call


class _Share:
    """One kernel's part of a group's mix, and what must hold to take it."""

    __slots__ = ("value", "copies", "state", "version", "grad")

    def __init__(self, value, copies, state, version, grad):
        self.value = value
        self.copies = copies
        self.state = state
        self.version = version
        self.grad = grad

    def fits(self, copies, generator):
        import torch

        state = generator.state.value
        return (
            state is self.state
            and state._version == self.version
            and torch.is_grad_enabled() == self.grad
            and len(copies) == len(self.copies)
            and all(c is mine for c, mine in zip(copies, self.copies))
        )


class _Plan:
    """The small kernels a call asked for, to draw together next time."""

    def __init__(self, members, signature):
        # (copies refs, generator ref, generator's earlier requests)
        self.members = members
        self.signature = signature
        self.layout = None

    @classmethod
    def learn(cls, requests, known=None):
        """The plan for a call asking what `requests` asked, or None.

        `known` (the last plan) is kept if it is the same plan: its
        layout is built once.
        """
        earlier, seen, members = {}, set(), []
        kind = None
        for copies, generator, groupable in requests:
            offset = earlier.get(generator, 0)
            earlier[generator] = offset + 1
            first = copies[0]()
            if not groupable or first is None or id(first) in seen:
                continue
            seen.add(id(first))
            this = (first.dtype, first.device, len(copies))
            kind = this if kind is None else kind
            if this == kind:
                members.append((copies, generator, offset))
        if len(members) < 2:
            return None
        signature = [
            (id(refs[0]()), id(generator()), offset)
            for refs, generator, offset in members
        ]
        if known is not None and known.signature == signature:
            # Same ids of objects still alive: the same objects.
            if all(m[0][0]() is not None for m in known.members):
                return known
        return cls(members, signature)

    def draw(self):
        """Every member's mix, keyed by its copy 0's id; {} if one died."""
        import torch

        copies, generators = [], {}
        for refs, generator_ref, _ in self.members:
            copies.append([r() for r in refs])
            generator = generator_ref()
            if generator is None or any(c is None for c in copies[-1]):
                return {}
            generators.setdefault(generator_ref, generator.state.value)
        states = list(generators.values())
        if self.layout is None:
            self.layout = self._layout(copies, generators)
        which, steps, layout, sizes = self.layout
        predicted = torch.stack(states)[which] + steps
        flat = [
            torch.cat([c[k].reshape(-1) for c in copies])
            for k in range(len(copies[0]))
        ]
        mixed = torch_backend.group_mix(predicted, layout, flat)
        grad = torch.is_grad_enabled()
        shares = {}
        for (_, generator_ref, offset), mine, value in zip(
            self.members, copies, mixed.split(sizes)
        ):
            state = generators[generator_ref]
            shares[id(mine[0])] = _Share(
                value, mine, state, state._version + offset, grad
            )
        return shares

    def _layout(self, copies, generators):
        import torch

        device = copies[0][0].device
        order = {ref: i for i, ref in enumerate(generators)}
        which = torch.tensor(
            [order[g] for _, g, _ in self.members], device=device
        )
        steps = torch.tensor(
            [[0, offset] for *_, offset in self.members],
            dtype=torch.int32,
            device=device,
        )
        sizes = [c[0].numel() for c in copies]
        layout = torch_backend.group_layout(sizes, device)
        return which, steps, layout, sizes

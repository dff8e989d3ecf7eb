"""How an MK layer's variables are written to and read from a weights store.

The store of an MK layer holds every copy of every simulated weight (in
`mk_weights` order, then the bias copies), the seed state, and a record of
the layer's class and MK arguments (`RECORD_KEY`). A plain Keras layer's
store (its weights, no record) also loads: each weight is replicated into
every copy, so MK training can start from a plain checkpoint.
"""

import json

import numpy as np

from keras_mk.fresh_copy import fresh_copy

RECORD_KEY = "keras_mk"


def _record(layer):
    """The layer's class and MK arguments, as a uint8 array."""
    text = json.dumps(
        {"class_name": type(layer).__name__, "arguments": layer.mk_arguments()}
    )
    return np.frombuffer(text.encode("utf-8"), dtype=np.uint8)


def variables(layer):
    """A LoRA layer's frozen kernel variables, every copy of every
    simulated weight, then the seed state (if any)."""
    result = layer._frozen_base()
    result += [v for copies in layer._copies.values() for v in copies]
    if layer.seed_generator is not None:
        result.append(layer.seed_generator.state)
    return result


def save(layer, store):
    """Writes the layer's variables and its record to `store`."""
    if not layer.built:
        return
    for i, v in enumerate(variables(layer)):
        store[str(i)] = v
    store[RECORD_KEY] = _record(layer)


def _load_plain_into_lora(layer, store, base):
    values = [store[str(i)] for i in range(len(base))]
    for variable, value in zip(base, values):
        variable.assign(value)
    bias = layer._copies.get("bias")
    if bias:
        for copy in bias:
            copy.assign(store[str(len(base))])
    for factor in type(layer).lora_factors:
        for copy in layer._copies[factor]:
            copy.assign(np.zeros(tuple(copy.shape), copy.dtype))


def load(layer, store):
    """Reads an MK layer's store, or a plain layer's into every copy.

    Raises:
        ValueError: naming the layer, when the store holds no variables or
            another number of them than this layer's (another expansion).
    """
    if not layer.built:
        return
    keys = [k for k in store.keys() if k != RECORD_KEY]
    mine = variables(layer)
    groups = [[v] for v in layer._frozen_base()]
    groups += list(layer._copies.values())
    recorded = RECORD_KEY in store.keys()
    base = layer._frozen_base()
    if (
        not recorded
        and base
        and len(keys) == len(base) + 1 - (layer.__dict__.get("_bias") is None)
    ):
        # A Keras layer's store (a LoRA layer's: its adapters merged into
        # the kernel): the kernel and the bias; the factors restart at
        # zero, as Keras's LoRA layers load it.
        _load_plain_into_lora(layer, store, base)
        return
    if not recorded and len(keys) == len(groups):
        # A plain layer's store: one value per weight. With one copy and
        # no random state it is also this layer's own layout.
        for i, copies in enumerate(groups):
            copies[0].assign(store[str(i)])
            for copy in copies[1:]:
                copy.assign(fresh_copy(copies[0].value))
        return
    if not recorded and len(keys) == len(mine) + 1:
        keys = keys[:-1]  # keras_mk 0.1 saved a seed state for all layers
    if not keys:
        raise ValueError(
            f"The weights file has no variables for MK layer "
            f"'{layer.name}'. Keras addresses the layers of a Sequential "
            "or Functional model by class name (`dense` in a plain "
            "model's file, `mk_dense` in an MK model's), so a plain "
            "checkpoint of such a model does not load into its MK "
            "version. Load it into the plain model, then convert: "
            "`plain.load_weights(path)`, then "
            "`keras_mk.clone_model(plain)`."
        )
    if len(keys) != len(mine):
        raise ValueError(
            f"Layer '{layer.name}' expected {len(mine)} variables "
            f"(expansion={layer.expansion}, expand_bias="
            f"{layer.expand_bias}) or a plain layer's {len(groups)}, but "
            f"the saved state has {len(keys)}. Was it saved with another "
            "expansion?"
        )
    for i, v in enumerate(mine):
        v.assign(store[str(i)])

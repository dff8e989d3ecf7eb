"""The one walk over a model's layers, shared by conversion, training and
diagnostics."""

from keras_mk import _keras_private
from keras_mk.layers.mk_layer import MKLayer


def iter_layers(model):
    """Yields `(path, layer)` for every layer nested in `model`, once each.

    The path joins layer names from the model down (`"block_0/attn/query"`)
    and does not include the model's own name. A layer shared between
    several parents is yielded once, at the first path that reaches it.
    Layers are visited depth first in tracking order, which is the same for
    two models built from the same config.
    """
    seen = {id(model)}

    def visit(layer, prefix):
        for sublayer in _keras_private.sublayers(layer):
            if id(sublayer) in seen:
                continue
            seen.add(id(sublayer))
            path = prefix + sublayer.name
            yield path, sublayer
            yield from visit(sublayer, path + "/")

    yield from visit(model, "")


def mk_layers(model, include_unexpanded=False):
    """The MK layers of `model` (or `model` itself if it is one), in order.

    Args:
        model: a Keras layer or model.
        include_unexpanded: whether to include MK layers with `expansion=1`
            (they have no `p` to choose). Default False.

    Returns:
        A list of MK layers, each once, in depth-first order (the order of
        `iter_layers`).
    """
    candidates = [model] + [layer for _, layer in iter_layers(model)]
    return [
        layer
        for layer in candidates
        if isinstance(layer, MKLayer)
        and (include_unexpanded or layer.expansion > 1)
    ]

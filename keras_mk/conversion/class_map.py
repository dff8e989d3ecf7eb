"""The class map: which Keras layers have a Majority Kernels counterpart.

Conversion dispatches on the exact class of a layer: a subclass of `Dense`
may change `call` in ways an MK layer would silently drop, so it is left
alone unless it is the plain Keras class.

The map is built in one place (`class_map`), the first time a lookup needs
it. KerasHub is optional and its import costs seconds (it imports
TensorFlow): `import keras_mk` never imports it, and KerasHub's layers join
the map once `keras_hub` has been imported by the user (the map is then
built a second time, with them).
"""

import dataclasses
import functools
import importlib
import sys

import keras

from keras_mk import _keras_private
from keras_mk import layers as mk_layers
from keras_mk.layers.walk import iter_layers

NOT_SELECTED = "not selected for conversion"
_KERNEL_NAMES = ("kernel", "embeddings")


@dataclasses.dataclass(frozen=True)
class ClassMap:
    """Keras class -> MK class, its inverse, and which are tables."""

    mk: dict
    plain: dict
    embeddings: frozenset


def _keras_pairs():
    return {
        keras.layers.Dense: mk_layers.MKDense,
        keras.layers.EinsumDense: mk_layers.MKEinsumDense,
        keras.layers.Conv1D: mk_layers.MKConv1D,
        keras.layers.Conv2D: mk_layers.MKConv2D,
        keras.layers.Conv3D: mk_layers.MKConv3D,
        keras.layers.Conv1DTranspose: mk_layers.MKConv1DTranspose,
        keras.layers.Conv2DTranspose: mk_layers.MKConv2DTranspose,
        keras.layers.Conv3DTranspose: mk_layers.MKConv3DTranspose,
        keras.layers.DepthwiseConv1D: mk_layers.MKDepthwiseConv1D,
        keras.layers.DepthwiseConv2D: mk_layers.MKDepthwiseConv2D,
        keras.layers.SeparableConv1D: mk_layers.MKSeparableConv1D,
        keras.layers.SeparableConv2D: mk_layers.MKSeparableConv2D,
        # A recurrent layer and its cell convert together (`carried_cell`).
        keras.layers.SimpleRNN: mk_layers.MKSimpleRNN,
        keras.layers.LSTM: mk_layers.MKLSTM,
        keras.layers.GRU: mk_layers.MKGRU,
        keras.layers.SimpleRNNCell: mk_layers.MKSimpleRNNCell,
        keras.layers.LSTMCell: mk_layers.MKLSTMCell,
        keras.layers.GRUCell: mk_layers.MKGRUCell,
        keras.layers.ConvLSTM1D: mk_layers.MKConvLSTM1D,
        keras.layers.ConvLSTM2D: mk_layers.MKConvLSTM2D,
        keras.layers.ConvLSTM3D: mk_layers.MKConvLSTM3D,
        _keras_private.conv_lstm_cell_class(): mk_layers.MKConvLSTMCell,
        # Embedding tables: converted when selected (`embeddings=True`).
        keras.layers.Embedding: mk_layers.MKEmbedding,
        keras.layers.ReversibleEmbedding: mk_layers.MKReversibleEmbedding,
    }


@functools.lru_cache(maxsize=2)
def _build(with_keras_hub):
    pairs = _keras_pairs()
    tables = {keras.layers.Embedding, keras.layers.ReversibleEmbedding}
    if with_keras_hub:
        keras_hub = sys.modules["keras_hub"]
        hub = importlib.import_module("keras_mk.layers.mk_hub_embedding")
        hub_pairs = {
            keras_hub.layers.ReversibleEmbedding: hub.MKHubReversibleEmbedding,
            keras_hub.layers.PositionEmbedding: hub.MKPositionEmbedding,
        }
        pairs.update(hub_pairs)
        tables.update(hub_pairs)
    return ClassMap(
        mk=pairs,
        plain={mk: plain for plain, mk in pairs.items()},
        embeddings=frozenset(tables),
    )


def class_map():
    """The class map, with KerasHub's layers once `keras_hub` is imported."""
    return _build("keras_hub" in sys.modules)


def check_model(model, function):
    """Raises unless `model` is a built `keras.Model`.

    Args:
        model: what the user passed.
        function: the public function's name, for the message.
    """
    if not isinstance(model, keras.Model):
        raise TypeError(
            f"`keras_mk.{function}` expects a `keras.Model`. "
            f"Received: model={model!r} of type {type(model).__name__}"
        )
    if not model.built:
        raise ValueError(
            f"`keras_mk.{function}` needs a built model, so that every "
            f"kernel exists. Model '{model.name}' is not built: call it on "
            "a batch of data or call `model.build(input_shape)` first."
        )


@dataclasses.dataclass(frozen=True)
class Surveyed:
    """One layer of a model, as conversion sees it.

    Attributes:
        path: the layer's path in the model (`"block_0/attn/query"`).
        layer: the layer.
        mk_class: its MK class (exact class match), or None.
        is_mk: whether it is already an MK layer.
        is_table: whether it is an embedding table (plain or MK).
        cell_path: for a recurrent layer of the map, its cell's path.
        lora_enabled: whether the layer has LoRA enabled.
        left_plain: why a layer holding a kernel has no MK class (None
            for a layer that has one, or holds no kernel).
    """

    path: str
    layer: object
    mk_class: type
    is_mk: bool
    is_table: bool
    cell_path: str
    lora_enabled: bool
    left_plain: str


def survey(model, function=None, include_root=False):
    """Checks `model` and describes each of its layers, in one walk.

    Args:
        model: what the user passed as the model (or a layer).
        function: the public function's name: `model` must then be a
            built `keras.Model` (`check_model`).
        include_root: list `model` itself first, at its name (the other
            paths then start with it).

    Returns:
        A list of `Surveyed`, in walk order (`iter_layers`).
    """
    if function is not None:
        check_model(model, function)
    table = class_map()
    walked = list(iter_layers(model))
    if include_root:
        walked = [(model.name, model)] + [
            (f"{model.name}/{path}", layer) for path, layer in walked
        ]
    paths = {id(layer): path for path, layer in walked}
    result = []
    for path, layer in walked:
        mk_class = table.mk.get(type(layer))
        is_mk = isinstance(layer, mk_layers.MKLayer)
        known = mk_class is not None or type(layer) in table.plain
        cell = getattr(layer, "cell", None) if known else None
        reason = None
        if mk_class is None and not is_mk:
            # Its own weights: not those of the layers nested in it.
            nested = {
                id(w)
                for inner, sublayer in walked
                if inner.startswith(path + "/")
                for w in sublayer.weights
            }
            kernels = [
                w
                for w in layer.weights
                if id(w) not in nested and "kernel" in w.name
            ]
        if mk_class is None and not is_mk and kernels:
            reason = (
                "a subclass of a supported layer: its `call` may differ"
                if isinstance(layer, tuple(table.mk))
                else "no MK version of this layer"
            )
        result.append(
            Surveyed(
                path=path,
                layer=layer,
                mk_class=mk_class,
                is_mk=is_mk,
                is_table=table.plain.get(type(layer), type(layer))
                in table.embeddings,
                cell_path=paths.get(id(cell)) if cell is not None else None,
                lora_enabled=bool(getattr(layer, "lora_enabled", False)),
                left_plain=reason,
            )
        )
    return result


def mk_classes():
    """Dict: each convertible Keras class -> its MK class."""
    return dict(class_map().mk)


def mk_class_for(layer):
    """The MK class for `layer`, or None when it has no counterpart."""
    return class_map().mk.get(type(layer))


def plain_class_for(layer):
    """The Keras class an MK layer extends, or None for other layers."""
    return class_map().plain.get(type(layer))


def plain_class_named(registered_name):
    """The Keras class of an MK class's registered name (or None)."""
    for mk, plain in class_map().plain.items():
        if registered_name == f"keras_mk>{mk.__name__}":
            return plain
    return None


def is_embedding(layer):
    """Whether `layer` (a plain or MK layer) is an embedding table."""
    table = class_map()
    return table.plain.get(type(layer), type(layer)) in table.embeddings


def supported_names():
    return ", ".join(sorted(cls.__name__ for cls in class_map().mk))


def serialized_names():
    """How the configs of convertible Keras classes name their class: the
    registered name (`"keras_hub>ReversibleEmbedding"`), or the class name
    of a built-in Keras layer (`"Dense"`, with no registered name)."""
    return {keras.saving.get_registered_name(c) for c in class_map().mk}


def carried_cell(layer):
    """The cell of a recurrent layer of the map (plain or MK), else None.

    The layer has no weights of its own; its cell holds them. The two
    convert together (either selected brings the other) and collapse
    together: the layer's class opens its cell's scope once per sequence.
    """
    if mk_class_for(layer) is None and plain_class_for(layer) is None:
        return None
    return getattr(layer, "cell", None)


def is_mk_layer(layer):
    return isinstance(layer, mk_layers.MKLayer)


def mk_layers_of(model):
    """`(path, layer)` for the MK layers of `model`."""
    return [(p, layer) for p, layer in iter_layers(model) if is_mk_layer(layer)]


def own_weights(layer):
    """The weights `layer` holds itself, not through a sublayer."""
    nested = {
        id(w)
        for sublayer in _keras_private.sublayers(layer)
        for w in sublayer.weights
    }
    return [w for w in layer.weights if id(w) not in nested]


def left_plain(model, kernels_only=False):
    """Layers of `model` holding a kernel that are not MK layers.

    Args:
        model: a built model.
        kernels_only: leave out embedding tables.

    Returns:
        A list of `(path, class_name, reason)`.
    """
    result = []
    kinds = _KERNEL_NAMES[:1] if kernels_only else _KERNEL_NAMES
    for path, layer in iter_layers(model):
        if is_mk_layer(layer):
            continue
        names = [w.name for w in own_weights(layer)]
        if not any(k in n for n in names for k in kinds):
            continue
        if mk_class_for(layer) is not None:
            reason = NOT_SELECTED
        elif isinstance(layer, tuple(class_map().mk)):
            reason = "a subclass of a supported layer: its `call` may differ"
        else:
            reason = "no MK version of this layer"
        result.append((path, type(layer).__name__, reason))
    return result

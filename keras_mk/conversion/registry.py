"""Which Keras layers have a Majority Kernels counterpart, and the walk.

Conversion dispatches on the exact class of a layer: a subclass of `Dense`
may change `call` in ways an MK layer would silently drop, so it is left
alone unless it is the plain Keras class.
"""

import importlib
import sys

import keras

from keras_mk import _keras_private
from keras_mk import layers as mk_layers
from keras_mk.layers.walk import iter_layers

MK_CLASSES = {
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
}
# Embedding tables: converted when selected (`clone_model(embeddings=True)`).
EMBEDDING_CLASSES = {keras.layers.Embedding}
MK_CLASSES[keras.layers.Embedding] = mk_layers.MKEmbedding
MK_CLASSES[keras.layers.ReversibleEmbedding] = mk_layers.MKReversibleEmbedding
EMBEDDING_CLASSES.add(keras.layers.ReversibleEmbedding)
PLAIN_CLASSES = {mk: plain for plain, mk in MK_CLASSES.items()}


def hub_classes():
    """Registers KerasHub's embedding layers, once `keras_hub` is imported.

    KerasHub is optional and its import costs seconds (it imports
    TensorFlow): `import keras_mk` never imports it. A KerasHub layer
    exists only once `keras_hub` is imported, so every lookup here first
    registers its MK classes if it is.
    """
    if "keras_hub" not in sys.modules or _HUB_REGISTERED:
        return
    _HUB_REGISTERED.append(True)
    keras_hub = sys.modules["keras_hub"]
    hub = importlib.import_module("keras_mk.layers.mk_hub_embedding")
    for plain, mk in (
        (keras_hub.layers.ReversibleEmbedding, hub.MKHubReversibleEmbedding),
        (keras_hub.layers.PositionEmbedding, hub.MKPositionEmbedding),
    ):
        MK_CLASSES[plain] = mk
        PLAIN_CLASSES[mk] = plain
        EMBEDDING_CLASSES.add(plain)


_HUB_REGISTERED = []


def is_embedding(layer):
    """Whether `layer` (a plain or MK layer) is an embedding table."""
    hub_classes()
    cls = PLAIN_CLASSES.get(type(layer), type(layer))
    return cls in EMBEDDING_CLASSES


NOT_SELECTED = "not selected for conversion"
_KERNEL_NAMES = ("kernel", "embeddings")


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
    for path, layer in iter_layers(model):
        if is_mk_layer(layer):
            continue
        names = [w.name for w in own_weights(layer)]
        kinds = _KERNEL_NAMES[:1] if kernels_only else _KERNEL_NAMES
        if not any(k in n for n in names for k in kinds):
            continue
        if mk_class_for(layer) is not None:
            reason = NOT_SELECTED
        elif isinstance(layer, tuple(MK_CLASSES)):
            reason = "a subclass of a supported layer: its `call` may differ"
        else:
            reason = "no MK version of this layer"
        result.append((path, type(layer).__name__, reason))
    return result


def serialized_names():
    """How the configs of convertible Keras classes name their class: the
    registered name (`"keras_hub>ReversibleEmbedding"`), or the class name
    of a built-in Keras layer (`"Dense"`, with no registered name)."""
    hub_classes()
    return {keras.saving.get_registered_name(cls) for cls in MK_CLASSES}


def supported_names():
    hub_classes()
    return ", ".join(sorted(cls.__name__ for cls in MK_CLASSES))


def mk_class_for(layer):
    """The MK class for `layer`, or None when it has no counterpart."""
    hub_classes()
    return MK_CLASSES.get(type(layer))


def plain_class_for(layer):
    """The Keras class an MK layer extends, or None for other layers."""
    hub_classes()
    return PLAIN_CLASSES.get(type(layer))


def carried_cell(layer):
    """The cell of a recurrent layer of the table (plain or MK), else None.

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

"""The only module of keras_mk that touches private Keras API.

Keras keeps some machinery private that a library converting layers in place
needs (unlocking a built layer's state tracker, walking nested layers,
swapping a built layer's class, the layout of a `.keras` archive).
Everything private lives here, so a Keras upgrade touches one file; each
function is pinned by `tests/test_keras_private.py`, which fails loudly when
an upgrade breaks it.
"""

import contextlib
import copy
import importlib
import inspect
import json
import os
import shutil
import sys
import tempfile
import zipfile

import keras


@contextlib.contextmanager
def unlocked_state(layer):
    """Lets a built layer accept new variables, as `Dense.enable_lora` does."""
    tracker = layer._tracker
    was_locked = tracker.locked
    tracker.unlock()
    try:
        yield
    finally:
        if was_locked:
            tracker.lock()


class _TensorFlowIfImported:
    """Keras's lazy `tensorflow` module, "available" only once imported.

    Keras's serializer asks `tf.available` to test
    `isinstance(obj, tf.TensorShape)` (and `tf.DType`, `tf.TypeSpec`) on
    every object, from every `get_config`: that imports TensorFlow whenever
    it is installed, about 10 s, on any backend. While TensorFlow is not
    imported no object can be of a TensorFlow type, so answering False is
    exact; once it is imported, this defers to Keras.
    """

    def __init__(self, lazy_module):
        self._lazy_module = lazy_module

    @property
    def available(self):
        return "tensorflow" in sys.modules and self._lazy_module.available

    def __getattr__(self, name):
        return getattr(self._lazy_module, name)


def serialize_without_importing_tensorflow():
    """On JAX and PyTorch, (de)serializing a model never imports TensorFlow."""
    from keras.src.saving import serialization_lib

    lazy = getattr(serialization_lib, "tf", None)
    if keras.backend.backend() == "tensorflow" or lazy is None:
        return
    if not isinstance(lazy, _TensorFlowIfImported):
        serialization_lib.tf = _TensorFlowIfImported(lazy)


def sublayers(layer):
    """Direct sublayers of `layer`, whatever attribute holds them."""
    return list(layer._flatten_layers(include_self=False, recursive=False))


def layer_test_case():
    """Keras's own `TestCase` (with `run_layer_test`), for the test suite."""
    from keras.src import testing

    return testing.TestCase


def conv_lstm_cell_class():
    """Keras's `ConvLSTMCell` (the cell of `ConvLSTM1D/2D/3D`; not public)."""
    from keras.src.layers.rnn import conv_lstm

    return conv_lstm.ConvLSTMCell


def keras_layer_test_module(name):
    """Keras's own tests of a layer kind, e.g. `"rnn.lstm_test"`.

    Keras's wheel ships `keras/src/layers/.../*_test.py`; the suite runs
    them against the MK classes (see `layers_replaced`).
    """
    return importlib.import_module(f"keras.src.layers.{name}")


@contextlib.contextmanager
def layers_replaced(replacements):
    """`keras.src.layers.<name>` (what Keras's tests call) replaced.

    Args:
        replacements: `{name: class}`, restored when the context closes.
    """
    from keras.src import layers

    saved = {name: getattr(layers, name) for name in replacements}
    for name, cls in replacements.items():
        setattr(layers, name, cls)
    try:
        yield
    finally:
        for name, cls in saved.items():
            setattr(layers, name, cls)


def in_symbolic_scope():
    """True while Keras traces a layer with symbolic tensors."""
    from keras.src.backend.common.symbolic_scope import in_symbolic_scope

    return in_symbolic_scope()


def current_call_context():
    """The call context of the outermost layer call running, or None.

    One object per top-level call (`model(x)`), shared by every layer that
    call runs; `entry_layer` is the outermost layer.
    """
    from keras.src.backend.common import global_state

    return global_state.get_global_attribute("current_call_ctx")


def in_stateless_scope():
    """True inside a `keras.StatelessScope` (assignments are recorded)."""
    from keras.src.backend.common.stateless_scope import in_stateless_scope

    return in_stateless_scope()


def refresh_call_signature(layer):
    """Re-reads `layer.call`'s signature after its class was swapped.

    `Layer.__init__` caches whether `call` takes `training` (and `mask`);
    a plain `Conv2D` does not, its MK class does.
    """
    layer._call_signature = inspect.signature(layer.call)
    names = [p.name for p in layer._call_signature.parameters.values()]
    layer.call_signature_parameters = names
    layer._call_has_training_arg = "training" in names
    layer._call_has_mask_arg = "mask" in names
    layer._call_has_context_arg = {
        arg: arg in names for arg in layer._call_context_args
    }


def set_keras_mask(x, mask):
    """Attaches a Keras mask to a layer's output, as Keras layers do in
    `call` (`ReversibleEmbedding`'s lookup)."""
    from keras.src.backend.common.masking import set_keras_mask as set_mask

    set_mask(x, mask)


def no_autocast():
    """A scope in which variables read in their own dtype (no autocast)."""
    from keras.src.backend.common.variables import AutocastScope

    return AutocastScope(None)


# What a KerasHub backbone's `enable_lora` records beside its layers'
# LoRA (read by `save_lora_weights` and `load_lora_weights`).
_HUB_LORA_STATE = ("_lora_enabled_layers", "_lora_rank")


def hub_lora_state(layer):
    """The LoRA record of a KerasHub backbone (a JSON-able dict), or {}."""
    return {
        name: copy.deepcopy(list(value) if name.endswith("s") else value)
        for name in _HUB_LORA_STATE
        if (value := layer.__dict__.get(name)) is not None
    }


def set_hub_lora_state(layer, state):
    """Gives a KerasHub backbone the LoRA record `hub_lora_state` read."""
    for name, value in state.items():
        setattr(layer, name, copy.deepcopy(value))


@contextlib.contextmanager
def unallocated_variables():
    """A scope in which new Keras variables hold no value yet (Keras's
    stateless scope, its variables left uninitialized): a model built in
    it allocates nothing until `initialize_with` gives each variable its
    value, or `replace_variable` drops it.

    A variable made from a value rather than an initializer (an
    optimizer's iteration count, which a KerasHub task's `__init__`
    creates by compiling) is made outside the scope, as usual: Keras's
    stateless scope refuses it.
    """
    from keras.src.backend.common import global_state
    from keras.src.backend.common import variables
    from keras.src.backend.common.stateless_scope import StatelessScope

    original = variables.Variable.__init__

    def __init__(self, initializer, *args, **kwargs):
        if callable(initializer):
            return original(self, initializer, *args, **kwargs)
        scope = global_state.get_global_attribute("stateless_scope")
        global_state.set_global_attribute("stateless_scope", None)
        try:
            return original(self, initializer, *args, **kwargs)
        finally:
            global_state.set_global_attribute("stateless_scope", scope)

    variables.Variable.__init__ = __init__
    try:
        with StatelessScope(initialize_variables=False):
            yield
    finally:
        variables.Variable.__init__ = original


def initialize_with(variable, value):
    """Gives a variable created in `unallocated_variables` its value."""
    variable._initializer = lambda shape, dtype=None: value
    variable._deferred_initialize()
    _forget_uninitialized([variable])


def _forget_uninitialized(variables):
    from keras.src.backend.common import global_state

    ids = {id(v) for v in variables}
    pending = global_state.get_global_attribute("uninitialized_variables")
    if pending:
        pending[:] = [v for v in pending if id(v) not in ids]


def replace_variable(layer, old, new):
    """Makes `layer` hold the variable `new` wherever it holds `old` (an
    attribute, its tracked lists), and forgets `old`: it is never
    allocated if it was created in `unallocated_variables`."""
    with unlocked_state(layer):
        for name, value in list(layer.__dict__.items()):
            if value is old:
                layer.__dict__[name] = new
        for store, (_, variables) in layer._tracker.config.items():
            for i, value in enumerate(variables):
                if value is old:
                    variables[i] = new
                    layer._tracker.stored_ids[store].discard(id(old))
                    layer._tracker.stored_ids[store].add(id(new))
    _forget_uninitialized([old])
    if keras.backend.backend() == "torch" and hasattr(layer, "_torch_params"):
        layer._track_variables()


def is_unallocated(variable):
    """Whether a variable made in `unallocated_variables` has no value."""
    return variable._value is None


def holds_variable(layer, variable):
    """Whether `layer` itself (not a nested layer) tracks `variable`."""
    return any(
        value is variable
        for _, variables in layer._tracker.config.values()
        for value in variables
    )


def set_own_trainable(layer, value):
    """Sets a layer's `trainable` flag alone: Keras's setter also sets its
    variables' and every nested layer's, which undoes the flags of nested
    layers set before it (a layer shared by two parents)."""
    layer._trainable = bool(value)


def autocast_as_a_variable(value):
    """`value` as a float variable holding it would read here: cast to the
    dtype of the autocast scope in force, if any."""
    from keras.src.backend.common.variables import get_autocast_scope

    scope = get_autocast_scope()
    return value if scope is None else scope.maybe_cast(value)


# (module file, function) of the saves that write a config beside the
# weights: Keras's `.keras` archive and KerasHub's preset.
_CONFIG_WRITING_SAVES = (
    ("saving_lib", "_save_model_to_fileobj"),
    ("saving_lib", "_save_model_to_dir"),
    ("preset_utils", "save_backbone"),
)


def in_config_writing_save():
    """True inside a save that writes a config too (not weights only).

    Keras offers no hook telling a layer's `save_own_variables` whether
    its config is written beside it; the saving functions on the stack do.
    """
    frame = sys._getframe(1)
    while frame is not None:
        code = frame.f_code
        for module, function in _CONFIG_WRITING_SAVES:
            if code.co_name == function and module in code.co_filename:
                return True
        frame = frame.f_back
    return False


def set_instance_method(obj, name, function):
    """Binds `function` as `obj.name` for this instance only.

    Keras itself wraps `build` and `quantize` per instance in
    `Layer.__new__`; a class swap leaves those wrappers bound to the old
    class, so conversion re-binds them.
    """
    object.__setattr__(obj, name, function)


def drop_instance_method(obj, name):
    """Removes a per-instance method, so the class's method is used."""
    obj.__dict__.pop(name, None)


def untrack(layer, objects):
    """Removes variables or seed generators from a built layer's state."""
    with unlocked_state(layer):
        for obj in objects:
            layer._tracker.untrack(obj)
    if keras.backend.backend() == "torch":
        layer._track_variables()


def object_sharing_scope():
    """Keras's scope that keeps a layer used twice one object through a
    serialize/deserialize round trip (as `.keras` files do)."""
    from keras.src.saving.serialization_lib import ObjectSharingScope

    return ObjectSharingScope()


def rewrap_quantize(layer):
    """Gives a layer whose class was swapped its new class's `quantize`.

    `Layer.__new__` binds a per-instance wrapper around the class's
    `quantize` (argument checks, unlocking the tracker); after a class
    swap it still calls the old class's method. This rebuilds the wrapper
    as Keras does.
    """
    from keras.src.quantizers.quantization_config import (
        validate_and_resolve_config,
    )

    drop_instance_method(layer, "quantize")
    method = layer.quantize

    def quantize(mode=None, config=None, **kwargs):
        config = validate_and_resolve_config(mode, config)
        layer._check_quantize_args(config.mode, layer.compute_dtype)
        with unlocked_state(layer):
            method(mode=config.mode, config=config, **kwargs)

    set_instance_method(layer, "quantize", quantize)


def layer_weights(layer, names):
    """The named weight variables of a built Keras layer.

    Keras keeps a weight either behind a property over `_<name>` (`Dense`,
    `EinsumDense`, `Conv*`, `Embedding`) or as a plain attribute (the
    depthwise, separable and transposed convolutions, recurrent cells).

    Returns:
        A dict `name -> variable`, None for a weight the layer lacks (a
        bias with `use_bias=False`).
    """
    state = layer.__dict__
    return {name: state.get("_" + name, state.get(name)) for name in names}


def swap_class(layer, new_class, weights):
    """Makes a built layer an instance of `new_class`, in place.

    As Keras's own `enable_lora` and `Model.quantize` change built layers:
    the layer keeps its state and variables; each of `weights` (a dict
    `name -> variable`) is stored where `new_class` reads it (behind a
    property or another data descriptor as `_<name>`, or as a plain
    attribute), and the cached call signature is refreshed.
    """
    with unlocked_state(layer):
        layer.__class__ = new_class
        for name, value in weights.items():
            layer.__dict__.pop(name, None)
            layer.__dict__.pop("_" + name, None)
            if hasattr(getattr(new_class, name, None), "__set__"):
                name = "_" + name
            layer.__dict__[name] = value
        refresh_call_signature(layer)


def convert_class(layer, new_class, names):
    """Makes a built Keras layer an instance of its MK class, in place.

    The named weights (`layer_weights`) are stored where `new_class`
    reads them (`swap_class`), and the per-instance `quantize` wrapper
    Keras bound for the old class is dropped: the MK class's own
    `quantize` refuses instead.
    """
    swap_class(layer, new_class, layer_weights(layer, names + ["bias"]))
    drop_instance_method(layer, "quantize")


@contextlib.contextmanager
def instance_method(obj, name, function):
    """Binds `function` as `obj.name` while the scope is open.

    Keras's `Layer.__call__` runs `self.call`, looked up on the instance
    first; `object.__setattr__` keeps Keras's attribute tracking out of it.
    The previous instance attribute (if any) is restored on exit.
    """
    previous = obj.__dict__.get(name)
    set_instance_method(obj, name, function)
    try:
        yield
    finally:
        if previous is None:
            drop_instance_method(obj, name)
        else:
            set_instance_method(obj, name, previous)


def jax_loss(
    model,
    trainable_variables,
    non_trainable_variables,
    metrics_variables,
    optimizer_variables,
    x,
    y,
    sample_weight,
):
    """The training loss of a compiled model, statelessly, on JAX.

    What Keras's JAX `train_step` differentiates: `compute_loss_and_updates`
    of the JAX trainer (not a documented API), which runs the model
    statelessly on the given variables. Returns the loss before any loss
    scaling.
    """
    _, aux = model.compute_loss_and_updates(
        trainable_variables,
        non_trainable_variables,
        metrics_variables,
        x,
        y,
        sample_weight,
        training=True,
        optimizer_variables=optimizer_variables,
    )
    return aux[0]


def ask_to_overwrite(filepath):
    """Keras's prompt before overwriting a file (`overwrite=False`)."""
    from keras.src.utils import io_utils

    return io_utils.ask_to_proceed_with_overwrite(filepath)


# The members of a `.keras` archive (Keras's `saving_lib` writes them).
ARCHIVE_CONFIG = "config.json"
ARCHIVE_WEIGHTS = "model.weights.h5"


def read_archive_config(filepath):
    """The `config.json` of a `.keras` archive, as a dict."""
    with zipfile.ZipFile(filepath) as archive:
        return json.loads(archive.read(ARCHIVE_CONFIG))


def replace_archive_config(filepath, data):
    """Rewrites the `config.json` of a `.keras` archive in place.

    Every other member is copied as it is, through a temporary file in the
    same directory, so a failure leaves the archive as it was.
    """
    directory = os.path.dirname(os.path.abspath(filepath))
    fd, temp = tempfile.mkstemp(suffix=".keras", dir=directory)
    os.close(fd)
    try:
        with (
            zipfile.ZipFile(filepath) as src,
            zipfile.ZipFile(temp, "w") as dst,
        ):
            for info in src.infolist():
                if info.filename == ARCHIVE_CONFIG:
                    dst.writestr(info, data)
                    continue
                with src.open(info) as i, dst.open(info, "w") as o:
                    shutil.copyfileobj(i, o, 1 << 20)
        os.replace(temp, filepath)
    finally:
        if os.path.exists(temp):
            os.remove(temp)


def extract_archive_weights(filepath, directory):
    """Extracts the weights file of a `.keras` archive; returns its path."""
    with zipfile.ZipFile(filepath) as archive:
        archive.extract(ARCHIVE_WEIGHTS, directory)
    return os.path.join(directory, ARCHIVE_WEIGHTS)

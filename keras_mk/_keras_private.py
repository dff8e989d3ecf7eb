"""The only module of keras_mk that touches private Keras API.

Keras keeps some machinery private that a library converting layers in place
needs (unlocking a built layer's state tracker, walking nested layers).
Everything private lives here, so a Keras upgrade touches one file.
"""

import contextlib
import inspect

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


def sublayers(layer):
    """Direct sublayers of `layer`, whatever attribute holds them."""
    return list(layer._flatten_layers(include_self=False, recursive=False))


def layer_test_case():
    """Keras's own `TestCase` (with `run_layer_test`), for the test suite."""
    from keras.src import testing

    return testing.TestCase


def in_symbolic_scope():
    """True while Keras traces a layer with symbolic tensors."""
    from keras.src.backend.common.symbolic_scope import in_symbolic_scope

    return in_symbolic_scope()


def is_keras_variable(value):
    return isinstance(value, keras.Variable)


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

"""Converting a Keras model to Majority Kernels.

The model is copied (config, then variables) and each selected kernel layer
of the copy is converted in place: its class becomes the MK class, its built
kernel becomes copy 0 and `expansion - 1` replicas are added next to it. This
is how Keras's own `enable_lora` and `Model.quantize` change built layers,
and it reaches layers that a subclassed layer creates in `__init__`, which
`keras.models.clone_model(clone_function=...)` cannot see.
"""

import re
import warnings

import keras

from keras_mk import _keras_private
from keras_mk.conversion import model_checks
from keras_mk.conversion import registry
from keras_mk.conversion import save_guard
from keras_mk.layers import mk_layer
from keras_mk.layers import probabilities as probs

_LAYER_KWARGS = (
    "probabilities",
    "concentration",
    "expand_bias",
    "probability_sharing",
    "seed",
)


def _validated_kwargs(expansion, layer_kwargs):
    unknown = sorted(set(layer_kwargs) - set(_LAYER_KWARGS))
    if "copy_initialization" in unknown:
        raise ValueError(
            "Conversion always replicates the pretrained kernel into every "
            "copy; `copy_initialization` cannot be set. Received: "
            f"copy_initialization={layer_kwargs['copy_initialization']!r}"
        )
    if unknown:
        raise TypeError(
            f"Unknown MK layer arguments: {unknown}. Accepted: "
            f"{list(_LAYER_KWARGS)}"
        )
    seed = layer_kwargs.get("seed")
    if seed is not None and (
        isinstance(seed, bool) or not isinstance(seed, int)
    ):
        raise ValueError(
            "`seed` must be an int or None (layer `i` gets `seed + i`). "
            f"Received: seed={seed!r}"
        )
    expand_bias = layer_kwargs.get("expand_bias", False)
    if not isinstance(expand_bias, bool):
        raise ValueError(
            f"`expand_bias` must be a bool. Received: expand_bias="
            f"{expand_bias!r}"
        )
    return {
        "expansion": mk_layer._validate_expansion(expansion),
        "probabilities": mk_layer._validate_choice(
            "probabilities",
            layer_kwargs.get("probabilities", "exponential"),
            probs.PROBABILITIES,
        ),
        "concentration": mk_layer._validate_concentration(
            layer_kwargs.get("concentration", 1.0)
        ),
        "expand_bias": expand_bias,
        "copy_initialization": "replicate",
        "probability_sharing": mk_layer._validate_choice(
            "probability_sharing",
            layer_kwargs.get("probability_sharing", "element"),
            mk_layer.PROBABILITY_SHARING,
        ),
        "seed": seed,
    }


def _check_class(cls):
    if not isinstance(cls, type):
        raise TypeError(
            "`layers` as a list must hold layer classes. "
            f"Received an element {cls!r} of type {type(cls).__name__}"
        )
    if cls not in registry.MK_CLASSES:
        raise ValueError(
            f"Layer class {cls.__name__} has no Majority Kernels "
            f"counterpart. Supported classes: {registry.supported_names()}"
        )


def layer_selector(layers):
    """Turns the `layers` argument into a predicate `(path, layer) -> bool`.

    Only layers with an MK counterpart are ever selected.
    """
    if layers is None:
        return lambda path, layer: registry.mk_class_for(layer) is not None
    if isinstance(layers, type):
        layers = [layers]
    if isinstance(layers, (list, tuple, set, frozenset)):
        classes = tuple(layers)
        if not classes:
            raise ValueError("`layers` is an empty list: nothing to convert.")
        for cls in classes:
            _check_class(cls)
        return lambda path, layer: type(layer) in classes
    if isinstance(layers, str):
        try:
            pattern = re.compile(layers)
        except re.error as e:
            raise ValueError(
                f"`layers` is not a valid regular expression: {e}. "
                f"Received: layers={layers!r}"
            ) from e
        return lambda path, layer: (
            registry.mk_class_for(layer) is not None
            and pattern.search(path) is not None
        )
    if callable(layers):
        return lambda path, layer: (
            registry.mk_class_for(layer) is not None and bool(layers(layer))
        )
    raise TypeError(
        "`layers` must be None, a list of layer classes, a regular "
        "expression (str) matched against layer paths, or a callable "
        f"`layer -> bool`. Received: layers={layers!r}"
    )


def _check_convertible(path, layer):
    if getattr(layer, "lora_enabled", False):
        raise ValueError(
            f"Layer '{path}' has LoRA enabled; MK layers do not support "
            "LoRA. Convert the model before enabling LoRA."
        )
    if getattr(layer, "quantization_mode", None) is not None:
        raise ValueError(
            f"Layer '{path}' is quantized ({layer.quantization_mode}); "
            "convert the float model, then quantize the collapsed one."
        )
    if not layer.built:
        raise ValueError(
            f"Layer '{path}' is not built; call the model on data first."
        )


def convert_layer(layer, mk_kwargs):
    """Turns a built Keras kernel layer into its MK class, in place.

    The layer's kernel variable becomes copy 0; the other copies are exact
    replicas, so the layer's outputs are unchanged (for any `p`).
    """
    mk_class = registry.mk_class_for(layer)
    state = layer.__dict__
    # Some Keras layers keep `kernel` / `bias` as plain attributes; the MK
    # class reads them through properties backed by `_kernel` / `_bias`.
    kernel = state.pop("kernel", None)
    bias = state.pop("bias", None)
    with _keras_private.unlocked_state(layer):
        layer.__class__ = mk_class
        if kernel is not None:
            layer._kernel = kernel
        if bias is not None or "_bias" not in state:
            layer._bias = bias
        layer._mk_configure(**mk_kwargs)
        _keras_private.refresh_call_signature(layer)
        # Keras bound a `quantize` wrapper of the plain class to the
        # instance; the MK class's refuses instead.
        _keras_private.drop_instance_method(layer, "quantize")
    layer._add_copies("replicate")


def convert_layers(model, plan):
    """Converts the layers of `model` at the paths of `plan` in place.

    Args:
        model: a built model.
        plan: dict `path -> MK kwargs`.
    """
    converted = 0
    for path, layer in registry.iter_layers(model):
        if path in plan:
            convert_layer(layer, plan[path])
            converted += 1
    if converted != len(plan):
        raise ValueError(
            f"Only {converted} of the {len(plan)} layers to convert were "
            f"found in model '{model.name}'."
        )


def conversion_plan(model, expansion=3, layers=None, **layer_kwargs):
    """Validates everything and lists what `clone_model` would convert.

    Returns:
        A dict `path -> MK kwargs`, in walk order.
    """
    model_checks.check_model(model, "clone_model")
    kwargs = _validated_kwargs(expansion, layer_kwargs)
    already = registry.mk_layers_of(model)
    if already:
        raise ValueError(
            f"Model '{model.name}' already has {len(already)} MK layers "
            f"(e.g. '{already[0][0]}'): it was converted before. Convert "
            "the original model, or `keras_mk.collapse` this one first."
        )
    select = layer_selector(layers)
    plan = {}
    for path, layer in registry.iter_layers(model):
        if select(path, layer):
            _check_convertible(path, layer)
            seed = kwargs["seed"]
            plan[path] = dict(
                kwargs, seed=None if seed is None else seed + len(plan)
            )
    if not plan:
        raise ValueError(
            f"Nothing to convert in model '{model.name}': no layer matches "
            f"layers={layers!r}. Convertible classes: "
            f"{registry.supported_names()}"
        )
    return plan


def clone_model(model, expansion=3, *, layers=None, **layer_kwargs):
    """Returns a Majority Kernels copy of a Keras model, with its weights.

    Unlike `keras.models.clone_model`, which re-initialises the weights,
    the copy starts from the model's trained weights.
    The original is not modified. In the copy every selected kernel layer is
    replaced by its MK counterpart (`Dense` by `MKDense`, ...) holding
    `expansion` replicas of the pretrained kernel, so the copy's outputs
    equal the original's, in inference and in training mode. Layers nested
    inside subclassed layers (KerasHub backbones, `MultiHeadAttention`) are
    reached too. The copy is not compiled, even when the original is.

    Args:
        model: a built `keras.Model` (Sequential, Functional or subclassed)
            with no MK layers.
        expansion: int >= 1, the number of kernel copies. Default 3.
        layers: what to convert. None (default): every layer of a supported
            class (`Dense`, `EinsumDense`, `Conv1D/2D/3D`,
            `Conv1D/2D/3DTranspose`, `DepthwiseConv1D/2D`; exact classes,
            not subclasses). A list of those classes; a regular
            expression searched in each layer's
            path (`"encoder_layer_0/self_attention/query"`); or a callable
            `layer -> bool`, asked about supported layers only.
        **layer_kwargs: MK layer arguments: `probabilities`,
            `concentration`, `expand_bias`, `probability_sharing`, `seed`.
            With an int `seed` the `i`-th converted layer gets `seed + i`,
            so layers draw independent probabilities.

    Returns:
        A new `keras.Model` of the same class, with MK layers.

    Raises:
        TypeError: if `model` is not a `keras.Model`, or `layers` or a
            keyword argument is of an unknown kind.
        ValueError: if the model is not built, already has MK layers, has
            nothing to convert, or `layers` names a class with no MK
            counterpart. Nothing is modified when an error is raised.

    Example:

    >>> mk_model = keras_mk.clone_model(model, expansion=3, seed=0)
    >>> mk_model.compile(optimizer="adam", loss="mse")
    >>> mk_model.fit(x, y)
    >>> small = keras_mk.collapse(mk_model)
    """
    plan = conversion_plan(model, expansion, layers, **layer_kwargs)
    copy = model_checks.copy_model(model)
    model_checks.copy_variables(model, copy, "convert")
    convert_layers(copy, plan)
    warn_left_plain(copy)
    return save_guard.guard_saves(copy)


def warn_left_plain(model):
    """Warns about kernel layers that have no MK version (left plain)."""
    unsupported = [
        (path, name, reason)
        for path, name, reason in registry.left_plain(model, kernels_only=True)
        if reason != registry.NOT_SELECTED
    ]
    if unsupported:
        listed = "; ".join(f"'{p}' ({n}: {r})" for p, n, r in unsupported)
        warnings.warn(
            f"{len(unsupported)} layers with kernels were left plain in "
            f"model '{model.name}': {listed}. They train as in the original "
            "model. See `keras_mk.conversion_summary(model)`.",
            UserWarning,
            stacklevel=3,
        )


def _is_layer(value):
    return isinstance(value, keras.layers.Layer)


def clone_function(expansion=3, **layer_kwargs):
    """A `clone_function` for `keras.models.clone_model`.

    For Sequential and Functional models only: Keras calls it on the
    model's top-level layers, so layers inside subclassed layers are not
    converted (use `keras_mk.clone_model` for those). Supported layers are
    converted and their pretrained kernel replicated into every copy.
    Unlike Keras's default clone function, every built layer keeps its
    weights, so the clone starts from the pretrained model. Pass
    `recursive=True` to `keras.models.clone_model` to reach the layers of
    nested Sequential/Functional models.

    Args:
        expansion: int >= 1, the number of kernel copies. Default 3.
        **layer_kwargs: as for `keras_mk.clone_model`.

    Returns:
        A function `layer -> new layer`.

    Example:

    >>> mk_model = keras.models.clone_model(
    ...     model, clone_function=keras_mk.clone_function(expansion=3)
    ... )
    """
    if _is_layer(expansion):
        # Passed uncalled (`clone_function=keras_mk.clone_function`): Keras
        # calls it with each layer. Use the default MK arguments.
        if layer_kwargs:
            raise TypeError(
                "`keras_mk.clone_function` was called with a layer and MK "
                "arguments. Call it with the MK arguments first: "
                "`clone_function=keras_mk.clone_function(expansion=3)`. "
                f"Received: {sorted(layer_kwargs)}"
            )
        return clone_function()(expansion)
    kwargs = _validated_kwargs(expansion, layer_kwargs)
    counter = [0]

    def convert(path, layer):
        _check_convertible(path, layer)
        seed = kwargs["seed"]
        layer_seed = None if seed is None else seed + counter[0]
        counter[0] += 1
        convert_layer(layer, dict(kwargs, seed=layer_seed))

    def clone(layer):
        new = layer.__class__.from_config(layer.get_config())
        if not isinstance(layer, keras.layers.Layer):
            return new  # an operation on KerasTensors (`x + 1.0`)
        if layer.built and layer.weights:
            new.build_from_config(layer.get_build_config())
            new.set_weights(layer.get_weights())
        if not layer.built:
            return new
        if registry.mk_class_for(layer) is not None:
            convert(layer.name, new)
            return new
        # Kernel layers inside a wrapper (`TimeDistributed`) or a layer
        # that builds its own (`MultiHeadAttention`).
        nested = [
            (f"{layer.name}/{path}", sublayer)
            for path, sublayer in registry.iter_layers(new)
            if registry.mk_class_for(sublayer) is not None
        ]
        for path, sublayer in nested:
            convert(path, sublayer)
        if nested:
            save_guard.mark_undescribed(new)
        return new

    return clone

"""Converting a Keras model to Majority Kernels.

The model is copied (config, then variables) and each selected kernel layer
of the copy is converted in place: its class becomes the MK class, its built
kernel becomes copy 0 and `expansion - 1` replicas are added next to it. This
is how Keras's own `enable_lora` and `Model.quantize` change built layers,
and it reaches layers that a subclassed layer creates in `__init__`, which
`keras.models.clone_model(clone_function=...)` cannot see.
"""

import dataclasses
import re
import warnings

from keras_mk import _keras_private
from keras_mk.conversion import class_map
from keras_mk.conversion import copying
from keras_mk.conversion.saving import guards
from keras_mk.layers import lora
from keras_mk.layers.config import MKConfig
from keras_mk.layers.walk import iter_layers

# Conversion replicates the pretrained kernel: this one is not an argument.
_FIXED = {"copy_initialization": "replicate"}


def conversion_config(mk_arguments):
    """Validates the MK arguments of a conversion: one `MKConfig`.

    Args:
        mk_arguments: a dict of MK arguments (`expansion`, `seed`, ...),
            without `copy_initialization`.

    Returns:
        The `MKConfig` every converted layer starts from.
    """
    accepted = [n for n in MKConfig.names() if n not in _FIXED]
    unknown = sorted(set(mk_arguments) - set(accepted))
    if "copy_initialization" in unknown:
        raise ValueError(
            "Conversion always replicates the pretrained kernel into every "
            "copy; `copy_initialization` cannot be set. Received: "
            f"copy_initialization={mk_arguments['copy_initialization']!r}"
        )
    if unknown:
        # ValueError, as a Keras layer refuses unknown keyword arguments.
        raise ValueError(
            f"Unknown MK layer arguments: {unknown}. Accepted: {accepted}"
        )
    seed = mk_arguments.get("seed")
    if seed is not None and (
        isinstance(seed, bool) or not isinstance(seed, int)
    ):
        raise ValueError(
            "`seed` must be an int or None (layer `i` gets `seed + i`). "
            f"Received: seed={seed!r}"
        )
    return MKConfig(**mk_arguments, **_FIXED)


def layer_config(config, index):
    """The config of the `index`-th converted layer: its own seed."""
    if config.seed is None:
        return config
    return config.replace(seed=config.seed + index)


#: The name Keras gives a `SeedGenerator`'s state variable.
SEED_STATE = "seed_generator_state"

#: What `layers=None` selects in a model with LoRA enabled: its LoRA
#: layers (their adapters), the tables among them included.
LORA_LAYERS = object()


def _check_class(cls):
    if not isinstance(cls, type):
        raise TypeError(
            "`layers` as a list must hold layer classes. "
            f"Received an element {cls!r} of type {type(cls).__name__}"
        )
    if cls not in class_map.class_map().mk:
        raise ValueError(
            f"Layer class {cls.__name__} has no Majority Kernels "
            f"counterpart. Supported classes: {class_map.supported_names()}"
        )


def layer_selector(layers, embeddings=False):
    """Turns the `layers` argument into a predicate on surveyed layers.

    Only layers with an MK counterpart are ever selected; embedding tables
    only with `embeddings=True` or when `layers` names their class.

    Returns:
        A function `class_map.Surveyed -> bool`.
    """
    if isinstance(layers, type):
        layers = [layers]
    if isinstance(layers, (list, tuple, set, frozenset)):
        classes = tuple(layers)
        if not classes:
            raise ValueError("`layers` is an empty list: nothing to convert.")
        for cls in classes:
            _check_class(cls)
        return lambda item: type(item.layer) in classes
    if not isinstance(embeddings, bool):
        raise ValueError(
            f"`embeddings` must be a bool. Received: embeddings={embeddings!r}"
        )

    def kind(item):
        """Has an MK class, and is not a table left out."""
        return item.mk_class is not None and (embeddings or not item.is_table)

    if layers is None:
        return kind
    if layers is LORA_LAYERS:
        return lambda item: item.mk_class is not None and item.lora_enabled
    if isinstance(layers, str):
        try:
            pattern = re.compile(layers)
        except re.error as e:
            raise ValueError(
                f"`layers` is not a valid regular expression: {e}. "
                f"Received: layers={layers!r}"
            ) from e
        return lambda item: kind(item) and pattern.search(item.path) is not None
    if callable(layers):
        return lambda item: kind(item) and bool(layers(item.layer))
    raise TypeError(
        "`layers` must be None, a list of layer classes, a regular "
        "expression (str) matched against layer paths, or a callable "
        f"`layer -> bool`. Received: layers={layers!r}"
    )


def check_convertible(path, layer):
    mode = getattr(layer, "quantization_mode", None)
    if lora.frozen(layer) and not lora.can_enable(layer):
        raise ValueError(
            f"Layer '{path}' is quantized ({mode}) without LoRA, and Keras "
            f"gives no LoRA on a {mode} kernel: MK would have nothing to "
            "train. Convert the float model, then quantize the collapsed "
            "one."
        )
    if not layer.built:
        raise ValueError(
            f"Layer '{path}' is not built; call the model on data first."
        )


@dataclasses.dataclass(frozen=True)
class Step:
    """What conversion does to the layer at one path.

    Attributes:
        mk_class: the MK class the layer becomes.
        config: its `MKConfig`; None for a recurrent layer, whose class
            changes while its cell (a step of its own) holds the copies.
    """

    mk_class: type
    config: MKConfig = None


def plan_from(surveyed, configs):
    """The conversion plan of a surveyed model, recurrent layers and their
    cells converted together (either one selected brings the other).

    Args:
        surveyed: `class_map.survey` of the model.
        configs: dict `path -> MKConfig` of the layers to convert.

    Returns:
        A dict `path -> Step`, in walk order.
    """
    table = class_map.class_map()
    cells = {item.cell_path: item for item in surveyed if item.cell_path}
    wanted = dict(configs)
    for item in surveyed:
        if item.path in wanted and item.cell_path:
            # The cell takes the layer's config, as if converted by it.
            wanted[item.cell_path] = wanted[item.path]
            wanted[item.path] = None
        carrier = cells.get(item.path)
        if item.path in wanted and carrier is not None:
            wanted.setdefault(carrier.path, None)
    plan = {}
    for item in surveyed:
        if item.path in wanted:
            cls = type(item.layer)
            plan[item.path] = Step(table.mk.get(cls, cls), wanted[item.path])
    return plan


def conversion_plan(model, layers=None, embeddings=False, **mk_arguments):
    """Validates everything and lists what `clone_model` would convert.

    Returns:
        `(plan, surveyed)`: a dict `path -> Step` in walk order, and
        `class_map.survey(model)`.
    """
    config = conversion_config(mk_arguments)
    surveyed = class_map.survey(model, "clone_model")
    if layers is None and any(item.lora_enabled for item in surveyed):
        layers = LORA_LAYERS
    select = layer_selector(layers, embeddings)
    already = [item.path for item in surveyed if item.is_mk]
    if already:
        raise ValueError(
            f"Model '{model.name}' already has {len(already)} MK layers "
            f"(e.g. '{already[0]}'): it was converted before. Convert "
            "the original model, or `keras_mk.collapse` this one first."
        )
    configs = {}
    for item in surveyed:
        if select(item):
            check_convertible(item.path, item.layer)
            configs[item.path] = layer_config(config, len(configs))
    if not configs:
        raise ValueError(
            f"Nothing to convert in model '{model.name}': no layer matches "
            f"layers={layers!r}. Convertible classes: "
            f"{class_map.supported_names()}"
        )
    return plan_from(surveyed, configs), surveyed


def clone_model(model, *, layers=None, embeddings=False, **mk_arguments):
    """Returns a Majority Kernels copy of a Keras model, with its weights.

    Unlike `keras.models.clone_model`, which re-initialises the weights,
    the copy starts from the model's trained weights. The original is not
    modified. In the copy every selected kernel layer is
    replaced by its MK counterpart (`Dense` by `MKDense`, ...) holding
    `expansion` replicas of the pretrained kernel, so the copy's outputs
    equal the original's, in inference and in training mode. Layers nested
    inside subclassed layers (KerasHub backbones, `MultiHeadAttention`) are
    reached too. The copy is not compiled, even when the original is.

    Args:
        model: a built `keras.Model` (Sequential, Functional or subclassed)
            with no MK layers.
        layers: what to convert. None (default): every layer of a supported
            class (`Dense`, `EinsumDense`, `Conv1D/2D/3D`,
            `Conv1D/2D/3DTranspose`, `DepthwiseConv1D/2D`; exact classes,
            not subclasses). A list of those classes; a regular
            expression searched in each layer's
            path (`"encoder_layer_0/self_attention/query"`); or a callable
            `layer -> bool`, asked about supported layers only.
        embeddings: bool, default False: also convert the embedding
            tables (`Embedding`, `ReversibleEmbedding`, KerasHub's
            `ReversibleEmbedding` and `PositionEmbedding`) that `layers`
            selects. Naming a table class in a `layers` list converts it
            too. Off by default: the paper simulates the kernel of every
            layer, and `e` copies of a language model's tables (20-30% of
            its weights at published sizes, more with a large
            vocabulary) and their optimizer slots are most of the memory
            MK adds, so the tables are a choice to make; and a conversion
            made before tables had MK versions converts the same layers.
            See `docs/conversion.md`.
        **mk_arguments: the MK arguments, keyword-only: the fields of
            `keras_mk.layers.MKConfig` (which validates them) except
            `copy_initialization` (conversion replicates the pretrained
            kernel), that is
            MK_ARGUMENTS
            `expansion`, the number of kernel copies, defaults to 3. With
            an int `seed` the `i`-th converted layer gets `seed + i`, so
            layers draw independent probabilities.

    Returns:
        A new `keras.Model` of the same class, with MK layers.

    Raises:
        TypeError: if `model` is not a `keras.Model`, or `layers` is of
            an unknown kind (a wrong type, as Python and Keras raise).
        ValueError: if a keyword argument is unknown or has a bad value
            (as a Keras layer refuses them), the model is not built,
            already has MK layers, has nothing to convert, or `layers`
            names a class with no MK counterpart. Nothing is modified
            when an error is raised.

    Example:

    >>> mk_model = keras_mk.clone_model(model, expansion=3, seed=0)
    >>> mk_model.compile(optimizer="adam", loss="mse")
    >>> mk_model.fit(x, y)
    >>> small = keras_mk.collapse(mk_model)
    """
    plan, surveyed = conversion_plan(model, layers, embeddings, **mk_arguments)
    walked = [(item.path, item.layer) for item in surveyed]
    copied = copying.copy_model(
        model, walked, "convert", _frozen_base(surveyed)
    )
    converted = 0
    for path, layer in copied.layers:
        if path in plan:
            convert_layer(layer, plan[path])
            converted += 1
    _check_all_converted(model, plan, converted)
    _warn_left_plain(model, surveyed)
    lora.warn_frozen(model.name, [i for i in surveyed if i.path in plan])
    # The config the copy was built from tells which MK layers it
    # describes: the copy is not serialized again.
    return guards.guard_saves(copied.model, copied.layers, copied.config)


def convert_layer(layer, step):
    """Turns a built Keras kernel layer into its MK class, in place.

    Each simulated weight becomes copy 0; the other copies are exact
    replicas, so the layer's outputs are unchanged (for any `p`). This is
    how Keras's own `enable_lora` and `Model.quantize` change built layers.

    Args:
        layer: a built layer of a class in the class map.
        step: its `Step`.
    """
    cls = step.mk_class
    names = [spec[0] for spec in getattr(cls, "mk_weights", ())]
    names += list(getattr(cls, "lora_factors", ()))
    _keras_private.convert_class(layer, cls, names)
    if step.config is not None:
        layer._finish_conversion(step.config)


def convert_layers(model, plan):
    """Converts the layers of `model` at the paths of `plan` in place.

    Args:
        model: a built model.
        plan: dict `path -> Step` (`plan_from`).
    """
    converted = 0
    for path, layer in iter_layers(model):
        if path in plan:
            convert_layer(layer, plan[path])
            converted += 1
    _check_all_converted(model, plan, converted)


def _check_all_converted(model, plan, converted):
    if converted != len(plan):
        raise ValueError(
            f"Only {converted} of the {len(plan)} layers to convert were "
            f"found in model '{model.name}'."
        )


def _frozen_base(surveyed):
    """What the copy of a LoRA model shares with it: the ids of its frozen
    variables (a LoRA layer's kernel, its quantized form and scale; every
    variable of a frozen layer), seed states left out.

    LoRA freezes most of a large model: copying it would double the
    memory a LoRA user budgets for. The copy holds the same variables, as
    Keras's own `enable_lora` keeps them; nothing trains them.
    """
    if not any(item.lora_enabled for item in surveyed):
        return frozenset()
    frozen = set()
    for item in surveyed:
        layer = item.layer
        if layer.trainable and not item.lora_enabled:
            continue
        for variable in layer.weights:
            if not variable.trainable and variable.name != SEED_STATE:
                frozen.add(id(variable))
    return frozenset(frozen)


def _warn_left_plain(model, surveyed):
    """Warns about kernel layers that have no MK version (left plain)."""
    unsupported = [item for item in surveyed if item.left_plain]
    if unsupported:
        listed = "; ".join(
            f"'{item.path}' ({type(item.layer).__name__}: {item.left_plain})"
            for item in unsupported
        )
        warnings.warn(
            f"{len(unsupported)} layers with kernels were left plain in "
            f"model '{model.name}': {listed}. They train as in the original "
            "model. See `keras_mk.conversion_summary(model)`.",
            UserWarning,
            stacklevel=3,
        )


clone_model.__doc__ = clone_model.__doc__.replace(
    " " * 12 + "MK_ARGUMENTS", MKConfig.names_doc(tuple(_FIXED), indent=12)
)

"""`keras_mk.clone_function`: MK conversion inside `keras.models.clone_model`.

Keras hands the function each top-level layer of a Sequential or
Functional model; it converts what `keras_mk.clone_model` would, with the
same MK arguments and plan (`clone`), one layer at a time.
"""

import warnings

import keras

from keras_mk.conversion import class_map
from keras_mk.conversion import clone
from keras_mk.conversion import copying
from keras_mk.conversion.saving import guards
from keras_mk.layers.walk import iter_layers


def _is_operation(value):
    # What Keras hands a clone function: layers, and ops on Keras tensors.
    return isinstance(value, keras.Operation)


def clone_function(layer=None, /, *, embeddings=False, **mk_arguments):
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
        layer: only when passed uncalled
            (`clone_function=keras_mk.clone_function`): the layer Keras
            hands it, converted with the default MK arguments.
        embeddings: bool, default False: also convert embedding tables,
            as for `keras_mk.clone_model`.
        **mk_arguments: the MK arguments, keyword-only, as for
            `keras_mk.clone_model`.

    Returns:
        A function `layer -> new layer` (or, called with a layer, the new
        layer).

    Example:

    >>> mk_model = keras.models.clone_model(
    ...     model, clone_function=keras_mk.clone_function(expansion=3)
    ... )
    """
    if layer is not None:
        if not _is_operation(layer):
            raise TypeError(
                "The MK arguments of `keras_mk.clone_function` are "
                "keyword-only: `keras_mk.clone_function(expansion=3)`. "
                f"Received a positional argument: {layer!r}"
            )
        # Passed uncalled (`clone_function=keras_mk.clone_function`): Keras
        # calls it with each layer. Use the default MK arguments.
        if mk_arguments or embeddings:
            raise TypeError(
                "`keras_mk.clone_function` was called with a layer and MK "
                "arguments. Call it with the MK arguments first: "
                "`clone_function=keras_mk.clone_function(expansion=3)`. "
                f"Received: {sorted(mk_arguments)}"
            )
        return clone_function()(layer)
    config = clone.conversion_config(mk_arguments)
    select = clone.layer_selector(None, embeddings)
    counter = [0]

    def convert(new):
        """Converts `new` if selected, else its selected nested layers
        (inside a wrapper, `TimeDistributed`, or a layer that builds its
        own, `MultiHeadAttention`). Returns whether nested ones were."""
        surveyed = class_map.survey(new, include_root=True)
        root, nested = surveyed[0], surveyed[1:]
        chosen = [root] if select(root) else [i for i in nested if select(i)]
        configs = {}
        for item in chosen:
            clone.check_convertible(item.path, item.layer)
            configs[item.path] = clone.layer_config(config, counter[0])
            counter[0] += 1
        plan = clone.plan_from(surveyed, configs)
        for item in surveyed:
            if item.path in plan:
                clone.convert_layer(item.layer, plan[item.path])
        return bool(chosen) and chosen[0] is not root

    def clone_layer(layer):
        new = layer.__class__.from_config(layer.get_config())
        if not isinstance(layer, keras.layers.Layer):
            return new  # an operation on KerasTensors (`x + 1.0`)
        if _is_keras_hub_backbone(layer):
            _warn_task_loses_preprocessor(layer)
        if layer.built and layer.weights:
            new.build_from_config(layer.get_build_config())
            state = copying.training_state(layer, iter_layers(layer))
            copying.restore_training_state(new, iter_layers(new), state)
            copying.assign_pairwise(
                layer.weights,
                new.weights,
                f"Could not copy layer '{layer.name}': its copy rebuilt "
                "from `get_config()` has different weights.",
            )
        if layer.built:
            copying.copy_assets(
                layer, new, iter_layers(layer), iter_layers(new)
            )
        if layer.built and convert(new):
            guards.mark_undescribed(new, list(iter_layers(new)))
        return new

    return clone_layer


def _is_keras_hub_backbone(layer):
    # By name: keras_hub is an optional dependency, never imported here.
    return any(
        cls.__name__ == "Backbone" and cls.__module__.startswith("keras_hub")
        for cls in type(layer).__mro__
    )


def _warn_task_loses_preprocessor(backbone):
    warnings.warn(
        f"`keras.models.clone_model` was handed the KerasHub backbone "
        f"'{backbone.name}'. If the model being cloned is a KerasHub task "
        "(`TextClassifier`, `CausalLM`, ...), Keras rebuilds it as a plain "
        "`Functional` model without its preprocessor (tokenizer, image "
        "converter) and without `generate`. Convert the task with "
        "`keras_mk.clone_model(task)`, which keeps them, or convert the "
        "backbone (`keras_mk.clone_model(task.backbone)`) and build the "
        "task around it: `type(task)(backbone=mk_backbone, "
        "preprocessor=task.preprocessor, ...)`.",
        UserWarning,
        stacklevel=2,
    )

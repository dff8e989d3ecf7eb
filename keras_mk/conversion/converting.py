"""Converting built layers to MK layers in place.

The primitive both conversion (`clone`) and loading (`saving`) use: the
layer's class becomes its MK class, its built kernel becomes copy 0 and
`expansion - 1` replicas are added next to it, the way Keras's own
`enable_lora` and `Model.quantize` change built layers.
"""

from keras_mk import _keras_private
from keras_mk.conversion import registry


def convert_layer(layer, config):
    """Turns a built Keras kernel layer into its MK class, in place.

    Each simulated weight becomes copy 0; the other copies are exact
    replicas, so the layer's outputs are unchanged (for any `p`). A
    recurrent layer converts with its cell (`registry.carried_cell`); a
    layer already converted that way is left as it is.

    Args:
        layer: a built layer of a class in `registry.MK_CLASSES`.
        config: its `MKConfig`.
    """
    mk_class = registry.mk_class_for(layer)
    if mk_class is None and registry.plain_class_for(layer) is not None:
        return  # converted with the layer that carries it
    cell = registry.carried_cell(layer)
    if cell is not None:
        _swap_class(layer, mk_class, {})
        convert_layer(cell, config)
        return
    names = [spec[0] for spec in mk_class.mk_weights] + ["bias"]
    _swap_class(layer, mk_class, _keras_private.layer_weights(layer, names))
    layer._finish_conversion(config)


def _swap_class(layer, mk_class, weights):
    _keras_private.swap_class(layer, mk_class, weights)
    # Keras bound a `quantize` wrapper of the plain class to the instance;
    # the MK class's refuses instead.
    _keras_private.drop_instance_method(layer, "quantize")


def _convert_carriers(model):
    """A recurrent layer whose cell was converted alone (a saved MK model
    records its cells) runs it as an MK layer: its class too."""
    for _, layer in registry.iter_layers(model):
        cell = registry.carried_cell(layer)
        mk_class = registry.mk_class_for(layer)
        if cell is not None and mk_class and registry.is_mk_layer(cell):
            _swap_class(layer, mk_class, {})


def convert_layers(model, plan):
    """Converts the layers of `model` at the paths of `plan` in place.

    Args:
        model: a built model.
        plan: dict `path -> MKConfig`.
    """
    converted = 0
    for path, layer in registry.iter_layers(model):
        if path in plan:
            convert_layer(layer, plan[path])
            converted += 1
    _convert_carriers(model)
    if converted != len(plan):
        raise ValueError(
            f"Only {converted} of the {len(plan)} layers to convert were "
            f"found in model '{model.name}'."
        )

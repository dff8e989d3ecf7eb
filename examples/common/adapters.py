"""LoRA as users enable it, for the fine-tuning job's adapter algorithms.

A KerasHub backbone inside the model: `backbone.enable_lora(rank)`
(KerasHub's recipe: every backbone layer frozen, LoRA on its attention's
query and value projections). Otherwise the same recipe by hand: every
layer but the head frozen, LoRA on each layer that offers it. The head
(`logits`) trains plain in every case.
"""

import keras

HEAD = "logits"


def _backbones(model):
    return [
        layer
        for layer in model.layers
        if hasattr(layer, "default_lora_layer_names")
    ]


def with_adapters(model, rank):
    """Enables LoRA of `rank` on `model` in place; returns it.

    Raises:
        ValueError: if no layer of `model` offers LoRA.
    """
    backbones = _backbones(model)
    for backbone in backbones:
        backbone.enable_lora(rank)
    if not backbones:
        enabled = 0
        for layer in model.layers:
            if layer.name == HEAD:
                continue
            layer.trainable = False
            if hasattr(layer, "enable_lora") and layer.weights:
                layer.trainable = True
                layer.enable_lora(rank)
                enabled += 1
        if not enabled:
            raise ValueError(
                f"No layer of model {model.name!r} but its head offers LoRA."
            )
    return model


def trainable_count(model):
    """The parameters `fit` trains."""
    return int(sum(keras.ops.size(w) for w in model.trainable_weights))

"""Tiny KerasHub models built from config, random weights: stand-ins for
presets (which need a download) in tests, benchmarks and examples."""

_TEXT = dict(num_layers=1, num_heads=2, hidden_dim=16, intermediate_dim=32)
_DECODER = dict(vocabulary_size=64, **_TEXT)
# name -> (KerasHub class name, config).
HUB_MODELS = {
    "Bert": ("BertBackbone", dict(vocabulary_size=64, **_TEXT)),
    "DistilBert": ("DistilBertBackbone", dict(vocabulary_size=64, **_TEXT)),
    "Roberta": ("RobertaBackbone", dict(vocabulary_size=64, **_TEXT)),
    "GPT2": ("GPT2Backbone", dict(vocabulary_size=64, **_TEXT)),
    "Gemma": (
        "GemmaBackbone",
        dict(_DECODER, num_query_heads=2, num_key_value_heads=1, head_dim=8)
        | {"num_heads": None},
    ),
    "Llama": (
        "LlamaBackbone",
        dict(_DECODER, num_query_heads=2, num_key_value_heads=1)
        | {"num_heads": None},
    ),
    "Mistral": (
        "MistralBackbone",
        dict(_DECODER, num_query_heads=2, num_key_value_heads=1)
        | {"num_heads": None},
    ),
    "T5": (
        "T5Backbone",
        dict(vocabulary_size=64, key_value_dim=8, **_TEXT),
    ),
    "ViT": (
        "ViTBackbone",
        dict(_TEXT, image_shape=(16, 16, 3), patch_size=8, mlp_dim=32)
        | {"intermediate_dim": None},
    ),
    "ResNet": (
        "ResNetBackbone",
        dict(
            input_conv_filters=[64],
            input_conv_kernel_sizes=[3],
            # KerasHub >= 0.22 requires 64 in the first stage.
            stackwise_num_filters=[64, 16],
            stackwise_num_blocks=[1, 1],
            stackwise_num_strides=[1, 2],
            block_type="basic_block",
            image_shape=(16, 16, 3),
        ),
    ),
    "Whisper": (
        "WhisperBackbone",
        dict(
            _DECODER,
            num_mels=8,
            max_encoder_sequence_length=16,
            max_decoder_sequence_length=8,
        ),
    ),
    "BertTextClassifier": ("BertTextClassifier", None),
}


def build_hub(name, **overrides):
    """Builds the tiny KerasHub model `name` of `HUB_MODELS`.

    Args:
        name: a key of `HUB_MODELS` (e.g. `"T5"`, `"Gemma"`).
        **overrides: config entries that replace the table's.

    Returns:
        The model, random weights (needs `keras_hub`).

    Example:

    >>> model = build_hub("T5", num_layers=2)  # doctest: +SKIP
    """
    import keras_hub

    if name not in HUB_MODELS:
        raise ValueError(
            f"Unknown KerasHub model {name!r}; expected one of "
            f"{sorted(HUB_MODELS)}. Received: name={name!r}"
        )
    class_name, config = HUB_MODELS[name]
    if name == "BertTextClassifier":
        backbone = keras_hub.models.BertBackbone(**HUB_MODELS["Bert"][1])
        return keras_hub.models.BertTextClassifier(
            backbone, num_classes=2, preprocessor=None
        )
    config = {k: v for k, v in {**config, **overrides}.items() if v is not None}
    return getattr(keras_hub.models, class_name)(**config)

"""Tiny KerasHub backbones shared by test directories (no downloads)."""


def gemma_backbone(keras_hub, vocabulary_size=50, layers=1, width=8):
    """A Gemma backbone (tied `ReversibleEmbedding`) of `width` hidden units.

    Args:
        keras_hub: the imported `keras_hub` module.
        vocabulary_size: the token table's rows.
        layers: the decoder blocks.
        width: the hidden size (heads of `width // 2`, an MLP twice as wide).
    """
    return keras_hub.models.GemmaBackbone(
        vocabulary_size=vocabulary_size,
        num_layers=layers,
        num_query_heads=2,
        num_key_value_heads=1,
        hidden_dim=width,
        intermediate_dim=2 * width,
        head_dim=width // 2,
    )

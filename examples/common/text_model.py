"""The fine-tuning job's text model: a tiny KerasHub GPT-2, by character.

`language_model` pretrains the backbone on next-character prediction;
`classifier` puts a new head on it (mean of the tokens' last hidden
states, then the logits): the model LoRA and MK-LoRA fine-tune, through
`backbone.enable_lora` as KerasHub users do.

Characters are tokens: ids 2..96 are printable ASCII, 1 any other
character, 0 padding (masked).
"""

import keras
import numpy as np

SEQUENCE_LENGTH = 64
VOCABULARY_SIZE = 97
PAD, UNKNOWN = 0, 1
# Small enough for a few seconds per epoch on 2 CPU cores.
CONFIG = dict(
    vocabulary_size=VOCABULARY_SIZE,
    num_layers=2,
    num_heads=2,
    hidden_dim=64,
    intermediate_dim=128,
    dropout=0.0,
    max_sequence_length=SEQUENCE_LENGTH,
)


def encode(texts, length=SEQUENCE_LENGTH):
    """Character ids of the first `length` characters of each text, padded
    with `PAD`: an int32 array `(len(texts), length)`."""
    ids = np.full((len(texts), length), PAD, dtype="int32")
    for row, text in enumerate(texts):
        codes = np.array([ord(c) for c in text[:length]], dtype="int32")
        codes = np.where((codes >= 32) & (codes < 127), codes - 30, UNKNOWN)
        ids[row, : len(codes)] = codes
    return ids


def backbone(seed):
    """A freshly initialized tiny `keras_hub.models.GPT2Backbone`."""
    import keras_hub

    keras.utils.set_random_seed(seed)
    return keras_hub.models.GPT2Backbone(**CONFIG, name="gpt2_backbone")


def _features(backbone_model, token_ids):
    mask = keras.ops.not_equal(token_ids, PAD)
    return backbone_model({"token_ids": token_ids, "padding_mask": mask}), mask


def language_model(backbone_model):
    """Next-character logits `(batch, length, vocabulary)` of the backbone
    (its token embedding, reversed: GPT-2's tied output)."""
    token_ids = keras.Input((SEQUENCE_LENGTH,), dtype="int32")
    hidden, _ = _features(backbone_model, token_ids)
    logits = backbone_model.token_embedding(hidden, reverse=True)
    return keras.Model(token_ids, logits, name="gpt2_lm")


def classifier(backbone_model, num_classes, seed):
    """The backbone with a new head: masked mean of the hidden states, then
    `Dense(num_classes)` named `logits` (initialized from `seed`)."""
    token_ids = keras.Input((SEQUENCE_LENGTH,), dtype="int32")
    hidden, mask = _features(backbone_model, token_ids)
    pooled = keras.layers.GlobalAveragePooling1D(name="pool")(hidden, mask=mask)
    logits = keras.layers.Dense(
        num_classes,
        kernel_initializer=keras.initializers.GlorotUniform(seed),
        name="logits",
    )(pooled)
    return keras.Model(token_ids, logits, name="gpt2_classifier")


def next_character_data(texts, length=SEQUENCE_LENGTH):
    """`(inputs, targets)` for language modelling: texts cut into chunks of
    `length + 1` characters; targets are the inputs shifted by one."""
    joined = " ".join(texts)
    chunks = [
        joined[i : i + length + 1]
        for i in range(0, len(joined) - length, length + 1)
    ]
    ids = encode(chunks, length + 1)
    return ids[:, :-1], ids[:, 1:]

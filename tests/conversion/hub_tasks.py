"""Tiny KerasHub tasks with their preprocessors, built offline.

Each tokenizer kind is made here from a few sentences: a WordPiece
vocabulary list (BERT), a byte-pair vocabulary with merges (GPT-2, BART,
Llama 3) and a SentencePiece proto trained with the `sentencepiece`
package (Gemma, T5). A task is then saved with `save_to_preset` and loaded
back with `from_preset`, the path KerasHub users take, so its tokenizer's
vocabulary comes from the preset's assets, not from its config.
"""

import io

import numpy as np
import tiny_hub

SENTENCES = [
    "the quick brown fox",
    "jumps over the lazy dog",
    "a cat sat on the mat",
    "the dog barks at the cat",
]
LABELS = np.array([0, 1, 0, 1])
# The size of every tiny transformer backbone here.
_SIZE = dict(num_layers=1, num_heads=2, hidden_dim=8, intermediate_dim=16)
TRANSFORMER = dict(_SIZE, max_sequence_length=16, dropout=0.0)
_WORDS = sorted({w for s in SENTENCES for w in s.split()})


def word_piece_vocabulary():
    """A WordPiece vocabulary (a list) with BERT's special tokens."""
    return ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + _WORDS


def byte_pair_vocabulary(specials):
    """A byte-level BPE vocabulary (token -> id) and its merges.

    Single characters (`Ġ` marks a leading space, as in GPT-2) plus the
    tokens that the merges build.
    """
    merges = ["t h", "Ġ t", "Ġt h", "th e", "Ġth e", "a t", "Ġ c", "Ġc at"]
    tokens = list(specials) + ["Ġ"] + sorted(set("".join(_WORDS)))
    tokens += [m.replace(" ", "") for m in merges]
    tokens = list(dict.fromkeys(tokens))
    return {t: i for i, t in enumerate(tokens)}, merges


def sentence_piece_proto(pad, bos, eos, unk):
    """A SentencePiece model proto (bytes) trained on `SENTENCES`."""
    import sentencepiece

    data = io.BytesIO()
    sentencepiece.SentencePieceTrainer.train(
        sentence_iterator=iter(SENTENCES),
        model_writer=data,
        vocab_size=len(_WORDS) + 4,
        model_type="WORD",
        pad_id=0,
        bos_id=1,
        eos_id=2,
        unk_id=3,
        pad_piece=pad,
        bos_piece=bos,
        eos_piece=eos,
        unk_piece=unk,
        minloglevel=2,
    )
    return data.getvalue()


def _bert(keras_hub):
    tokenizer = keras_hub.models.BertTokenizer(
        vocabulary=word_piece_vocabulary()
    )
    backbone = keras_hub.models.BertBackbone(
        vocabulary_size=tokenizer.vocabulary_size(),
        **TRANSFORMER,
    )
    return tokenizer, backbone


def text_classifier(keras_hub):
    """BERT text classifier: WordPiece tokenizer."""
    tokenizer, backbone = _bert(keras_hub)
    preprocessor = keras_hub.models.BertTextClassifierPreprocessor(
        tokenizer, sequence_length=8
    )
    return keras_hub.models.BertTextClassifier(
        backbone, num_classes=2, preprocessor=preprocessor, dropout=0.0
    )


def masked_lm(keras_hub):
    """BERT masked LM: WordPiece tokenizer, random masking."""
    tokenizer, backbone = _bert(keras_hub)
    preprocessor = keras_hub.models.BertMaskedLMPreprocessor(
        tokenizer, sequence_length=8, mask_selection_length=2
    )
    return keras_hub.models.BertMaskedLM(backbone, preprocessor=preprocessor)


def gpt2_causal_lm(keras_hub):
    """GPT-2 causal LM: byte-pair tokenizer with merges."""
    vocabulary, merges = byte_pair_vocabulary(["<|endoftext|>"])
    tokenizer = keras_hub.models.GPT2Tokenizer(
        vocabulary=vocabulary, merges=merges
    )
    backbone = keras_hub.models.GPT2Backbone(
        vocabulary_size=tokenizer.vocabulary_size(),
        **TRANSFORMER,
    )
    preprocessor = keras_hub.models.GPT2CausalLMPreprocessor(
        tokenizer, sequence_length=8
    )
    return keras_hub.models.GPT2CausalLM(backbone, preprocessor=preprocessor)


def gemma_causal_lm(keras_hub):
    """Gemma causal LM: SentencePiece tokenizer, tied embeddings."""
    tokenizer = keras_hub.models.GemmaTokenizer(
        proto=sentence_piece_proto("<pad>", "<bos>", "<eos>", "<unk>")
    )
    backbone = tiny_hub.gemma_backbone(keras_hub, tokenizer.vocabulary_size())
    preprocessor = keras_hub.models.GemmaCausalLMPreprocessor(
        tokenizer, sequence_length=8
    )
    return keras_hub.models.GemmaCausalLM(backbone, preprocessor=preprocessor)


def bart_seq2seq_lm(keras_hub):
    """BART seq2seq LM: byte-pair tokenizer with merges."""
    vocabulary, merges = byte_pair_vocabulary(
        ["<s>", "<pad>", "</s>", "<mask>"]
    )
    tokenizer = keras_hub.models.BartTokenizer(
        vocabulary=vocabulary, merges=merges
    )
    backbone = keras_hub.models.BartBackbone(
        vocabulary_size=tokenizer.vocabulary_size(),
        **TRANSFORMER,
    )
    preprocessor = keras_hub.models.BartSeq2SeqLMPreprocessor(
        tokenizer, encoder_sequence_length=8, decoder_sequence_length=8
    )
    return keras_hub.models.BartSeq2SeqLM(backbone, preprocessor=preprocessor)


def image_classifier(keras_hub):
    """ResNet image classifier with its image converter (resizing)."""
    backbone = keras_hub.models.ResNetBackbone(
        input_conv_filters=[64],
        input_conv_kernel_sizes=[3],
        stackwise_num_filters=[64],
        stackwise_num_blocks=[1],
        stackwise_num_strides=[1],
        block_type="basic_block",
        image_shape=(16, 16, 3),
    )
    converter = keras_hub.layers.ResNetImageConverter(
        image_size=(16, 16), scale=1 / 255.0
    )
    preprocessor = keras_hub.models.ResNetImageClassifierPreprocessor(
        image_converter=converter
    )
    return keras_hub.models.ResNetImageClassifier(
        backbone, num_classes=2, preprocessor=preprocessor
    )


# family name -> (builder, the KerasHub base class its users load with)
TASKS = {
    "text_classifier": (text_classifier, "TextClassifier"),
    "masked_lm": (masked_lm, "MaskedLM"),
    "gpt2_causal_lm": (gpt2_causal_lm, "CausalLM"),
    "gemma_causal_lm": (gemma_causal_lm, "CausalLM"),
    "bart_seq2seq_lm": (bart_seq2seq_lm, "Seq2SeqLM"),
    "image_classifier": (image_classifier, "ImageClassifier"),
}
GENERATES = ("gpt2_causal_lm", "gemma_causal_lm", "bart_seq2seq_lm")


def raw_inputs(name):
    """A batch of raw inputs (strings, images) and labels, or None."""
    if name == "image_classifier":
        images = np.random.default_rng(0).uniform(0, 255, (4, 20, 20, 3))
        return images.astype("float32"), LABELS
    if name == "bart_seq2seq_lm":
        return {
            "encoder_text": np.array(SENTENCES),
            "decoder_text": np.array(SENTENCES[::-1]),
        }, None
    if name == "text_classifier":
        return np.array(SENTENCES), LABELS
    return np.array(SENTENCES), None


def masked_lm_features():
    """One preprocessed masked-LM batch, fixed (the preprocessor's masking
    is random)."""
    rng = np.random.default_rng(0)
    return {
        "token_ids": rng.integers(5, len(word_piece_vocabulary()), (4, 8)),
        "segment_ids": np.zeros((4, 8), "int32"),
        "padding_mask": np.ones((4, 8), bool),
        "mask_positions": np.tile([1, 3], (4, 1)),
    }


def prompts(name):
    """What `generate` is given."""
    if name == "bart_seq2seq_lm":
        return ["the quick brown fox", "a cat sat"]
    return ["the quick", "a cat"]


def load(name, directory):
    """A task from a preset folder, as its users load it.

    KerasHub's `Seq2SeqLMPreprocessor` does not record its sequence
    lengths in its config: they are passed again, as users must.
    """
    import keras_hub

    family = TASKS[name][1]
    kwargs = {}  # `num_classes=` would make KerasHub drop the head's weights
    if family == "Seq2SeqLM":
        kwargs["preprocessor"] = (
            keras_hub.models.Seq2SeqLMPreprocessor.from_preset(
                str(directory),
                encoder_sequence_length=8,
                decoder_sequence_length=8,
            )
        )
    task = getattr(keras_hub.models, family).from_preset(
        str(directory), **kwargs
    )
    if name in GENERATES:
        task.compile(sampler="greedy")
    return task


def from_local_preset(name, directory):
    """The task built here, saved with `save_to_preset`, then `load`ed."""
    import keras_hub

    TASKS[name][0](keras_hub).save_to_preset(str(directory))
    return load(name, directory)

"""The models the step-time benchmark measures.

Plain Keras models; their MK versions come from `keras_mk.clone_model` and
the deployed ones from `keras_mk.collapse`, as a user would make them.
"""

import keras
import numpy as np

import keras_mk
from benchmarks import common

# The `keras.applications` rows (untrained, 10 classes, logits): the
# paper's Table 1 model, and what people deploy (the collapsed model to
# LiteRT), with many small kernels (depthwise, 1x1, squeeze-excite).
APPLICATIONS = {
    "resnet50": "ResNet50",
    "efficientnetb0": "EfficientNetB0",
    "mobilenetv3small": "MobileNetV3Small",
}

# Rows that measure another conversion of a model: row -> (model,
# `clone_model` arguments). "transformer-tables": the T5 with its embedding
# tables simulated too (`embeddings=True`).
CONVERSIONS = {"transformer-tables": ("transformer", {"embeddings": True})}


def conversion_of(name):
    """`(model name, clone_model arguments)` of benchmark row `name`."""
    return CONVERSIONS.get(name, (name, {}))


# Full-size settings (the paper's A3 MLP; a small CNN; a small T5) and the
# `--quick` settings (seconds on CPU, for CI; numbers not meaningful).
_T5_KEYS = ("layers", "hidden", "heads", "intermediate", "vocabulary", "length")
_GEMMA_KEYS = (
    "vocabulary_size", "num_layers", "num_query_heads",
    "num_key_value_heads", "hidden_dim", "intermediate_dim", "head_dim",
    "rank", "length",
)  # fmt: skip
SIZES = {
    "full": {
        "mlp": {"widths": (400, 200, 100), "inputs": 3072, "batch": 256},
        "cnn": {"filters": (32, 64, 64), "image": 32, "batch": 128},
        "transformer": dict(
            zip(_T5_KEYS, (2, 128, 4, 512, 1000, 64)), batch=16
        ),
        # `keras.applications`: a small input keeps a CPU step short.
        **{name: {"image": 64, "batch": 16} for name in APPLICATIONS},
        # A small KerasHub Gemma with LoRA (rank 8, the default target
        # layers): MK-LoRA against plain LoRA.
        "gemma-lora": dict(
            zip(_GEMMA_KEYS, (1000, 2, 4, 4, 128, 256, 32, 8, 64)), batch=4
        ),
    },
    "quick": {
        "mlp": {"widths": (32, 16, 8), "inputs": 64, "batch": 16},
        "cnn": {"filters": (4, 8, 8), "image": 8, "batch": 8},
        "transformer": dict(zip(_T5_KEYS, (1, 16, 2, 32, 50, 8)), batch=4),
        **{name: {"image": 32, "batch": 2} for name in APPLICATIONS},
        "gemma-lora": dict(
            zip(_GEMMA_KEYS, (50, 1, 2, 2, 16, 32, 8, 2, 8)), batch=2
        ),
    },
}
# Rows whose plain model has LoRA enabled: each variant is built from a
# fresh plain model, since an MK-LoRA model holds its original's frozen
# variables (and JAX donates the buffers of a model it trains).
LORA_ROWS = ("gemma-lora",)


def mlp(widths, inputs, batch):
    del batch
    x = keras.Input((inputs,))
    y = x
    for width in widths:
        y = keras.layers.Dense(width, activation="relu")(y)
    y = keras.layers.Dense(10)(y)
    return keras.Model(x, y)


def cnn(filters, image, batch):
    del batch
    x = keras.Input((image, image, 3))
    y = x
    for i, f in enumerate(filters):
        y = keras.layers.Conv2D(f, 3, padding="same", activation="relu")(y)
        if i < len(filters) - 1:
            y = keras.layers.MaxPooling2D()(y)
    y = keras.layers.GlobalAveragePooling2D()(y)
    y = keras.layers.Dense(10)(y)
    return keras.Model(x, y)


def transformer(layers, hidden, heads, intermediate, vocabulary, length, batch):
    """A small T5 (KerasHub `T5Backbone` from config) with a LM head."""
    import keras_hub

    del batch

    backbone = keras_hub.models.T5Backbone(
        vocabulary_size=vocabulary,
        num_layers=layers,
        num_heads=heads,
        hidden_dim=hidden,
        intermediate_dim=intermediate,
        key_value_dim=hidden // heads,
        dropout=0.0,
        tie_embedding_weights=False,
    )
    inputs = {
        name: keras.Input((length,), dtype="int32", name=name)
        for name in (
            "encoder_token_ids",
            "encoder_padding_mask",
            "decoder_token_ids",
            "decoder_padding_mask",
        )
    }
    sequence = backbone(inputs)["decoder_sequence_output"]
    logits = keras.layers.Dense(vocabulary)(sequence)
    return keras.Model(inputs, logits)


def gemma_lora(rank, length, batch, **config):
    """A KerasHub `GemmaCausalLM` from config, LoRA of `rank` enabled on
    its backbone (no preprocessor: token ids in)."""
    import keras_hub

    backbone = keras_hub.models.GemmaBackbone(**config)
    backbone.enable_lora(rank)
    return keras_hub.models.GemmaCausalLM(backbone, preprocessor=None)


def application(name, image):
    """`keras.applications.<APPLICATIONS[name]>`, untrained, 10 classes."""
    constructor = getattr(keras.applications, APPLICATIONS[name])
    return constructor(
        weights=None,
        input_shape=(image, image, 3),
        classes=10,
        classifier_activation=None,
    )


def optimizer(name, kind=None):
    """The optimizer of a row.

    The paper's: SGD with momentum for ResNet, Adam else; `kind` ("adam"
    or "sgd") overrides it.
    """
    kind = kind or ("sgd" if name == "resnet50" else "adam")
    if kind == "sgd":
        return keras.optimizers.SGD(0.1, momentum=0.9)
    return keras.optimizers.Adam(1e-3)


def build(name, size):
    """The plain model `name` and one batch of data for it."""
    name, _ = conversion_of(name)
    cfg = SIZES[size][name]
    rng = np.random.default_rng(0)
    batch = cfg["batch"]
    if name == "mlp":
        model = mlp(**cfg)
        x = rng.standard_normal((batch, cfg["inputs"]), dtype="float32")
        y = rng.integers(0, 10, (batch,))
    elif name == "cnn" or name in APPLICATIONS:
        if name == "cnn":
            model = cnn(**cfg)
        else:
            model = application(name, cfg["image"])
        shape = (batch, cfg["image"], cfg["image"], 3)
        x = rng.standard_normal(shape, dtype="float32")
        y = rng.integers(0, 10, (batch,))
    elif name == "transformer":
        model = transformer(**cfg)
        shape = (batch, cfg["length"])
        tokens = rng.integers(1, cfg["vocabulary"], shape).astype("int32")
        mask = np.ones(shape, dtype="int32")
        x = {
            "encoder_token_ids": tokens,
            "encoder_padding_mask": mask,
            "decoder_token_ids": tokens,
            "decoder_padding_mask": mask,
        }
        y = rng.integers(0, cfg["vocabulary"], shape)
    elif name == "gemma-lora":
        model = gemma_lora(**cfg)
        vocabulary = cfg["vocabulary_size"]
        shape = (batch, cfg["length"])
        x = {
            "token_ids": rng.integers(0, vocabulary, shape).astype("int32"),
            "padding_mask": np.ones(shape, dtype="int32"),
        }
        y = rng.integers(0, vocabulary, shape)
    else:
        raise ValueError(f"Unknown model: {name!r}")
    return model, x, y, batch


def _own_buffers(model):
    # Re-create every variable from NumPy: JAX donates the buffers of a model
    # it trains, so two models must not share one.
    for variable in model.variables:
        variable.assign(keras.ops.convert_to_numpy(variable))
    return model


def expand(model, expansion, seed=0, **mk_arguments):
    """The MK version of `model` (every kernel layer, `expansion` copies).

    `mk_arguments` (`probabilities`, `probability_sharing`, ...) go to
    `keras_mk.clone_model`.
    """
    return _own_buffers(
        keras_mk.clone_model(
            model, expansion=expansion, seed=seed, **mk_arguments
        )
    )


def collapse(mk_model):
    """The plain model `mk_model` deploys as."""
    return _own_buffers(keras_mk.collapse(mk_model))


DIGITS_TASKS = {"digits": 0.0, "digits-noisy": 0.3}


def digits_task(name, max_train=None):
    """scikit-learn's digits, 60/40, flattened; `digits-noisy` has 30% of
    its training labels replaced by a wrong class.

    Returns:
        `(x_train, y_train, x_test, y_test)`.
    """
    from sklearn.model_selection import train_test_split

    x, y = common.digits()
    x_train, x_test, y_train, y_test = train_test_split(
        x, y, test_size=0.4, random_state=0, stratify=y
    )
    rng = np.random.default_rng(0)
    flipped = rng.random(len(y_train)) < DIGITS_TASKS[name]
    offsets = rng.integers(1, 10, size=int(flipped.sum()))
    y_train = y_train.copy()
    y_train[flipped] = (y_train[flipped] + offsets) % 10
    return x_train[:max_train], y_train[:max_train], x_test, y_test

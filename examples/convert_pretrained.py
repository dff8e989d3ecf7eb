# %% [markdown]
# # Convert a pretrained model to Majority Kernels, train, ship it small
#
# A notebook (cells separated by `# %%`; run it top to bottom as a script
# too: `python -m examples.convert_pretrained`). We take two KerasHub models
# loaded with `from_preset` (a ResNet image classifier and a T5 backbone),
# convert them with `keras_mk.clone_model`, train briefly with `model.fit`,
# collapse them back with `keras_mk.collapse` and write `.keras` and
# `.tflite` files the size of the original models.
#
# Presets cannot be downloaded here, so each model is built small from its
# config, its weights jittered to stand in for pretrained ones, and saved as
# a local preset with `save_to_preset(dir)` first; with
# network access, pass a Kaggle handle (`"resnet_18_imagenet"`,
# `"t5_small_multi"`) to `from_preset` instead.

# %%
import os
import pathlib
import tempfile

import keras
import keras_hub
import numpy as np

import keras_mk
from examples.common import litert

OUT = pathlib.Path(tempfile.mkdtemp(prefix="keras_mk_example_"))
rng = np.random.default_rng(0)
keras.utils.set_random_seed(0)


def size(path):
    line = f"{os.path.getsize(path) / 1024:8.1f} KiB  {path.name}"
    if path.suffix == ".tflite":
        # What must be equal: the weights stored (names and other metadata
        # make the files differ by a few hundred bytes).
        line += f"  (weights: {litert.weight_bytes(path)} bytes)"
    return line


def ship(name, original, mk_model, collapsed):
    """Saves what a project keeps and prints the file sizes: the original
    and the collapsed model (`.keras` and LiteRT), and the MK training
    checkpoint (`keras_mk.save_model`: it resumes training)."""
    original.save(OUT / f"{name}_original.keras")
    collapsed.save(OUT / f"{name}_collapsed.keras")
    keras_mk.save_model(mk_model, OUT / f"{name}_mk_training.keras")
    keras_mk.export_litert(original, OUT / f"{name}_original.tflite")
    keras_mk.export_litert(mk_model, OUT / f"{name}_collapsed.tflite")
    for kind in ("original", "collapsed", "mk_training"):
        print(size(OUT / f"{name}_{kind}.keras"))
    for kind in ("original", "collapsed"):
        print(size(OUT / f"{name}_{kind}.tflite"))


def stand_in_for_pretrained(model):
    """Jitters every weight, as training would: fresh from config, biases
    are 0 and norm scales 1, which the LiteRT converter folds away (`x + 0`,
    `x * 1`), so an untrained "original" would export a few ops smaller
    than any trained model of the same architecture."""
    for variable in model.weights:
        value = keras.ops.convert_to_numpy(variable)
        noise = rng.normal(scale=0.01, size=value.shape)
        variable.assign((value + noise).astype(value.dtype))
    return model


# %% [markdown]
# ## 1. A ResNet image classifier from a (local) preset

# %%
backbone = keras_hub.models.ResNetBackbone(
    input_conv_filters=[64],
    input_conv_kernel_sizes=[3],
    stackwise_num_filters=[64, 32],
    stackwise_num_blocks=[1, 1],
    stackwise_num_strides=[1, 2],
    block_type="basic_block",
    use_pre_activation=False,
    image_shape=(32, 32, 3),
)
stand_in_for_pretrained(
    keras_hub.models.ResNetImageClassifier(backbone=backbone, num_classes=3)
).save_to_preset(str(OUT / "resnet_preset"))

classifier = keras_hub.models.ImageClassifier.from_preset(
    str(OUT / "resnet_preset")
)
print(type(classifier).__name__, f"{classifier.count_params():,} params")

# %% [markdown]
# Convert every Conv2D and Dense layer: three copies of each kernel, each
# a replica of the pretrained one, so the MK model starts out computing
# exactly what the pretrained model computes.

# %%
mk_classifier = keras_mk.clone_model(classifier, expansion=3, seed=0)
print(keras_mk.conversion_summary(mk_classifier))

# A toy task: which colour channel is brightest.
images = rng.uniform(size=(96, 32, 32, 3)).astype("float32")
labels = images.mean(axis=(1, 2)).argmax(axis=-1)
before = mk_classifier.predict(images[:8], verbose=0)
np.testing.assert_allclose(
    before, classifier.predict(images[:8], verbose=0), atol=1e-5
)

# %%
mk_classifier.compile(
    optimizer=keras.optimizers.Adam(1e-3),
    loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    metrics=["accuracy"],
)
mk_classifier.fit(images, labels, batch_size=16, epochs=2, verbose=2)

# %% [markdown]
# Collapse: the plain `ResNetImageClassifier`, holding the mean kernels. It
# computes what the MK model computes at inference.

# %%
small = keras_mk.collapse(mk_classifier)
print(type(small).__name__, f"{small.count_params():,} params")
diff = np.abs(
    small.predict(images[:8], verbose=0)
    - mk_classifier.predict(images[:8], verbose=0)
).max()
print(f"collapsed vs MK inference: max abs diff {diff:.2e}")

# %% [markdown]
# Files: the original, the collapsed model (same size: same architecture and
# parameter count) and the MK training checkpoint (`e` copies of each kernel
# and, with Adam, two optimizer slots per copy: about 7.7x for e = 3).

# %%
ship("resnet", classifier, mk_classifier, small)

# %% [markdown]
# The LiteRT interpreter runs the deployed file and agrees with Keras.

# %%
sample = images[:8]
litert_out = litert.run_tflite(str(OUT / "resnet_collapsed.tflite"), sample)
keras_out = keras.ops.convert_to_numpy(small.predict(sample, verbose=0))
print(
    f"LiteRT vs Keras: max abs diff {np.abs(litert_out - keras_out).max():.2e}"
)

# %% [markdown]
# ## 2. A T5 backbone from a (local) preset
#
# The Dense layers of a `T5Backbone` live inside `T5TransformerLayer` and
# `T5MultiHeadAttention`; `clone_model` reaches them. Here we convert the
# attention projections and the feed-forward layers of the encoder only,
# selected by a regular expression on layer paths.

# %%
stand_in_for_pretrained(
    keras_hub.models.T5Backbone(
        vocabulary_size=100,
        num_layers=2,
        num_heads=2,
        hidden_dim=32,
        intermediate_dim=64,
        key_value_dim=16,
        dropout=0.0,
    )
).save_to_preset(str(OUT / "t5_preset"))
t5 = keras_hub.models.Backbone.from_preset(str(OUT / "t5_preset"))

mk_t5 = keras_mk.clone_model(t5, layers=r"^transformer_encoder", seed=1)
summary = keras_mk.conversion_summary(mk_t5)
print(f"{len(summary.layers)} MK layers, e.g. {summary.layers[0].path}")
print(f"training params {summary.training_params:,}")
print(f"inference params {summary.inference_params:,}")

# %% [markdown]
# A short fit: a pooled encoder output feeding a small classification head
# (the head is a plain Dense; the backbone's layers are the MK ones).

# %%
tokens = rng.integers(1, 100, size=(64, 8))
inputs = {
    "encoder_token_ids": tokens,
    "encoder_padding_mask": np.ones_like(tokens, bool),
    "decoder_token_ids": tokens[:, :4],
    "decoder_padding_mask": np.ones((64, 4), bool),
}
targets = (tokens[:, 0] > 50).astype("int32")

features = mk_t5(mk_t5.input)["encoder_sequence_output"]
pooled = keras.layers.GlobalAveragePooling1D()(features)
task = keras.Model(mk_t5.input, keras.layers.Dense(2)(pooled))
task.compile(
    optimizer=keras.optimizers.Adam(1e-3),
    loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
)
task.fit(inputs, targets, batch_size=16, epochs=2, verbose=2)

# %%
small_t5 = keras_mk.collapse(mk_t5)
print(type(small_t5).__name__, f"{small_t5.count_params():,} params")
mk_out = mk_t5(inputs)["encoder_sequence_output"]
small_out = small_t5(inputs)["encoder_sequence_output"]
diff = np.abs(keras.ops.convert_to_numpy(mk_out - small_out)).max()
print(f"collapsed vs MK inference: max abs diff {diff:.2e}")

ship("t5", t5, mk_t5, small_t5)

# %% [markdown]
# The `.keras` files of the collapsed models load anywhere with plain
# `keras.saving.load_model`, without keras_mk; the MK training files load
# with `keras_mk.load_model` and resume training where it stopped.

# %%
restored = keras_mk.load_model(OUT / "t5_mk_training.keras")
print(type(restored).__name__, "restored from", OUT)

"""The fine-tuning question: source and target tasks, and the checkpoints.

A `Pair` is a source task a plain model is pretrained on and a target task
every algorithm fine-tunes it on; each says what shifts between the two.

* `mnist1d-shift`: MNIST-1D's published setting (4,000 training
  sequences) to 500 sequences generated with half the translation, twice
  the white noise and more scaling; the same 10 classes, so the head is
  kept.
* `digits-5to9`: scikit-learn's digits 0-4 to digits 5-9 (300 training
  images); a new head.
* `docstrings`: a tiny KerasHub GPT-2 pretrained on next-character
  prediction over KerasHub's docstrings, fine-tuned to tell which of
  Keras, PyTorch, JAX and NumPy a docstring comes from (150 per package;
  package names removed: `docstrings`); a new head; the LoRA algorithms.

`Checkpoints` pretrains one plain model per seed, deterministically per
backend, and keeps it in `<output>/checkpoints/` (reused by a later
invocation with the same output folder); `start(seed)` is a fresh model
holding the checkpoint of `seed` (with a new head where the classes
differ): every algorithm of that seed starts from it.
"""

import dataclasses
import hashlib
import json
import os

import keras
import numpy as np

from examples.common import data_order
from examples.common import datasets
from examples.common import docstrings
from examples.common import text_model
from examples.common.models import build_model
from examples.common.names import member_seed

PAIRS = ("mnist1d-shift", "digits-5to9", "docstrings")
TEXT = "docstrings"
TEXT_TOPOLOGY = "GPT2-tiny"
# MNIST-1D's generation settings of the target task (the source uses the
# published defaults: translation up to 48, white noise 0.02, scale 0.4).
# Fine-tuned from the source, an A1 MLP gains ~5 points over the
# checkpoint's first epoch (more noise alone: under 1) and ~15 over
# training from scratch on the 500 sequences.
MNIST1D_TARGET = dict(max_translation=24, iid_noise_scale=0.04, scale_coeff=0.5)
TARGET_SIZES = {"train": 500, "validation": 1000, "test": 1000}
TEXT_PER_PACKAGE = {"train": 150, "validation": 250, "test": 250}
SMOKE_PACKAGES = ("keras", "numpy")
# Pretraining: Adam at a fixed rate, a fixed budget, the final weights.
PRETRAINING = {
    "classifier": dict(learning_rate=0.003, epochs=40, batch_size=256),
    "text": dict(learning_rate=0.003, epochs=2, batch_size=128),
}
# What `--finetune` runs where `--algorithms` and `--lr-exponents` are
# not given: the paper's question on the MLP and CNN pairs, the adapters'
# on the text pair; fine-tuning rates start below training's (exponents
# of the grid `0.001 * 1.5**i` under Adam), LoRA's above (its factors
# start at zero and are few).
DEFAULT_FLAGS = {
    False: ("baseline", "baseline-long", "mk"),
    True: ("lora", "lora-long", "lora-wide", "mk-lora"),
}
DEFAULT_EXPONENTS = {False: (-3, -1, 1), True: (1, 3, 5)}
CONSTRAINTS = os.path.join(
    os.path.dirname(os.path.dirname(os.path.dirname(__file__))),
    "constraints.txt",
)


@dataclasses.dataclass(frozen=True)
class Pair:
    """A source task and a target task.

    Attributes:
        name: one of `PAIRS`.
        source: the pretraining `datasets.Dataset` (for text: inputs and
            next-character targets; no validation or test split).
        target: the fine-tuning `datasets.Dataset` (its `name` is the
            pair's).
        shift: what differs between the two, in words.
        text: the GPT-2 pair (else an MLP or CNN of `models.build_model`).
        corpus: the text corpus's digest and versions, or None.
    """

    name: str
    source: datasets.Dataset
    target: datasets.Dataset
    shift: str
    text: bool = False
    corpus: dict = None

    @property
    def new_head(self):
        """The target's classes differ from the source's."""
        return self.text or self.name == "digits-5to9"

    def describe(self):
        """JSON-ready sizes and shift."""
        return {
            "shift": self.shift,
            "source": self.source.sizes(),
            "target": self.target.sizes(),
            "new_head": self.new_head,
            **({"corpus": self.corpus} if self.corpus else {}),
        }


def _split(x, y, sizes, name, num_classes, seed=0):
    order = np.random.default_rng(seed).permutation(len(x))
    x, y = x[order], y[order]
    a = sizes["train"]
    b = a + sizes["validation"]
    c = b + sizes["test"]
    if c > len(x):
        raise ValueError(f"{name}: {c} examples needed, {len(x)} at hand.")
    return datasets.Dataset(
        name, x[:a], y[:a], x[a:b], y[a:b], x[b:c], y[b:c], num_classes
    )


def _mnist1d_target(smoke):
    from mnist1d.data import get_dataset_args
    from mnist1d.data import make_dataset

    args = get_dataset_args()
    for key, value in MNIST1D_TARGET.items():
        setattr(args, key, value)
    args.num_samples, args.seed = 2500, 7
    state = np.random.get_state()
    try:
        data = make_dataset(args)
    finally:
        np.random.set_state(state)
    x = np.concatenate([data["x"], data["x_test"]]).astype("float32")
    y = np.concatenate([data["y"], data["y_test"]]).astype("int32")
    return _split(x, y, TARGET_SIZES, "mnist1d-shift", 10)


def _digits(smoke):
    from sklearn.datasets import load_digits

    digits = load_digits()
    x = (digits.data / 16.0).astype("float32")
    y = digits.target.astype("int32")
    low, high = y < 5, y >= 5
    source = _split(
        x[low], y[low], {"train": 720, "validation": 180, "test": 0},
        "digits-0to4", 5,
    )  # fmt: skip
    target = _split(
        x[high], y[high] - 5,
        {"train": 300, "validation": 300, "test": len(x[high]) - 600},
        "digits-5to9", 5,
    )  # fmt: skip
    return source, target


def _text(smoke):
    # The smoke run reads the two smallest target packages only.
    packages = SMOKE_PACKAGES if smoke else docstrings.TARGET_PACKAGES
    texts = docstrings.corpus(docstrings.SOURCE_PACKAGES + packages)
    corpus = docstrings.check(texts, CONSTRAINTS)
    inputs, targets = text_model.next_character_data(
        [t for p in docstrings.SOURCE_PACKAGES for t in texts[p]]
    )
    if smoke:
        inputs, targets = inputs[:512], targets[:512]
    source = datasets.Dataset(
        "keras_hub-docstrings", inputs, targets, inputs[:0], targets[:0],
        inputs[:0], targets[:0], text_model.VOCABULARY_SIZE,
    )  # fmt: skip
    splits = {k: [] for k in TEXT_PER_PACKAGE}
    labels = {k: [] for k in TEXT_PER_PACKAGE}
    rng = np.random.default_rng(0)
    for label, package in enumerate(packages):
        found = texts[package]
        order = rng.permutation(len(found))
        start = 0
        for split, size in TEXT_PER_PACKAGE.items():
            splits[split] += [found[i] for i in order[start : start + size]]
            labels[split] += [label] * size
            start += size
    arrays = []
    for split in TEXT_PER_PACKAGE:
        order = rng.permutation(len(labels[split]))
        arrays.append(text_model.encode([splits[split][i] for i in order]))
        arrays.append(np.asarray(labels[split], "int32")[order])
    target = datasets.Dataset(TEXT, *arrays, len(packages))
    return source, target, corpus


def load(name, smoke=False):
    """Loads one of `PAIRS`."""
    if name == "mnist1d-shift":
        source = datasets.load_mnist1d(5000)
        return Pair(
            name, source, _mnist1d_target(smoke),
            "MNIST-1D (4,000 sequences, published setting) to 500 "
            "sequences with half the translation, 2x white noise, more "
            "scaling",
        )  # fmt: skip
    if name == "digits-5to9":
        source, target = _digits(smoke)
        return Pair(
            name, source, target,
            "digits 0-4 (720 images) to digits 5-9 (300 images): new "
            "classes, a new head",
        )  # fmt: skip
    if name == TEXT:
        source, target, corpus = _text(smoke)
        return Pair(
            name, source, target,
            "next-character prediction on KerasHub's docstrings to which "
            "of Keras, PyTorch, JAX and NumPy a docstring comes from "
            "(first 64 characters, package names removed)",
            text=True, corpus=corpus,
        )  # fmt: skip
    raise ValueError(f"`name` must be one of {PAIRS}. Received: {name!r}")


def default_flags(pair):
    """The algorithms `--finetune` runs on `pair` by default."""
    return list(DEFAULT_FLAGS[pair.text])


def default_exponents(pair):
    """The starting grid's exponents on `pair` by default."""
    return list(DEFAULT_EXPONENTS[pair.text])


def _fingerprint(weights):
    sha = hashlib.sha256()
    for w in weights:
        sha.update(np.ascontiguousarray(w).tobytes())
    return sha.hexdigest()[:16]


class Checkpoints:
    """One pretrained plain model per seed, kept on disk.

    Args:
        pair: a `Pair`.
        hidden_units: the MLP's widths or `models.CNN` (ignored for text).
        topology: the topology's name (for the file names).
        directory: where the checkpoints are kept.
        smoke: pretrain for one epoch only.
    """

    def __init__(self, pair, hidden_units, topology, directory, smoke=False):
        self.pair = pair
        self.hidden_units = hidden_units
        self.topology = topology
        self.directory = directory
        self.recipe = dict(PRETRAINING["text" if pair.text else "classifier"])
        if smoke:
            self.recipe["epochs"] = 1
        self.loaded = {}
        self.records = {}
        self.name = f"{pair.name}|{topology}"

    def _source_model(self, seed):
        if self.pair.text:
            return text_model.backbone(seed)
        source = self.pair.source
        return build_model(
            source.input_shape, source.num_classes, self.hidden_units, seed
        )

    def path(self, seed):
        """The checkpoint file of `seed`."""
        backend = keras.backend.backend()
        name = f"{self.pair.name}_{self.topology}_{backend}_seed{seed}"
        return os.path.join(self.directory, name + ".weights.h5")

    def _pretrain(self, seed, path):
        model = self._source_model(seed)
        trained = model
        if self.pair.text:
            trained = text_model.language_model(model)
        trained.compile(
            keras.optimizers.Adam(self.recipe["learning_rate"]),
            keras.losses.SparseCategoricalCrossentropy(from_logits=True),
            metrics=["accuracy"],
        )
        source = self.pair.source
        keras.utils.set_random_seed(seed)
        history = trained.fit(
            data_order.EpochShuffled(
                source.x_train, source.y_train, self.recipe["batch_size"], seed
            ),
            epochs=self.recipe["epochs"],
            verbose=0,
        )
        record = {
            "seed": seed,
            "train_accuracy": float(history.history["accuracy"][-1]),
        }
        if len(source.x_val):
            logits = trained.predict(source.x_val, verbose=0)
            record["val_accuracy"] = float(
                np.mean(logits.argmax(-1) == source.y_val)
            )
        os.makedirs(self.directory, exist_ok=True)
        temporary = path + ".partial.weights.h5"
        model.save_weights(temporary)
        os.replace(temporary, path)
        with open(path + ".json", "w") as f:
            json.dump(record, f)

    def weights(self, seed):
        """The checkpoint's weights of `seed` (pretrained on first use)."""
        if seed not in self.loaded:
            path = self.path(seed)
            if not os.path.exists(path):
                self._pretrain(seed, path)
            model = self._source_model(seed)
            model.load_weights(path)
            weights = [keras.ops.convert_to_numpy(w) for w in model.weights]
            self.loaded[seed] = weights
            with open(path + ".json") as f:
                record = json.load(f)
            record["fingerprint"] = _fingerprint(weights)
            self.records[seed] = record
        return self.loaded[seed]

    def __call__(self, seed):
        return self.start(seed)

    def start(self, seed):
        """A fresh model of the target task holding checkpoint `seed`.

        The head is the checkpoint's where the classes are the same, else
        new (initialized from `member_seed(seed, 1)`).
        """
        weights = self.weights(seed)
        target = self.pair.target
        head_seed = member_seed(seed, 1)
        if self.pair.text:
            backbone = text_model.backbone(seed)
            backbone.set_weights(weights)
            return text_model.classifier(
                backbone, target.num_classes, head_seed
            )
        source = self._source_model(seed)
        source.set_weights(weights)
        if not self.pair.new_head:
            return source
        model = build_model(
            target.input_shape, target.num_classes, self.hidden_units,
            head_seed,
        )  # fmt: skip
        for layer, pretrained in zip(model.layers, source.layers):
            if layer.name != "logits":
                layer.set_weights(pretrained.get_weights())
        return model

    def summary(self):
        """The checkpoints used: per seed, source accuracy and digest."""
        return [self.records[s] for s in sorted(self.records)]

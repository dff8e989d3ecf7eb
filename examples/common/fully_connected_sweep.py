"""Appendix G, Table 5: fully connected networks on CIFAR-10.

Architectures A1 [100], A2 [200, 100], A3 [400, 200, 100]; BASELINE,
ENSEMBLE, DISTILLED, SUBSET, MAJORITY KERNELS and ADV-MK; Adam and SGD;
batch 256. Every algorithm's learning rate is chosen on a validation split
(the last 10% of the training set) from `0.001 * 1.5**i` (Adam) or
`0.025 * 1.5**i` (SGD), `i` in `[-4, 5]`, with seed 0; then every seed is
trained at that rate and the test accuracy reported as mean +/- std.
ENSEMBLE averages `e` BASELINE models trained at BASELINE's rate; DISTILLED
learns from the seed-0 ensemble.
"""

import dataclasses
import os
import time

import keras
import numpy as np
from tqdm.auto import tqdm

from examples.common import algorithms
from examples.common import plots
from examples.common import results
from examples.common import tfds_data
from examples.common.callbacks import accuracy_and_loss
from examples.common.comparison import _curves
from examples.common.comparison import _environment
from examples.common.comparison import predict_probabilities
from examples.common.digits import ImageTask
from examples.common.models import build_mlp
from examples.common.models import build_subset_mlp
from examples.common.run_store import RunStore

ARCHITECTURES = {"A1": (100,), "A2": (200, 100), "A3": (400, 200, 100)}
BASE_LEARNING_RATES = {"adam": 0.001, "sgd": 0.025}
LEARNING_RATE_EXPONENTS = tuple(range(-4, 6))
SWEPT = (
    algorithms.BASELINE,
    algorithms.MAJORITY,
    algorithms.ADV_MAJORITY,
    algorithms.SUBSET,
    algorithms.DISTILLED,
)


@dataclasses.dataclass
class FullyConnectedOptions:
    """What `examples/fully_connected.py` runs (see its `--help`)."""

    architectures: tuple = tuple(ARCHITECTURES)
    optimizers: tuple = ("adam", "sgd")
    systems: tuple = algorithms.ALGORITHMS
    learning_rate_exponents: tuple = LEARNING_RATE_EXPONENTS
    seeds: int = 3
    epochs: int = 30
    batch_size: int = 256
    expansion: int = 3
    adversarial_epsilon: float = 1000.0
    data_dir: str = None
    max_train: int = None
    smoke: bool = False
    output: str = "outputs/fully_connected"
    progress: bool = True


@dataclasses.dataclass(frozen=True)
class CifarSplits:
    """CIFAR-10 as flat float vectors: train, validation and test."""

    train: ImageTask
    x_val: np.ndarray
    y_val: np.ndarray


def load_cifar10(data_dir=None, max_train=None, smoke=False):
    """CIFAR-10 from TFDS: train[:90%], validation train[90%:], test.

    Images are flattened to 3,072 floats in `[0, 1]`. With `smoke`, TFDS
    returns mock examples (`tfds.testing.mock_data`), offline.
    """

    def split(name):
        data = tfds_data.load_numpy(
            "cifar10", name, ("image", "label"), data_dir
        )
        x = data["image"].reshape(len(data["image"]), -1)
        return x.astype("float32") / 255.0, data["label"].astype("int32")

    with tfds_data.offline_stand_in(smoke, num_examples=256):
        x_train, y_train = split("train[:90%]")
        x_val, y_val = split("train[90%:]")
        x_test, y_test = split("test")
    train = ImageTask(
        name="cifar10",
        x_train=x_train[:max_train],
        y_train=y_train[:max_train],
        x_test=x_test,
        y_test=y_test,
        num_classes=10,
        label_noise=0.0,
    )
    return CifarSplits(train=train, x_val=x_val, y_val=y_val)


def _accuracy(system, x, y):
    probabilities = predict_probabilities(
        system.deployed, x, system.outputs_probabilities
    )
    return accuracy_and_loss(probabilities, y)[0]


class Sweep:
    """Runs Table 5 with checkpoint and resume (see the module docstring)."""

    def __init__(self, options, data):
        self.options = options
        self.data = data
        self.store = RunStore(options.output)
        self.models = {}
        self.progress = None

    def config(self, optimizer, learning_rate):
        return algorithms.TrainingConfig(
            epochs=self.options.epochs,
            batch_size=self.options.batch_size,
            learning_rate=learning_rate,
            optimizer=optimizer,
            expansion=self.options.expansion,
            adversarial_epsilon=self.options.adversarial_epsilon,
            curve_samples=5000,
        )

    def builders(self, architecture):
        task = self.data.train
        hidden = ARCHITECTURES[architecture]

        def plain(seed):
            return build_mlp(
                task.input_shape, task.num_classes, hidden, seed=seed
            )

        def subset(seed):
            return build_subset_mlp(
                task.input_shape,
                task.num_classes,
                hidden,
                self.options.expansion,
                seed,
            )

        return plain, subset

    def run(self, key, train_fn, keep_model=False):
        """Runs `train_fn()` unless `key` is recorded; returns the record."""
        record = self.store.get(key)
        if record is not None and (not keep_model or key in self.models):
            return record
        if record is not None and os.path.exists(self.store.model_path(key)):
            self.models[key] = keras.saving.load_model(
                self.store.model_path(key)
            )
            return record
        self.progress.set_postfix_str(key)
        system = train_fn()
        task = self.data.train
        train_labels = task.y_train[:5000]
        curves = _curves(system, task, train_labels)
        record = {
            "algorithm": system.algorithm,
            "seed": system.seed,
            "val_accuracy": _accuracy(system, self.data.x_val, self.data.y_val),
            "test_accuracy": _accuracy(system, task.x_test, task.y_test),
            "train_accuracy": _accuracy(
                system, task.x_train[:5000], train_labels
            ),
            "seconds_per_step": system.seconds_per_step,
            "training_params": system.training_params,
            "inference_params": system.deployed.count_params(),
            "curves": {k: curves[k] for k in ("test_accuracy", "test_loss")},
        }
        if keep_model:
            model = system.deployed
            if system.members is not None:
                # The teacher of DISTILLED averages the members' logits.
                model = keras.Sequential(
                    [keras.Input(task.input_shape), _LogitMean(system.members)]
                )
            model.save(self.store.model_path(key))
            self.models[key] = model
        self.progress.update()
        return self.store.add(key, record)

    def setting(self, architecture, optimizer):
        """All algorithms for one architecture and optimizer."""
        options, task = self.options, self.data.train
        plain, subset = self.builders(architecture)
        base_lr = BASE_LEARNING_RATES[optimizer]
        rates = [base_lr * 1.5**i for i in options.learning_rate_exponents]
        prefix = f"{architecture}/{optimizer}"
        chosen, final = {}, []
        names = [n for n in SWEPT if n in options.systems]
        if algorithms.DISTILLED in names or algorithms.ENSEMBLE in (
            options.systems
        ):
            names = [algorithms.BASELINE] + [
                n for n in names if n != algorithms.BASELINE
            ]
        trainers = {
            algorithms.BASELINE: lambda c, s: algorithms.train_baseline(
                plain, task, c, s
            ),
            algorithms.MAJORITY: lambda c, s: algorithms.train_majority_kernels(
                plain, task, c, s
            ),
            algorithms.ADV_MAJORITY: lambda c, s: (
                algorithms.train_adversarial_majority_kernels(plain, task, c, s)
            ),
            algorithms.SUBSET: lambda c, s: algorithms.train_subset(
                subset, task, c, s
            ),
            algorithms.DISTILLED: lambda c, s: algorithms.train_distilled(
                plain, task, c, s, self.teacher(prefix)
            ),
        }
        for name in names:
            if name == algorithms.DISTILLED:
                self.ensembles(prefix, plain, optimizer, chosen, final)
            sweep = []
            for lr in rates:
                config = self.config(optimizer, lr)
                key = f"{prefix}/{name}/lr={lr:.6g}/seed=0"
                sweep.append(
                    self.run(key, lambda c=config, n=name: trainers[n](c, 0))
                )
            best = int(np.argmax([r["val_accuracy"] for r in sweep]))
            chosen[name] = rates[best]
            config = self.config(optimizer, rates[best])
            for seed in range(options.seeds):
                key = f"{prefix}/{name}/lr={rates[best]:.6g}/seed={seed}"
                record = self.run(
                    key, lambda c=config, s=seed, n=name: trainers[n](c, s)
                )
                final.append(dict(record, learning_rate=rates[best]))
        if algorithms.ENSEMBLE in options.systems and not any(
            r["algorithm"] == algorithms.ENSEMBLE for r in final
        ):
            self.ensembles(prefix, plain, optimizer, chosen, final)
        for record in final:
            record.update(architecture=architecture, optimizer=optimizer)
        return final

    def ensembles(self, prefix, plain, optimizer, chosen, final):
        """ENSEMBLE for every seed at BASELINE's chosen learning rate."""
        lr = chosen[algorithms.BASELINE]
        config = self.config(optimizer, lr)
        task = self.data.train
        for seed in range(self.options.seeds):
            key = f"{prefix}/{algorithms.ENSEMBLE}/lr={lr:.6g}/seed={seed}"
            record = self.run(
                key,
                lambda s=seed: algorithms.train_ensemble(
                    plain, task, config, s
                ),
                keep_model=seed == 0,
            )
            final.append(dict(record, learning_rate=lr))

    def teacher(self, prefix):
        """The seed-0 ensemble as a `TrainedSystem`-like teacher."""
        key = next(
            k
            for k in self.models
            if k.startswith(f"{prefix}/{algorithms.ENSEMBLE}/")
        )
        return _Teacher(self.models[key])


@keras.saving.register_keras_serializable(package="examples")
class _LogitMean(keras.layers.Layer):
    """The mean of several models' logits (the distillation teacher)."""

    def __init__(self, members, **kwargs):
        super().__init__(**kwargs)
        self.members = list(members)

    def call(self, inputs):
        outputs = [member(inputs) for member in self.members]
        return keras.ops.mean(keras.ops.stack(outputs), axis=0)

    def get_config(self):
        return {
            **super().get_config(),
            "members": [
                keras.saving.serialize_keras_object(m) for m in self.members
            ],
        }

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["members"] = [
            keras.saving.deserialize_keras_object(m) for m in config["members"]
        ]
        return cls(**config)


@dataclasses.dataclass
class _Teacher:
    """What `train_distilled` needs of an ensemble: its members."""

    model: keras.Model

    @property
    def members(self):
        return [self.model]


def run_fully_connected(options):
    """Runs the sweep and writes `results.json`, `results.md` and plots."""
    start = time.perf_counter()
    data = load_cifar10(options.data_dir, options.max_train, options.smoke)
    sweep = Sweep(options, data)
    per_setting = len(options.learning_rate_exponents) + options.seeds
    total = (
        len(options.architectures)
        * len(options.optimizers)
        * len(SWEPT)
        * per_setting
    )
    sweep.progress = tqdm(
        total=total, desc="runs", unit="run", disable=not options.progress
    )
    final = []
    for architecture in options.architectures:
        for optimizer in options.optimizers:
            final += sweep.setting(architecture, optimizer)
    sweep.progress.close()
    summary = results.summarize(final, ("architecture", "optimizer"))
    for row in summary:
        rates = {
            r["learning_rate"]
            for r in final
            if r["algorithm"] == row["algorithm"]
            and r["architecture"] == row["architecture"]
            and r["optimizer"] == row["optimizer"]
        }
        row["learning_rate"] = rates.pop()
    output = {
        "description": "Appendix G, Table 5: fully connected nets, CIFAR-10",
        "options": dataclasses.asdict(options),
        "environment": _environment(),
        "data": {
            "train": len(data.train.x_train),
            "validation": len(data.x_val),
            "test": len(data.train.x_test),
            "mock": options.smoke,
        },
        "wall_time_s": time.perf_counter() - start,
        "summary": summary,
        "runs": final,
    }
    results.write_json(os.path.join(options.output, "results.json"), output)
    _write_outputs(output, final, options)
    return output


def table5_rows(summary):
    """Rows of Table 5: one per (architecture, algorithm), optimizers as
    columns."""
    rows = {}
    for row in summary:
        key = (row["architecture"], row["algorithm"])
        entry = rows.setdefault(
            key, {"architecture": key[0], "algorithm": key[1]}
        )
        entry[row["optimizer"]] = results.format_mean_std(
            row["test_accuracy_mean"], row["test_accuracy_std"]
        )
        entry[f"{row['optimizer']}_lr"] = f"{row['learning_rate']:.4g}"
        ratio = row["step_time_ratio"]
        entry[f"{row['optimizer']}_step"] = (
            "-" if ratio is None else f"{ratio:.2f}x"
        )
    return list(rows.values())


def _write_outputs(output, final, options):
    columns = [
        ("Model", lambda r: r["architecture"]),
        ("Algorithm", lambda r: r["algorithm"]),
    ]
    for optimizer in options.optimizers:
        columns += [
            (f"{optimizer} test acc (%)", lambda r, o=optimizer: r.get(o, "-")),
            (f"{optimizer} lr", lambda r, o=optimizer: r.get(f"{o}_lr", "-")),
            (
                f"{optimizer} step time",
                lambda r, o=optimizer: r.get(f"{o}_step", "-"),
            ),
        ]
    table = results.markdown_table(table5_rows(output["summary"]), columns)
    env = output["environment"]
    text = [
        "# Fully connected networks on CIFAR-10 (paper Table 5)",
        "",
        f"Keras {env['keras']}, {env['backend']} backend, "
        f"{env['cpu_count']} CPUs; {options.seeds} seeds, "
        f"{options.epochs} epochs, batch {options.batch_size}"
        + (" — MOCK DATA (smoke run)" if options.smoke else "")
        + ".",
        "",
        table,
        "",
    ]
    for architecture in options.architectures:
        for optimizer in options.optimizers:
            curves = {}
            for r in final:
                if (r["architecture"], r["optimizer"]) != (
                    architecture,
                    optimizer,
                ):
                    continue
                curve = curves.setdefault(
                    r["algorithm"], {"test_accuracy": [], "test_loss": []}
                )
                for k in curve:
                    curve[k].append(r["curves"][k])
            name = f"curves_{architecture}_{optimizer}.png"
            plots.plot_test_curves(
                curves,
                os.path.join(options.output, name),
                f"CIFAR-10, {architecture}, {optimizer}",
            )
            text.append(f"![{architecture} {optimizer}]({name})")
    with open(os.path.join(options.output, "results.md"), "w") as f:
        f.write("\n".join(text) + "\n")
    print(results.text_table(table5_rows(output["summary"]), columns))

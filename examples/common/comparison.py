"""The main job: BASELINE vs MAJORITY KERNELS vs other systems on digits.

For every task, architecture and seed it trains the chosen systems with the
same data, epochs and optimizer, then measures what the paper reports:
test accuracy (mean +/- std over seeds), the train-test generalisation gap,
training time per step relative to BASELINE, and the deployed model's
parameters and latency relative to BASELINE (equal for the collapsed MK
model). It writes `results.json`, `results.md`, learning-curve plots and the
collapsed MK models (`.keras`, `.tflite`).
"""

import dataclasses
import os
import platform
import time
import warnings

import keras
import numpy as np
from tqdm.auto import tqdm

import keras_mk
from examples.common import algorithms
from examples.common import digits
from examples.common import litert
from examples.common import plots
from examples.common import results
from examples.common.callbacks import accuracy_and_loss
from examples.common.callbacks import softmax
from examples.common.measure import inference_latency_ms
from examples.common.models import build_model
from keras_mk import training

GROUP_KEYS = ("task", "architecture")


@dataclasses.dataclass
class ComparisonOptions:
    """What the main job runs (see `examples/main.py --help`)."""

    tasks: tuple = digits.TASKS
    architectures: tuple = ("mlp", "cnn")
    systems: tuple = (
        algorithms.BASELINE,
        algorithms.MAJORITY,
        algorithms.ADV_MAJORITY,
        algorithms.ENSEMBLE,
        algorithms.DISTILLED,
    )
    seeds: int = 3
    training: algorithms.TrainingConfig = dataclasses.field(
        default_factory=algorithms.TrainingConfig
    )
    output: str = "outputs/main"
    max_train: int = None
    max_test: int = None
    export: bool = True
    progress: bool = True


def _fits_per_setting(names, expansion):
    """How many `fit` calls one (task, architecture, seed) costs."""
    fits = 0
    if {algorithms.BASELINE, algorithms.ENSEMBLE, algorithms.DISTILLED} & set(
        names
    ):
        fits += 1
    if {algorithms.ENSEMBLE, algorithms.DISTILLED} & set(names):
        fits += expansion - 1
    for name in (algorithms.MAJORITY, algorithms.ADV_MAJORITY):
        fits += name in names
    fits += algorithms.DISTILLED in names
    return fits


def train_setting(build, task, config, seed, names, progress):
    """Trains the systems `names` for one seed; returns them in that order."""
    trained = {}

    def advance(label):
        progress.set_postfix_str(f"{task.name} {label} seed={seed}")

    needs_baseline = {
        algorithms.BASELINE,
        algorithms.ENSEMBLE,
        algorithms.DISTILLED,
    } & set(names)
    if needs_baseline:
        advance("BASELINE")
        trained[algorithms.BASELINE] = algorithms.train_baseline(
            build, task, config, seed
        )
        progress.update()
    if {algorithms.ENSEMBLE, algorithms.DISTILLED} & set(names):
        advance("ENSEMBLE")
        trained[algorithms.ENSEMBLE] = algorithms.train_ensemble(
            build, task, config, seed, trained[algorithms.BASELINE]
        )
        progress.update(config.expansion - 1)
    if algorithms.DISTILLED in names:
        advance("DISTILLED")
        trained[algorithms.DISTILLED] = algorithms.train_distilled(
            build, task, config, seed, trained[algorithms.ENSEMBLE]
        )
        progress.update()
    if algorithms.MAJORITY in names:
        advance("MAJORITY KERNELS")
        trained[algorithms.MAJORITY] = algorithms.train_majority_kernels(
            build, task, config, seed
        )
        progress.update()
    if algorithms.ADV_MAJORITY in names:
        advance("ADV-MK")
        trained[algorithms.ADV_MAJORITY] = (
            algorithms.train_adversarial_majority_kernels(
                build, task, config, seed
            )
        )
        progress.update()
    return [trained[name] for name in names]


def _curves(system, task, train_labels):
    curve = {
        "train_accuracy": [],
        "train_loss": [],
        "test_accuracy": [],
        "test_loss": [],
    }
    for train_p, test_p in zip(
        system.train_probabilities, system.test_probabilities
    ):
        accuracy, loss = accuracy_and_loss(train_p, train_labels)
        curve["train_accuracy"].append(accuracy)
        curve["train_loss"].append(loss)
        accuracy, loss = accuracy_and_loss(test_p, task.y_test)
        curve["test_accuracy"].append(accuracy)
        curve["test_loss"].append(loss)
    return curve


def predict_probabilities(model, x, outputs_probabilities, batch_size=2048):
    """Class probabilities of `model` on `x`, by direct inference calls.

    Calling the model (instead of `model.predict`) skips tracing a predict
    function for each of the many small models.
    """
    outputs = np.concatenate(
        [
            keras.ops.convert_to_numpy(
                model(x[start : start + batch_size], training=False)
            )
            for start in range(0, len(x), batch_size)
        ]
    )
    return outputs if outputs_probabilities else softmax(outputs)


def _deployed_probabilities(system, x):
    return predict_probabilities(
        system.deployed, x, system.outputs_probabilities
    )


def record_run(system, task, architecture, config, measure_latency):
    """The JSON record of one trained system."""
    train_labels = task.y_train[: config.curve_samples]
    test_p = _deployed_probabilities(system, task.x_test)
    train_p = _deployed_probabilities(system, task.x_train[: len(train_labels)])
    test_accuracy, test_loss = accuracy_and_loss(test_p, task.y_test)
    train_accuracy, train_loss = accuracy_and_loss(train_p, train_labels)
    record = {
        "task": task.name,
        "architecture": architecture,
        "algorithm": system.algorithm,
        "seed": system.seed,
        "test_accuracy": test_accuracy,
        "test_loss": test_loss,
        "train_accuracy": train_accuracy,
        "train_loss": train_loss,
        "seconds_per_step": system.seconds_per_step,
        "training_params": system.training_params,
        "inference_params": system.deployed.count_params(),
        "latency_ms": None,
        "curves": _curves(system, task, train_labels),
    }
    if measure_latency:
        record["latency_ms"] = inference_latency_ms(
            system.deployed, task.x_test[:1]
        )
    mk_model = system.trained_model
    if mk_model is not None and training.mk_layers(mk_model):
        mk_logits = keras.ops.convert_to_numpy(
            mk_model(task.x_test, training=False)
        )
        collapsed = keras.ops.convert_to_numpy(
            system.deployed(task.x_test, training=False)
        )
        record["collapse_max_abs_diff"] = float(
            np.max(np.abs(mk_logits - collapsed))
        )
    return record


def _environment():
    return {
        "backend": keras.backend.backend(),
        "keras": keras.__version__,
        "keras_mk": keras_mk.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        # 1, 5 and 15 minute load averages when the run ends: how much
        # other work shared the CPUs (timings are relative, but noisier).
        "load_average": [round(x, 2) for x in os.getloadavg()],
    }


def _quiet_tensorflow():
    # Many small models each trace their own predict function: expected
    # here, so TensorFlow's retracing warnings are noise.
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        tf.get_logger().setLevel("ERROR")
    warnings.filterwarnings("ignore", message=".*tf.lite.Interpreter.*")


def run_comparison(options):
    """Runs the main job and writes its outputs.

    Args:
        options: a `ComparisonOptions`.

    Returns:
        The results dict written to `results.json`.
    """
    start = time.perf_counter()
    _quiet_tensorflow()
    config = options.training
    names = list(options.systems)
    tasks = [
        digits.load_digits_task(name, options.max_train, options.max_test)
        for name in options.tasks
    ]
    settings = [(t, a) for t in tasks for a in options.architectures]
    total = (
        len(settings)
        * options.seeds
        * _fits_per_setting(names, config.expansion)
    )
    progress = tqdm(
        total=total,
        desc="training",
        unit="fit",
        disable=not options.progress,
        dynamic_ncols=True,
    )
    runs, exports, to_export = [], [], {}
    for task, architecture in settings:

        def build(seed, task=task, architecture=architecture):
            return build_model(
                architecture, task.input_shape, task.num_classes, seed
            )

        for seed in range(options.seeds):
            systems = train_setting(build, task, config, seed, names, progress)
            for system in systems:
                runs.append(
                    record_run(system, task, architecture, config, seed == 0)
                )
                if seed == 0 and system.algorithm == algorithms.MAJORITY:
                    name = f"{task.name}_{architecture}_mk_collapsed"
                    to_export[name] = (system.deployed, task.x_test[:32])
        _plot_setting(runs, task.name, architecture, options.output)
    progress.close()
    if options.export and to_export:
        exports = litert.save_and_export(
            to_export,
            os.path.join(options.output, "models"),
            keras.backend.backend(),
        )
    summary = results.summarize(runs, GROUP_KEYS)
    data = {
        "description": "keras_mk main job: digits comparison",
        "options": {
            "tasks": list(options.tasks),
            "architectures": list(options.architectures),
            "algorithms": names,
            "seeds": options.seeds,
            "max_train": options.max_train,
            "max_test": options.max_test,
            "training": dataclasses.asdict(config),
        },
        "environment": _environment(),
        "data": {
            t.name: {
                "train": len(t.x_train),
                "test": len(t.x_test),
                "label_noise": t.label_noise,
            }
            for t in tasks
        },
        "wall_time_s": time.perf_counter() - start,
        "summary": summary,
        "exports": exports,
        "runs": runs,
    }
    results.write_json(os.path.join(options.output, "results.json"), data)
    _write_markdown(data, options.output)
    return data


def _plot_setting(runs, task, architecture, output):
    curves = {}
    for run in runs:
        if run["task"] != task or run["architecture"] != architecture:
            continue
        curve = curves.setdefault(
            run["algorithm"], {k: [] for k in run["curves"]}
        )
        for key, values in run["curves"].items():
            curve[key].append(values)
    title = f"{task}, {architecture}"
    plots.plot_test_curves(
        curves, os.path.join(output, f"curves_{task}_{architecture}.png"), title
    )
    plots.plot_generalization_gap(
        curves, os.path.join(output, f"gap_{task}_{architecture}.png"), title
    )


def table_columns():
    """The columns of the printed and markdown tables."""
    return [
        ("Task", lambda r: r["task"]),
        ("Model", lambda r: r["architecture"]),
        ("Algorithm", lambda r: r["algorithm"]),
        *results.SUMMARY_COLUMNS,
    ]


def _write_markdown(data, output):
    env = data["environment"]
    options = data["options"]
    training = options["training"]
    lines = [
        "# keras_mk main job: results",
        "",
        f"Measured on this machine: {env['cpu_count']} CPUs "
        f"({env['processor']}, {env['platform']}), Keras {env['keras']} "
        f"with the **{env['backend']}** backend; {options['seeds']} seeds; "
        f"{training['epochs']} epochs, batch {training['batch_size']}, "
        f"{training['optimizer']} lr {training['learning_rate']}, "
        f"expansion e = {training['expansion']}. Wall time "
        f"{data['wall_time_s']:.0f} s.",
        "",
        "Test accuracy: mean ± std over seeds. Train-test gap: train "
        "accuracy (on the possibly noisy training labels, inference mode) "
        "minus test accuracy. Step time, params and latency (batch of 1) "
        "are relative to BASELINE of the same task and model.",
        "",
        results.markdown_table(data["summary"], table_columns()),
        "",
    ]
    if data["exports"]:
        lines += ["## Deployed MK models (collapsed)", ""]
        lines.append(
            results.markdown_table(
                data["exports"],
                [
                    ("Keras", lambda r: os.path.basename(r["keras"])),
                    ("LiteRT", lambda r: os.path.basename(r["tflite"])),
                    ("LiteRT bytes", lambda r: f"{r['tflite_bytes']:,}"),
                    (
                        "max |LiteRT - Keras|",
                        lambda r: f"{r['max_abs_diff_vs_keras']:.2e}",
                    ),
                ],
            )
        )
        lines.append("")
    lines += ["## Plots", ""]
    seen = []
    for row in data["summary"]:
        setting = (row["task"], row["architecture"])
        if setting in seen:
            continue
        seen.append(setting)
        task, arch = setting
        lines += [
            f"![test curves {task} {arch}](curves_{task}_{arch}.png)",
            f"![generalisation gap {task} {arch}](gap_{task}_{arch}.png)",
            "",
        ]
    with open(os.path.join(output, "results.md"), "w") as f:
        f.write("\n".join(lines))

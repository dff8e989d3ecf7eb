"""Training- and inference-step time of MK models against plain ones.

Runs one worker process per backend (`KERAS_BACKEND` must be set before
Keras is imported). Inside a worker every variant of a model (plain, MK with
each expansion, collapsed MK) is built and compiled once, then the variants
take turns: each repetition runs `steps` training steps of every variant in
turn (`model.fit`), so slow phases of a shared machine hit all of them alike.
A callback stamps the end of every step (it makes Keras wait for the step's
results, so asynchronous dispatch cannot hide work); the first step of each
repetition is dropped and the median of the others is reported.

Usage:

    python -m benchmarks.step_time                  # all backends, full size
    python -m benchmarks.step_time --quick          # seconds, for CI
    python -m benchmarks.step_time --backends jax --models mlp --repeats 9

`--runs N` repeats the whole measurement in N fresh worker processes and
reports the median and the spread (min-max) of the N ratios. `--memory`
adds, per model, the training memory of plain and MK (e=3), each measured
in a fresh process: the bytes of the parameters and optimizer state
(exact) and the peak resident memory while `fit` runs, above what the
process held before `fit` (activations, gradients, temporaries).

Prints a table and writes JSON (`--output`, default
`benchmarks/results/step_time.json`). `--report FILE [FILE ...]` measures
nothing: it prints the tables of `docs/performance.md` from results files.
"""

import argparse
import importlib
import json
import os
import shlex
import statistics
import subprocess
import sys
import tempfile
import time

from benchmarks import common
from benchmarks.common import BACKENDS
from benchmarks.common import RESULTS

MODELS = (
    "mlp",
    "cnn",
    "transformer",
    "transformer-tables",
    "resnet50",
    "efficientnetb0",
    "mobilenetv3small",
    "gemma-lora",
)
# The `keras.applications` rows are left out of `--quick` (compiling them
# alone takes minutes).
QUICK_MODELS = ("mlp", "cnn", "transformer")
# The targets for the training-step ratio MK / plain at e = 3.
TARGETS = {
    "mlp": 2.0,
    "cnn": 1.10,
    "transformer": 1.10,
    "transformer-tables": 1.15,
    "resnet50": 1.15,
    "efficientnetb0": 1.15,
    "mobilenetv3small": 1.15,
    "gemma-lora": 1.10,
}
TARGET_EXPANSION = 3
# Where MK's inherent floor (the `inherent` variant: the copies, their mean
# and the optimizer on e times the kernels, no sampling) is itself above a
# row's target, no sampling work can meet it; what MK adds above the floor
# is then judged against this margin (the PyTorch targets: +0.30x
# for A3, +0.10x else).
FLOOR_MARGINS = {"mlp": 0.30}
FLOOR_MARGIN = 0.10
# The backends whose every row is judged by what MK adds above its floor:
# Keras's TensorFlow and PyTorch optimizers on e times the kernels put the
# floor itself near or above the absolute targets (lowering it is
# Keras's work). JAX keeps the absolute targets, which it meets.
FLOOR_BACKENDS = ("tensorflow", "torch")
UNIFORM_LABEL = f"mk_e{TARGET_EXPANSION}_uniform"
# `probability_sharing` modes measured beside the exact (per-element) MK.
SHARINGS = ("unit", "layer")
SHARING_LABELS = {s: f"mk_e{TARGET_EXPANSION}_{s}" for s in SHARINGS}
MEMORY_VARIANTS = ("plain", f"mk_e{TARGET_EXPANSION}")
DEFAULT_OUTPUT = os.path.join(RESULTS, "step_time.json")


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--backends", default=",".join(BACKENDS))
    parser.add_argument(
        "--models", default=None, help=f"default {','.join(MODELS)}"
    )
    parser.add_argument(
        "--expansions", default=None, help="default 2,3,4 (3 with --quick)"
    )
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument(
        "--runs",
        type=int,
        default=1,
        help="fresh worker processes per backend; the table shows the "
        "median and the min-max spread of their ratios.",
    )
    parser.add_argument(
        "--memory",
        action="store_true",
        help="also measure training memory (plain and MK e=3), each "
        "variant in a fresh process.",
    )
    parser.add_argument(
        "--optimizer",
        default=None,
        choices=("adam", "sgd"),
        help="every row with Adam or with SGD with momentum; default: each "
        "row's own (SGD with momentum for ResNet50, Adam else).",
    )
    parser.add_argument(
        "--jit-compile",
        default="auto",
        help="`auto`, `true` or `false`, passed to `model.compile`.",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="tiny models, one repetition: checks that everything runs.",
    )
    parser.add_argument(
        "--memory-only",
        action="store_true",
        help="measure memory only (no timing): memory needs no quiet "
        "machine, timing does.",
    )
    parser.add_argument("--output", default=DEFAULT_OUTPUT)
    parser.add_argument(
        "--merge",
        action="store_true",
        help="merge the measured rows into --output (the docs' per-backend "
        "files) instead of overwriting it",
    )
    parser.add_argument(
        "--report",
        nargs="+",
        metavar="FILE",
        help="measure nothing: print the docs' tables (all backends in one) "
        "from these results files.",
    )
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--worker-output", help=argparse.SUPPRESS)
    parser.add_argument("--memory-variant", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.models is None:
        args.models = ",".join(QUICK_MODELS if args.quick else MODELS)
    args.backends = common.choices(parser, "backend", args.backends, BACKENDS)
    args.models = common.choices(parser, "model", args.models, MODELS)
    if args.expansions is None:
        args.expansions = "3" if args.quick else "2,3,4"
    args.expansions = [int(e) for e in args.expansions.split(",") if e]
    args.memory = args.memory or args.memory_only
    if args.runs < 1:
        parser.error(f"--runs must be >= 1. Received: --runs={args.runs}")
    if args.quick:
        args.repeats = min(args.repeats, 1)
        args.steps = min(args.steps, 3)
        args.runs = 1
        if args.output == DEFAULT_OUTPUT:
            args.output = None
    args.jit_compile = {"true": True, "false": False}.get(
        args.jit_compile.lower(), args.jit_compile
    )
    return args


# -- Worker (one backend) ---------------------------------------------------


def _timer_callback():
    import keras

    class StepTimer(keras.callbacks.Callback):
        """Stamps the end of every train / predict step."""

        def __init__(self):
            super().__init__()
            self.stamps = []

        def on_train_batch_begin(self, batch, logs=None):
            if not self.stamps:
                self.stamps.append(time.perf_counter())

        def on_train_batch_end(self, batch, logs=None):
            self.stamps.append(time.perf_counter())

        def on_predict_batch_begin(self, batch, logs=None):
            self.on_train_batch_begin(batch, logs)

        def on_predict_batch_end(self, batch, logs=None):
            self.on_train_batch_end(batch, logs)

        def step_times(self):
            # Drop the first step: it pays for the start of the epoch.
            gaps = [b - a for a, b in zip(self.stamps, self.stamps[1:])]
            return gaps[1:] if len(gaps) > 1 else gaps

    return StepTimer


def _repeat_batch(x, times):
    import numpy as np

    if isinstance(x, dict):
        return {k: _repeat_batch(v, times) for k, v in x.items()}
    return np.concatenate([x] * times, axis=0)


def _compile(model, name, jit_compile, optimizer=None):
    import keras

    from benchmarks import models

    model.compile(
        optimizer=models.optimizer(name, optimizer),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        jit_compile=jit_compile,
    )


def _variants(name, expansions, size, jit_compile, optimizer=None):
    """Compiled variants of model `name`: (label, kind, model)."""
    import keras

    from benchmarks import models

    keras.utils.set_random_seed(0)
    plain, x, y, batch = models.build(name, size)
    _, arguments = models.conversion_of(name)

    def source():
        if name not in models.LORA_ROWS:
            return plain
        keras.utils.set_random_seed(0)
        return models.build(name, size)[0]

    found = [("plain", "train", plain)]
    last_mk = None
    for e in expansions:
        last_mk = models.expand(source(), e, seed=e, **arguments)
        found.append((f"mk_e{e}", "train", last_mk))
    if TARGET_EXPANSION in expansions:
        # What MK costs without sampling or mixing: the copies and the
        # optimizer on e times the kernels (inherent), the mean as kernel.
        uniform = models.expand(
            source(), TARGET_EXPANSION, probabilities="uniform", **arguments
        )
        found.append((UNIFORM_LABEL, "train", uniform))
        # The options that trade fidelity for speed.
        for sharing, label in SHARING_LABELS.items():
            shared = models.expand(
                source(),
                TARGET_EXPANSION,
                seed=1,
                probability_sharing=sharing,
                **arguments,
            )
            found.append((label, "train", shared))
    for _, _, model in found:
        _compile(model, name, jit_compile, optimizer)
    inference = [("plain", "predict", plain)]
    if last_mk is not None:
        inference.append(("collapsed", "predict", models.collapse(last_mk)))
    return found + inference, x, y, batch


def _count_params(model):
    return int(sum(int(v.numpy().size) for v in model.weights))


def run_worker(args):
    import keras

    backend = keras.backend.backend()
    step_timer = _timer_callback()
    size = "quick" if args.quick else "full"
    results = {}
    for name in args.models:
        variants, x, y, batch = _variants(
            name, args.expansions, size, args.jit_compile, args.optimizer
        )
        xs = _repeat_batch(x, args.steps + 1)
        ys = _repeat_batch(y, args.steps + 1)
        times = {(label, kind): [] for label, kind, _ in variants}

        def run(kind, model, timer, xs=xs, ys=ys, batch=batch):
            if kind == "train":
                model.fit(
                    xs,
                    ys,
                    batch_size=batch,
                    epochs=1,
                    shuffle=False,
                    verbose=0,
                    callbacks=[timer],
                )
            else:
                model.predict(
                    xs, batch_size=batch, verbose=0, callbacks=[timer]
                )

        # Warm-up: compile every function once.
        for _, kind, model in variants:
            run(kind, model, step_timer())
        for _ in range(args.repeats):
            for label, kind, model in variants:
                timer = step_timer()
                run(kind, model, timer)
                times[(label, kind)].extend(timer.step_times())
        entry = {"batch": batch, "train": {}, "predict": {}}
        for (label, kind), values in times.items():
            model = next(m for lb, k, m in variants if (lb, k) == (label, kind))
            entry[kind][label] = {
                "median_ms": 1e3 * statistics.median(values),
                "samples": len(values),
                "params": _count_params(model),
            }
        results[name] = entry
        keras.backend.clear_session()
    versions = {
        "keras": keras.__version__,
        backend: importlib.import_module(backend).__version__,
    }
    with open(args.worker_output, "w") as f:
        json.dump(
            {"backend": backend, "versions": versions, "models": results}, f
        )


def _resident_bytes():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def run_memory_worker(args):
    """Training memory of one variant of one model, in this fresh process.

    `state_bytes`: parameters and optimizer state (exact). `peak_bytes`:
    the process's peak resident memory (Linux) while it builds, compiles
    and trains the model, above its resident memory after importing the
    framework: parameters, optimizer state, gradients, activations,
    temporaries and compilation, as a user's process sees them.
    """
    import resource

    import keras

    from benchmarks import models

    (name,) = args.models
    size = "quick" if args.quick else "full"
    base = _resident_bytes()
    keras.utils.set_random_seed(0)
    model, x, y, batch = models.build(name, size)
    if args.memory_variant != "plain":
        _, arguments = models.conversion_of(name)
        model = models.expand(
            model, TARGET_EXPANSION, seed=TARGET_EXPANSION, **arguments
        )
    _compile(model, name, args.jit_compile, args.optimizer)
    model.fit(
        _repeat_batch(x, args.steps),
        _repeat_batch(y, args.steps),
        batch_size=batch,
        epochs=1,
        shuffle=False,
        verbose=0,
    )
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    state = list(model.weights) + list(model.optimizer.variables)
    with open(args.worker_output, "w") as f:
        json.dump(
            {
                "state_bytes": sum(
                    int(keras.ops.convert_to_numpy(v).nbytes) for v in state
                ),
                "peak_bytes": peak - base,
            },
            f,
        )


# -- Driver ----------------------------------------------------------------


def _worker_command(args, backend, output, models=None, memory_variant=None):
    command = [
        sys.executable,
        "-m",
        "benchmarks.step_time",
        "--worker",
        "--worker-output",
        output,
        "--backends",
        backend,
        "--models",
        ",".join(models or args.models),
        "--expansions",
        ",".join(str(e) for e in args.expansions),
        "--repeats",
        str(args.repeats),
        "--steps",
        str(args.steps),
        "--jit-compile",
        str(args.jit_compile).lower(),
    ]
    if args.optimizer:
        command += ["--optimizer", args.optimizer]
    if args.quick:
        command.append("--quick")
    if memory_variant:
        command += ["--memory-variant", memory_variant]
    return command


def _run_worker_process(command, backend):
    """Runs one worker; returns its JSON result, or None (and says why)."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    with tempfile.TemporaryDirectory() as tmp:
        output = os.path.join(tmp, "result.json")
        command = [output if c == "{output}" else c for c in command]
        env = dict(os.environ, KERAS_BACKEND=backend)
        env.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
        env["PYTHONPATH"] = os.pathsep.join(
            [root] + [p for p in [env.get("PYTHONPATH")] if p]
        )
        proc = subprocess.run(
            command, env=env, cwd=root, capture_output=True, text=True
        )
        if proc.returncode != 0 or not os.path.exists(output):
            sys.stderr.write(
                f"{backend} worker failed:\n{proc.stderr[-4000:]}\n"
            )
            return None
        with open(output) as f:
            return json.load(f)


def combine_runs(runs):
    """One backend result from the results of `--runs` worker processes.

    Per variant: `median_ms` is the median of the runs' medians, `runs_ms`
    the runs' medians; ratios are taken within each run (variants
    interleaved) and summarised by their median and min-max.
    """
    combined = {"versions": runs[0]["versions"], "models": {}}
    for name, first in runs[0]["models"].items():
        entry = {"batch": first["batch"], "train": {}, "predict": {}}
        for kind in ("train", "predict"):
            plain_ms = [
                r["models"][name][kind]["plain"]["median_ms"] for r in runs
            ]
            for label, row in first[kind].items():
                ms = [r["models"][name][kind][label]["median_ms"] for r in runs]
                ratios = [m / p for m, p in zip(ms, plain_ms)]
                entry[kind][label] = {
                    "median_ms": statistics.median(ms),
                    "runs_ms": ms,
                    "samples": sum(
                        r["models"][name][kind][label]["samples"] for r in runs
                    ),
                    "params": row["params"],
                    "ratio": statistics.median(ratios),
                    "ratio_min": min(ratios),
                    "ratio_max": max(ratios),
                }
        mk = entry["train"].get(f"mk_e{TARGET_EXPANSION}")
        entry["target_ratio"] = TARGETS[name]
        entry["target_met"] = (
            None if mk is None else mk["ratio"] <= TARGETS[name]
        )
        entry.update(verdicts(name, entry))
        combined["models"][name] = entry
    return combined


def verdict(values, limit):
    """The verdict of runs' `values` against `limit`.

    "met" when every run is within `limit`, "missed" when none is,
    "inconclusive" when the runs fall on both sides of it.
    """
    if max(values) <= limit:
        return "met"
    if min(values) > limit:
        return "missed"
    return "inconclusive"


def _run_ratios(entry, label):
    """A variant's training-step ratio to plain, per run (`runs_ms`)."""
    train = entry.get("train", {})
    if label not in train or "runs_ms" not in train[label]:
        return None
    return [
        ms / plain
        for ms, plain in zip(train[label]["runs_ms"], train["plain"]["runs_ms"])
    ]


def verdicts(name, entry):
    """The target's verdict over the runs, and MK's part above its floor.

    From a combined entry (`combine_runs`; older results files too):
    `verdict`, the MK e=3 ratio of every run against the target;
    `floor_above_target`, whether every run's inherent ratio is above the
    target (no sampling work can meet it); `above_floor`, MK's ratio minus
    the inherent one per run (median, lowest, highest), judged against
    `floor_margin` in `floor_verdict`.
    """
    mk = _run_ratios(entry, f"mk_e{TARGET_EXPANSION}")
    if mk is None:
        return {}
    found = {"verdict": verdict(mk, TARGETS[name])}
    floor = _run_ratios(entry, UNIFORM_LABEL)
    if floor is None:
        return found
    above = [m - f for m, f in zip(mk, floor)]
    margin = FLOOR_MARGINS.get(name, FLOOR_MARGIN)
    found.update(
        floor_above_target=min(floor) > TARGETS[name],
        above_floor={
            "median": statistics.median(above),
            "min": min(above),
            "max": max(above),
        },
        floor_margin=margin,
        floor_verdict=verdict(above, margin),
    )
    return found


def _ratio_cell(row):
    if row is None:
        return "-"
    cell = f"{row['median_ms']:.1f} ({row['ratio']:.2f}x"
    if row["ratio_max"] > row["ratio_min"]:
        cell += f", {row['ratio_min']:.2f}-{row['ratio_max']:.2f}"
    return cell + ")"


def target_cell(name, backend=None):
    """The row's target: an absolute ratio, or the floor plus its margin
    on the `FLOOR_BACKENDS`."""
    if backend in FLOOR_BACKENDS:
        return f"floor + {FLOOR_MARGINS.get(name, FLOOR_MARGIN):.2f}x"
    return f"<= {TARGETS[name]:.2f}x"


def _verdict_cells(name, entry, backend=None):
    """The row's verdict over the runs and its "MK - inherent" cell.

    Results of any format: the verdicts are derived from the runs
    (`verdicts`); a file without them falls back to `target_met`. On the
    `FLOOR_BACKENDS` the verdict is MK's part above its floor against the
    margin.
    """
    found = verdicts(name, entry)
    if backend in FLOOR_BACKENDS and "above_floor" in found:
        above = found["above_floor"]
        floor_cell = f"{above['median']:+.2f}x"
        if above["max"] > above["min"]:
            floor_cell += f" [{above['min']:+.2f}, {above['max']:+.2f}]"
        return found["floor_verdict"], floor_cell
    verdict_cell = found.get("verdict")
    if verdict_cell is None:
        met = entry.get("target_met")
        verdict_cell = "-" if met is None else ("met" if met else "missed")
    above = found.get("above_floor")
    if above is None:
        return verdict_cell, "-"
    floor_cell = f"{above['median']:+.2f}x"
    if above["max"] > above["min"]:
        floor_cell += f" [{above['min']:+.2f}, {above['max']:+.2f}]"
    if found["floor_above_target"]:
        # The target is out of reach: judged by the margin instead.
        floor_cell += (
            f" (floor above target; <= +{found['floor_margin']:.2f}x: "
            f"{found['floor_verdict']})"
        )
    return verdict_cell, floor_cell


def _mb(n):
    return f"{n / 2**20:.0f}"


def _memory_cells(memory):
    """Plain and MK state (MiB, 0.1) and peak resident memory, and ratios."""
    p, k = (memory[variant] for variant in MEMORY_VARIANTS)
    return (
        f"{p['state_bytes'] / 2**20:.1f} | {k['state_bytes'] / 2**20:.1f} | "
        f"{k['state_bytes'] / p['state_bytes']:.2f}x | "
        f"{_mb(p['peak_bytes'])} | {_mb(k['peak_bytes'])} | "
        f"{k['peak_bytes'] / max(p['peak_bytes'], 1):.2f}x"
    )


def format_table(report):
    """Markdown tables: training step (with spread), memory, inference."""
    lines = []
    expansions = report["expansions"]
    for backend, result in report["backends"].items():
        lines.append(f"\n{backend} ({result.get('versions', {})})\n")
        header = ["model", "plain ms"] + [f"MK e={e}" for e in expansions]
        header += [f"inherent (uniform p, e={TARGET_EXPANSION})"]
        header += [f"sharing={s}" for s in SHARINGS]
        header += [f"target (e={TARGET_EXPANSION})", "verdict"]
        header += ["MK - inherent"]
        timed = any("train" in e for e in result["models"].values())
        if timed:
            lines.append("| " + " | ".join(header) + " |")
            lines.append("|" + "---|" * len(header))
        for name, entry in result["models"].items():
            if "train" not in entry:
                continue
            train = entry["train"]
            row = [name, f"{train['plain']['median_ms']:.1f}"]
            row += [_ratio_cell(train.get(f"mk_e{e}")) for e in expansions]
            row.append(_ratio_cell(train.get(UNIFORM_LABEL)))
            row += [
                _ratio_cell(train.get(lb)) for lb in SHARING_LABELS.values()
            ]
            row.append(target_cell(name, backend))
            row += list(_verdict_cells(name, entry, backend))
            lines.append("| " + " | ".join(row) + " |")
        memory = {
            n: e["memory"] for n, e in result["models"].items() if "memory" in e
        }
        if memory:
            lines.append(
                "\n| model | params + optimizer MB, plain | MK | ratio "
                "| peak resident MB, plain | MK | ratio |"
            )
            lines.append("|---|---|---|---|---|---|---|")
            for name, m in memory.items():
                lines.append(f"| {name} | {_memory_cells(m)} |")
        lines += _breakdown(result)
        if not timed:
            continue
        lines.append("\n| model | infer plain ms | collapsed |")
        lines.append("|---|---|---|")
        for name, entry in result["models"].items():
            if "predict" not in entry:
                continue
            pred = entry["predict"]
            lines.append(
                f"| {name} | {pred['plain']['median_ms']:.2f} | "
                f"{_ratio_cell(pred.get('collapsed'))} |"
            )
    return "\n".join(lines)


def _time_split(entry):
    """(plain, inherent, MK) median ms of a model's training step, or None."""
    train = entry.get("train", {})
    labels = ("plain", UNIFORM_LABEL, f"mk_e{TARGET_EXPANSION}")
    if not all(label in train for label in labels):
        return None
    return tuple(train[label]["median_ms"] for label in labels)


def _breakdown(result):
    """Where MK's extra time goes: copies + optimizer, then sampling."""
    rows = [
        "\n| model | plain ms | + copies, mean, optimizer on e copies "
        "(uniform p) | + sampling p and mixing | MK ms |",
        "|---|---|---|---|---|",
    ]
    for name, entry in result["models"].items():
        split = _time_split(entry)
        if split is None:
            continue
        plain, uniform, mk = split
        rows.append(
            f"| {name} | {plain:.1f} | {uniform - plain:+.1f} | "
            f"{mk - uniform:+.1f} | {mk:.1f} |"
        )
    return rows if len(rows) > 2 else []


BACKEND_NAMES = {"tensorflow": "TensorFlow", "jax": "JAX", "torch": "PyTorch"}
MODEL_NAMES = {
    "mlp": "A3 MLP",
    "cnn": "CNN",
    "transformer": "T5",
    "transformer-tables": "T5, tables simulated",
    "resnet50": "ResNet50",
    "efficientnetb0": "EfficientNetB0",
    "mobilenetv3small": "MobileNetV3Small",
    "gemma-lora": "Gemma, LoRA adapters",
}


def _docs_cell(row, bold=False):
    if row is None:
        return "-"
    ratio = f"{row['ratio']:.2f}x"
    # Results of one run (or of an older format) have no spread.
    if row.get("ratio_max", 0) > row.get("ratio_min", 0):
        ratio += f" [{row['ratio_min']:.2f}-{row['ratio_max']:.2f}]"
    ms = f"{row['median_ms']:.1f}"
    return f"**{ms} ({ratio})**" if bold else f"{ms} ({ratio})"


def _entries(reports):
    for report in reports:
        for backend, result in report["backends"].items():
            for name, entry in result["models"].items():
                yield backend, name, entry


def format_docs(reports):
    """The tables of `docs/performance.md`, every backend in one table."""
    mk = f"mk_e{TARGET_EXPANSION}"
    lines = [
        "| backend | model | plain ms | **MK e=3** | inherent | unit | layer "
        "| target | verdict | MK - inherent |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    breakdown = [
        "| backend | model | plain ms | + copies, mean, optimizer "
        "| + sampling and mixing | MK ms | ratio |",
        "|---|---|---|---|---|---|---|",
    ]
    memory = [
        "| backend | model | params + optimizer MiB: plain | MK | ratio "
        "| peak resident MiB: plain | MK | ratio |",
        "|---|---|---|---|---|---|---|---|",
    ]
    inference = []
    for raw_backend, key, entry in _entries(reports):
        backend = BACKEND_NAMES[raw_backend]
        model = MODEL_NAMES[key]
        train = entry.get("train", {})
        if mk in train:
            lines.append(
                f"| {backend} | {model} | {train['plain']['median_ms']:.1f} "
                f"| {_docs_cell(train[mk], bold=True)} | "
                + " | ".join(
                    _docs_cell(train.get(label))
                    for label in (UNIFORM_LABEL, *SHARING_LABELS.values())
                )
                + f" | {target_cell(key, raw_backend)} | "
                + " | ".join(_verdict_cells(key, entry, raw_backend))
                + " |"
            )
        split = _time_split(entry)
        if split is not None:
            plain, uniform, total = split
            breakdown.append(
                f"| {backend} | {model} | {plain:.1f} | "
                f"{uniform - plain:+.1f} ({(uniform - plain) / plain:.2f}x) | "
                f"{total - uniform:+.1f} ({(total - uniform) / plain:.2f}x) | "
                f"{total:.1f} | {total / plain:.2f}x |"
            )
        if "memory" in entry:
            memory.append(
                f"| {backend} | {model} | {_memory_cells(entry['memory'])} |"
            )
        collapsed = entry.get("predict", {}).get("collapsed")
        if collapsed is not None:
            inference.append(f"{backend} {model} {collapsed['ratio']:.2f}x")
    out = []
    for table in (lines, breakdown, memory):
        if len(table) > 2:
            out += table + [""]
    if inference:
        out.append("Collapsed inference / plain: " + ", ".join(inference))
    return "\n".join(out)


def run_driver(args):
    report = {
        "machine": common.machine(),
        "quick": args.quick,
        "repeats": args.repeats,
        "steps": args.steps,
        "runs": args.runs,
        "expansions": args.expansions,
        "jit_compile": args.jit_compile,
        "optimizer": args.optimizer or "each row's own",
        "targets": {"expansion": TARGET_EXPANSION, "ratio": TARGETS},
        "backends": {},
    }
    failed = []
    for backend in args.backends:
        start = time.perf_counter()
        runs = []
        for _ in range(0 if args.memory_only else args.runs):
            result = _run_worker_process(
                _worker_command(args, backend, "{output}"), backend
            )
            if result is None:
                break
            runs.append(result)
        if runs and len(runs) < args.runs:
            failed.append(backend)
            continue
        result = combine_runs(runs) if runs else {"models": {}}
        if args.memory:
            for name in args.models:
                memory = {}
                for variant in MEMORY_VARIANTS:
                    command = _worker_command(
                        args, backend, "{output}", [name], variant
                    )
                    memory[variant] = _run_worker_process(command, backend)
                if None in memory.values():
                    failed.append(backend)
                    continue
                result["models"].setdefault(name, {})["memory"] = memory
        result["wall_s"] = time.perf_counter() - start
        for entry in result["models"].values():
            entry["measured"] = _measured(args, report["machine"])
        report["backends"][backend] = result
        # Written after every backend: a long run keeps what it measured.
        _write(report, args.output, args.merge)
    print(f"machine: {report['machine']['cpu']}, {os.cpu_count()} CPUs")
    print(format_table(report))
    if args.output:
        print(f"\nwrote {args.output}")
    return 1 if failed else 0


def _measured(args, machine):
    """When, where and by what command a row was measured (the docs show
    it beside the tables)."""
    return {
        "date": time.strftime("%Y-%m-%d"),
        "machine": machine,
        "command": "python -m benchmarks.step_time "
        + " ".join(shlex.quote(a) for a in sys.argv[1:]),
        "runs": args.runs,
        "repeats": args.repeats,
        "steps": args.steps,
    }


def _write(report, output, merge=False):
    """Writes `report` to `output`; with `merge`, into the report already
    there: each measured model's entry replaces (or, for memory, extends)
    that model's, the other models are kept."""
    if not output:
        return
    if merge and os.path.exists(output):
        with open(output) as f:
            merged = json.load(f)
        for backend, result in report["backends"].items():
            kept = merged["backends"].setdefault(backend, {"models": {}})
            for name, entry in result["models"].items():
                old = kept["models"].get(name, {})
                if set(entry) <= {"memory", "measured"}:
                    entry = {**old, **entry}
                kept["models"][name] = entry
        report = merged
    os.makedirs(os.path.dirname(os.path.abspath(output)), exist_ok=True)
    with open(output, "w") as f:
        json.dump(report, f, indent=1)
        f.write("\n")


def main(argv=None):
    args = parse_args(argv)
    if args.report:
        reports = []
        for path in args.report:
            with open(path) as f:
                reports.append(json.load(f))
        print(format_docs(reports))
        return 0
    if args.worker and args.memory_variant:
        run_memory_worker(args)
        return 0
    if args.worker:
        run_worker(args)
        return 0
    return run_driver(args)


if __name__ == "__main__":
    sys.exit(main())

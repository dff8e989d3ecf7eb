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

Prints a table and writes JSON (`--output`, default
`benchmarks/results/step_time.json`).
"""

import argparse
import importlib
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time

BACKENDS = ("tensorflow", "jax", "torch")
MODELS = ("mlp", "cnn", "transformer")
# The targets for the training-step ratio MK / plain at e = 3.
TARGETS = {"mlp": 2.0, "cnn": 1.10, "transformer": 1.10}
TARGET_EXPANSION = 3
UNIFORM_LABEL = f"mk_e{TARGET_EXPANSION}_uniform"
DEFAULT_OUTPUT = os.path.join(
    os.path.dirname(os.path.abspath(__file__)), "results", "step_time.json"
)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--backends", default=",".join(BACKENDS))
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument(
        "--expansions", default=None, help="default 2,3,4 (3 with --quick)"
    )
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--steps", type=int, default=8)
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
    parser.add_argument("--output", default=DEFAULT_OUTPUT)
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--worker-output", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    args.backends = [b for b in args.backends.split(",") if b]
    args.models = [m for m in args.models.split(",") if m]
    if args.expansions is None:
        args.expansions = "3" if args.quick else "2,3,4"
    args.expansions = [int(e) for e in args.expansions.split(",") if e]
    for backend in args.backends:
        if backend not in BACKENDS:
            parser.error(f"unknown backend {backend!r}; choose from {BACKENDS}")
    for model in args.models:
        if model not in MODELS:
            parser.error(f"unknown model {model!r}; choose from {MODELS}")
    if args.quick:
        args.repeats = min(args.repeats, 1)
        args.steps = min(args.steps, 3)
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


def _variants(name, expansions, size, jit_compile):
    """Compiled variants of model `name`: (label, kind, model)."""
    import keras

    from benchmarks import models

    keras.utils.set_random_seed(0)
    plain, x, y, batch = models.build(name, size)
    found = [("plain", "train", plain)]
    last_mk = None
    for e in expansions:
        last_mk = models.expand(plain, e, seed=e)
        found.append((f"mk_e{e}", "train", last_mk))
    if TARGET_EXPANSION in expansions:
        # What MK costs without sampling or mixing: the copies and the
        # optimizer on e times the kernels (inherent), the mean as kernel.
        found.append(
            (
                UNIFORM_LABEL,
                "train",
                models.expand(plain, TARGET_EXPANSION, probabilities="uniform"),
            )
        )
    for _, _, model in found:
        model.compile(
            optimizer=keras.optimizers.Adam(1e-3),
            loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
            jit_compile=jit_compile,
        )
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
            name, args.expansions, size, args.jit_compile
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


# -- Driver ----------------------------------------------------------------


def _machine():
    return {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
    }


def _worker_command(args, backend, output):
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
        ",".join(args.models),
        "--expansions",
        ",".join(str(e) for e in args.expansions),
        "--repeats",
        str(args.repeats),
        "--steps",
        str(args.steps),
        "--jit-compile",
        str(args.jit_compile).lower(),
    ]
    if args.quick:
        command.append("--quick")
    return command


def add_ratios(report):
    """Adds MK / plain (train) and collapsed / plain (predict) ratios."""
    for backend_result in report["backends"].values():
        for name, entry in backend_result["models"].items():
            plain = entry["train"]["plain"]["median_ms"]
            for row in entry["train"].values():
                row["ratio"] = row["median_ms"] / plain
            target = TARGETS[name]
            mk = entry["train"].get(f"mk_e{TARGET_EXPANSION}")
            entry["target_ratio"] = target
            entry["target_met"] = None if mk is None else mk["ratio"] <= target
            plain_p = entry["predict"]["plain"]["median_ms"]
            for row in entry["predict"].values():
                row["ratio"] = row["median_ms"] / plain_p
    return report


def format_table(report):
    lines = []
    for backend, result in report["backends"].items():
        lines.append(f"\n{backend} ({result.get('versions', {})})\n")
        expansions = report["expansions"]
        header = ["model", "plain ms"] + [f"MK e={e}" for e in expansions]
        header.append(f"of which inherent (uniform p, e={TARGET_EXPANSION})")
        header += [
            f"target (e={TARGET_EXPANSION})",
            "met",
            "infer plain ms",
            "collapsed",
        ]
        lines.append("| " + " | ".join(header) + " |")
        lines.append("|" + "---|" * len(header))
        for name, entry in result["models"].items():
            train = entry["train"]
            row = [name, f"{train['plain']['median_ms']:.1f}"]
            for e in expansions:
                r = train.get(f"mk_e{e}")
                row.append(
                    "-"
                    if r is None
                    else f"{r['median_ms']:.1f} ({r['ratio']:.2f}x)"
                )
            r = train.get(UNIFORM_LABEL)
            row.append(
                "-"
                if r is None
                else f"{r['median_ms']:.1f} ({r['ratio']:.2f}x)"
            )
            row.append(f"<= {entry['target_ratio']:.2f}x")
            met = entry["target_met"]
            row.append("-" if met is None else ("yes" if met else "no"))
            pred = entry["predict"]
            row.append(f"{pred['plain']['median_ms']:.2f}")
            c = pred.get("collapsed")
            row.append(
                "-"
                if c is None
                else f"{c['median_ms']:.2f} ({c['ratio']:.2f}x)"
            )
            lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


def run_driver(args):
    report = {
        "machine": _machine(),
        "quick": args.quick,
        "repeats": args.repeats,
        "steps": args.steps,
        "expansions": args.expansions,
        "jit_compile": args.jit_compile,
        "targets": {"expansion": TARGET_EXPANSION, "ratio": TARGETS},
        "backends": {},
    }
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    failed = []
    for backend in args.backends:
        with tempfile.TemporaryDirectory() as tmp:
            output = os.path.join(tmp, "result.json")
            env = dict(os.environ, KERAS_BACKEND=backend)
            env.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
            env["PYTHONPATH"] = os.pathsep.join(
                [root] + [p for p in [env.get("PYTHONPATH")] if p]
            )
            start = time.perf_counter()
            proc = subprocess.run(
                _worker_command(args, backend, output),
                env=env,
                cwd=root,
                capture_output=True,
                text=True,
            )
            if proc.returncode != 0 or not os.path.exists(output):
                failed.append(backend)
                sys.stderr.write(
                    f"{backend} worker failed:\n{proc.stderr[-4000:]}\n"
                )
                continue
            with open(output) as f:
                result = json.load(f)
        result["wall_s"] = time.perf_counter() - start
        report["backends"][backend] = result
        # Written after every backend: a long run keeps what it measured.
        _write(add_ratios(report), args.output)
    print(format_table(add_ratios(report)))
    if args.output:
        print(f"\nwrote {args.output}")
    return 1 if failed else 0


def _write(report, output):
    if not output:
        return
    os.makedirs(os.path.dirname(os.path.abspath(output)), exist_ok=True)
    with open(output, "w") as f:
        json.dump(report, f, indent=2)


def main(argv=None):
    args = parse_args(argv)
    if args.worker:
        run_worker(args)
        return 0
    return run_driver(args)


if __name__ == "__main__":
    sys.exit(main())

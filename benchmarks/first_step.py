"""Time to first step: what a user waits for after converting a model.

Each measurement is a fresh process. The clock starts once Keras and
keras_mk are imported, and stops at the end of the first training step:
building the plain model, converting it (`keras_mk.clone_model`, e = 3) for
the MK variant, compiling (`jit_compile="auto"`), tracing and running one
`model.fit` step. The plain and MK processes alternate (plain, MK, plain,
MK, ...), so a slow phase of the machine hits both; the table shows each
variant's fastest run and the ratio MK / plain of the fastest runs
(compilation dominates, and the fastest run is the least disturbed). The
verdict is per round, MK against the plain run beside it: met when every
round meets the target, missed when none does, inconclusive otherwise
(fastest against fastest mixes the machine's phases: on the VM of
2026-12-02 plain's first step moved by up to 10 s within an hour).
The second step is timed too (the cells' "2nd step", where recorded): a
second `model.fit` of one batch, as a notebook user runs it. On PyTorch it
is the first to draw a model's small kernels together
(`keras_mk.sampling.torch_grouping`), which compiles one more loop.
(`train_on_batch` would not do: on JAX and TensorFlow it traces and
compiles a train function of its own.)

Usage:

    python -m benchmarks.first_step                 # all backends, models
    python -m benchmarks.first_step --backends jax --models efficientnetb0
    python -m benchmarks.first_step --report        # the tables, from files
    python -m benchmarks.first_step --backends tensorflow --build-optimizer

`--build-optimizer` calls Keras's `model.optimizer.build(
model.trainable_variables)` after `compile`, in both variants: on
TensorFlow, an optimizer built inside the first trace creates variables
there, and `tf.function` then traces the train step a second time (the
first graph is discarded); built before, the step is traced once.

`--floor` also times the *inherent* variant (the copies, their mean as
the kernel and the optimizer on `e` times the kernels; no draw, no mix:
`probabilities="uniform"`), as `benchmarks.step_time` does for the step:
what MK's first step costs before any sampling. The table shows it as
"floor".

`--fresh-compile-cache` gives every process an empty TorchInductor cache
(`TORCHINDUCTOR_CACHE_DIR`): the first run on a new machine, where PyTorch
compiles MK's draw-and-mix loops from scratch (C++). Without it, processes
share the user's cache, as a user's later processes do.

Writes `benchmarks/results/first_step_<backend>.json` (or
`first_step_built_optimizer_<backend>.json`, `first_step_fresh_cache_
<backend>.json`); `--report` prints the tables
of `docs/performance.md` from them. Not part of `--quick` runs:
each process compiles a whole model (up to minutes on a CPU).
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

from benchmarks import common
from benchmarks.common import BACKENDS

MODELS = ("efficientnetb0", "mobilenetv3small", "resnet50", "transformer")
VARIANTS = ("plain", "mk")
# With `--floor`: MK without sampling (the copies and their mean).
FLOOR = "inherent"
EXPANSION = 3
# The target: MK's first step at most 1.3x plain's, or at most 5 s more;
# on TensorFlow at most 2x or 15 s more, whichever is looser (its tracing
# and Grappler grow with the train step's graph, and the copies stay one
# variable each: what users hold does not change to shorten it).
TARGET_RATIO, TARGET_SECONDS = 1.3, 5.0
TARGETS = {"tensorflow": (2.0, 15.0)}


def target(backend=None):
    """`(ratio, seconds)`: the first-step target of `backend`."""
    return TARGETS.get(backend, (TARGET_RATIO, TARGET_SECONDS))


NAME = "first_step"
# The same measurement with the optimizer built before the first step.
BUILT_NAME = "first_step_built_optimizer"
# The same measurement with an empty TorchInductor cache in every process.
FRESH_NAME = "first_step_fresh_cache"


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--backends", default=",".join(BACKENDS))
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument(
        "--runs", type=int, default=1, help="fresh processes per variant"
    )
    parser.add_argument(
        "--optimizer",
        default="sgd",
        choices=("sgd", "adam"),
        help="SGD with momentum (default) or Adam",
    )
    parser.add_argument(
        "--build-optimizer",
        action="store_true",
        help="build the optimizer after compile (one trace on TensorFlow)",
    )
    parser.add_argument(
        "--fresh-compile-cache",
        action="store_true",
        help="an empty TorchInductor cache in every process (a new machine)",
    )
    parser.add_argument(
        "--floor",
        action="store_true",
        help="also time the inherent variant (the copies, no sampling)",
    )
    parser.add_argument("--report", action="store_true")
    parser.add_argument("--worker", nargs=4, help=argparse.SUPPRESS)
    parser.add_argument("--worker-output", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    args.backends = common.choices(parser, "backend", args.backends, BACKENDS)
    args.models = common.choices(parser, "model", args.models, MODELS)
    if args.runs < 1:
        parser.error(f"--runs must be >= 1. Received: --runs={args.runs}")
    if args.build_optimizer and args.fresh_compile_cache:
        parser.error(
            "pass one of --build-optimizer and --fresh-compile-cache "
            "(each writes its own results file)"
        )
    return args


def run_worker(model_name, variant, optimizer, build_optimizer, output):
    """One measurement, in this fresh process."""
    import keras

    import keras_mk
    from benchmarks import models

    start = time.perf_counter()
    keras.utils.set_random_seed(0)
    model, x, y, batch = models.build(model_name, "full")
    if variant == "mk":
        model = keras_mk.clone_model(model, expansion=EXPANSION, seed=0)
    elif variant == FLOOR:
        model = keras_mk.clone_model(
            model, expansion=EXPANSION, probabilities="uniform"
        )
    built = time.perf_counter()
    model.compile(
        optimizer=models.optimizer(model_name, optimizer),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    if build_optimizer:
        model.optimizer.build(model.trainable_variables)
    model.fit(x, y, batch_size=batch, epochs=1, verbose=0)
    end = time.perf_counter()
    # What a user's next `fit` waits for (`train_on_batch` would compile
    # a train function of its own on JAX and TensorFlow).
    model.fit(x, y, batch_size=batch, epochs=1, verbose=0)
    second = time.perf_counter()
    common.write_json(
        {
            "seconds": end - start,
            "build_seconds": built - start,
            "second_step_seconds": second - end,
        },
        output,
    )


def _measure(backend, model_name, variant, args):
    with tempfile.TemporaryDirectory() as tmp:
        output = os.path.join(tmp, "result.json")
        command = [
            sys.executable,
            "-m",
            "benchmarks.first_step",
            "--worker",
            model_name,
            variant,
            args.optimizer,
            "built" if args.build_optimizer else "deferred",
            "--worker-output",
            output,
        ]
        env = dict(os.environ, KERAS_BACKEND=backend, TF_CPP_MIN_LOG_LEVEL="3")
        if args.fresh_compile_cache:
            env["TORCHINDUCTOR_CACHE_DIR"] = os.path.join(tmp, "inductor")
        done = subprocess.run(command, env=env, capture_output=True, text=True)
        if done.returncode != 0:
            print(done.stderr[-2000:], file=sys.stderr)
            return None
        with open(output) as f:
            return json.load(f)


def run_driver(args):
    from tqdm.auto import tqdm

    variants = VARIANTS + ((FLOOR,) if args.floor else ())
    jobs = [
        (backend, model_name, variant)
        for backend in args.backends
        for model_name in args.models
        for _ in range(args.runs)
        for variant in variants
    ]
    found = {}
    for backend, model_name, variant in tqdm(jobs, desc="first steps"):
        result = _measure(backend, model_name, variant, args)
        key = (backend, model_name, variant)
        found.setdefault(key, []).append(result)
    name = _name(args)
    for backend in args.backends:
        path = common.result_path(name, backend)
        data = {"models": {}}
        if os.path.exists(path):
            with open(path) as f:
                data = json.load(f)
        data["machine"] = common.machine()
        data["optimizer"] = args.optimizer
        for model_name in args.models:
            data["models"][model_name] = {
                variant: found[(backend, model_name, variant)]
                for variant in variants
            }
        common.write_json(data, path)
    print("\n".join(format_table(common.read_results(name))))


def _name(args):
    if args.fresh_compile_cache:
        return FRESH_NAME
    return BUILT_NAME if args.build_optimizer else NAME


def _fastest(runs, key="seconds"):
    seconds = [r[key] for r in runs if r is not None and key in r]
    return min(seconds) if seconds else None


def _meets(plain, mk, backend=None):
    ratio, seconds = target(backend)
    return mk / plain <= ratio or mk - plain <= seconds


def verdict(runs, backend=None):
    """`(met, text)` over the rounds: MK against the plain run beside it.

    Round `i` is the `i`-th run of each variant (`run_driver` alternates
    them); a round with a failed run is left out.
    """
    rounds = [
        (plain["seconds"], mk["seconds"])
        for plain, mk in zip(runs["plain"], runs["mk"])
        if plain is not None and mk is not None
    ]
    if not rounds:  # plain and MK never both ran in one round
        return False, "no round with both runs"
    met = sum(_meets(plain, mk, backend) for plain, mk in rounds)
    if met == len(rounds):
        word = "met"
    else:
        word = "inconclusive" if met else "missed"
    return word == "met", f"{word}, {met} of {len(rounds)} rounds met"


def format_table(results):
    """The docs' table: one row per model, one column group per backend."""
    backends = [b for b in BACKENDS if b in results]
    lines = [
        "| model | "
        + " | ".join(f"{b}: plain -> MK (s)" for b in backends)
        + " |",
        "| --- |" + " --- |" * len(backends),
    ]
    for model_name in MODELS:
        cells = []
        for backend in backends:
            runs = results[backend]["models"].get(model_name)
            plain = mk = None
            if runs:
                plain, mk = _fastest(runs["plain"]), _fastest(runs["mk"])
            if plain is None or mk is None:
                cells.append("not run" if not runs else "failed")
                continue
            met, said = verdict(runs, backend)
            text = (
                f"{plain:.1f} -> {mk:.1f} ({mk / plain:.2f}x, "
                f"{mk - plain:+.1f} s); {said}"
            )
            text = f"**{text}**" if met else text
            second = [
                _fastest(runs[v], "second_step_seconds") for v in VARIANTS
            ]
            if None not in second:
                text += f"; 2nd step {second[0]:.2f} -> {second[1]:.2f}"
            floor = _fastest(runs.get(FLOOR, []))
            if floor is not None:
                # Rounded first: a floor a hair under plain reads +0.0 s.
                above = round(floor - plain, 1) + 0.0
                text += f"; floor {floor:.1f} ({above:+.1f} s)"
            cells.append(text)
        lines.append(f"| {model_name} | " + " | ".join(cells) + " |")
    return lines


def main(argv=None):
    args = parse_args(argv)
    if args.worker:
        model_name, variant, optimizer, built = args.worker
        run_worker(
            model_name, variant, optimizer, built == "built", args.worker_output
        )
    elif args.report:
        for name in (NAME, BUILT_NAME, FRESH_NAME):
            results = common.read_results(name)
            if results:
                print(f"{name}:")
                print("\n".join(format_table(results)))
    else:
        run_driver(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())

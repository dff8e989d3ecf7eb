"""Cost per training step of each system of the paper, relative to BASELINE.

Trains every system side by side on the scikit-learn digits MLP
(64 -> 128 -> 64 -> 10, batch 128, Adam) with `model.fit`, interleaving the
repetitions (system A, B, C, ..., then again A, B, C, ...) so that machine
load affects all systems alike, and reports the median time per step.

    KERAS_BACKEND=jax python -m benchmarks.systems_cost [--quick]

Prints a Markdown table and writes JSON (default
`benchmarks/results/systems_cost_<backend>.json`). After running it on each
backend, `python -m benchmarks.systems_cost --update-docs` rebuilds the
table in `docs/systems.md` from those files. On a machine shared with
other jobs, run PyTorch with `OMP_NUM_THREADS=1`: its spinning intra-op
threads otherwise slow every step down by an order of magnitude.
"""

import argparse
import os
import platform
import time

import keras
import numpy as np

import keras_mk
from benchmarks import common
from keras_mk import baselines
from keras_mk import training

HIDDEN = (128, 64)
BATCH = 128
EXPANSION = 3
MEMBERS = 3
LOSS = keras.losses.SparseCategoricalCrossentropy(from_logits=True)


def _mlp(kind="dense", seed=0):
    keras.utils.set_random_seed(seed)
    hidden = []
    for units in HIDDEN:
        if kind == "dense":
            hidden.append(keras.layers.Dense(units, activation="relu"))
        elif kind == "mk":
            hidden.append(
                keras_mk.layers.MKDense(
                    units, activation="relu", expansion=EXPANSION
                )
            )
        elif kind == "subset":
            hidden.append(
                baselines.SubsetDense(
                    units, activation="relu", expansion=EXPANSION
                )
            )
    if kind == "mk":
        head = keras_mk.layers.MKDense(10, expansion=EXPANSION)
    else:
        head = keras.layers.Dense(10)
    return keras.Sequential([keras.Input((64,)), *hidden, head])


def _compiled(model, learning_rate=1e-3):
    model.compile(keras.optimizers.Adam(learning_rate), LOSS)
    return model


def _systems(x, y):
    """Name -> (list of models to fit for one step each, note)."""
    systems = {}
    systems["BASELINE"] = ([_compiled(_mlp())], "")
    schedule, epochs = baselines.baseline_schedule(1e-3, 100, 9, long=True)
    systems["BASELINE-LONG"] = (
        [_compiled(_mlp(), schedule)],
        f"BASELINE's step with the step schedule; {epochs / 9:.1f}x the steps",
    )
    systems["MAJORITY KERNELS (e=3)"] = ([_compiled(_mlp("mk"))], "")
    for name, only in (
        ("ADV-MK, Alg. D.1 (e=3)", True),
        ("ADV-MK, Alg. D.2 (e=3)", False),
    ):
        model = training.AdversarialMK(
            _mlp("mk"), epsilon=0.1, adversarial_only=only
        )
        systems[name] = ([_compiled(model)], "two gradient computations")
    members = [_compiled(_mlp(seed=s)) for s in range(MEMBERS)]
    systems[f"ENSEMBLE-BASELINE (k={MEMBERS})"] = (
        members,
        f"{MEMBERS} independent trainings",
    )
    # k fine-tunings of one pretrained model (the soup is averaged once).
    pretrained = _mlp(seed=0)
    ingredients = []
    for _ in range(MEMBERS):
        ingredient = keras.models.clone_model(pretrained)
        ingredient.set_weights(pretrained.get_weights())
        ingredients.append(_compiled(ingredient))
    systems[f"MODEL SOUPS (k={MEMBERS})"] = (
        ingredients,
        f"{MEMBERS} fine-tunings, then one weight average",
    )
    # Its own teacher: the Distiller freezes it.
    teacher = baselines.Ensemble([_mlp(seed=s) for s in range(MEMBERS)])
    distiller = baselines.distillation_baseline(teacher, _mlp(seed=9))
    systems["DISTILLED-BASELINE (k=3 teacher)"] = (
        [_compiled(distiller)],
        "plus training the ensemble teacher",
    )
    systems["SUBSET-BASELINE (e=3)"] = (
        [_compiled(_mlp("subset"))],
        "greedy selection every step",
    )
    return systems


def _fit_seconds(models, x, y):
    start = time.perf_counter()
    for model in models:
        model.fit(x, y, batch_size=BATCH, epochs=1, shuffle=False, verbose=0)
    return time.perf_counter() - start


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a smoke run")
    parser.add_argument("--steps", type=int, default=None)
    parser.add_argument("--repeats", type=int, default=None)
    parser.add_argument("--output", default=None)
    parser.add_argument(
        "--update-docs",
        action="store_true",
        help="rebuild the table in docs/systems.md from the JSON results",
    )
    args = parser.parse_args()
    if args.update_docs:
        update_docs()
        return
    steps = args.steps or (10 if args.quick else 100)
    repeats = args.repeats or (2 if args.quick else 7)
    backend = keras.backend.backend()

    x, y = common.digits()
    reps = -(-steps * BATCH // len(x))
    x_steps = np.tile(x, (reps, 1))[: steps * BATCH]
    y_steps = np.tile(y, reps)[: steps * BATCH]
    systems = _systems(x, y)
    for models, _ in systems.values():  # Compile and warm up.
        _fit_seconds(models, x_steps[: 2 * BATCH], y_steps[: 2 * BATCH])
    times = {name: [] for name in systems}
    for _ in range(repeats):
        for name, (models, _) in systems.items():
            times[name].append(_fit_seconds(models, x_steps, y_steps))

    base = float(np.median(times["BASELINE"])) / steps
    rows = []
    for name, (_, note) in systems.items():
        per_step = float(np.median(times[name])) / steps
        rows.append(
            {
                "system": name,
                "ms_per_step": 1e3 * per_step,
                "relative_to_baseline": per_step / base,
                "note": note,
            }
        )
    result = {
        "backend": backend,
        "keras": keras.__version__,
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs",
        "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS"),
        "model": f"digits MLP 64-{'-'.join(map(str, HIDDEN))}-10, "
        f"batch {BATCH}, Adam",
        "steps_per_repeat": steps,
        "repeats": repeats,
        "rows": rows,
        "seconds": times,
    }
    print(f"backend={backend}, {steps} steps x {repeats} interleaved repeats")
    print("| System | ms / step | x BASELINE | Note |")
    print("|---|---:|---:|---|")
    for row in rows:
        print(
            f"| {row['system']} | {row['ms_per_step']:.2f} | "
            f"{row['relative_to_baseline']:.2f} | {row['note']} |"
        )
    output = args.output or common.result_path("systems_cost", backend)
    common.write_json(result, output)
    print(f"wrote {output}")


DOCS = os.path.join(common.DOCS, "systems.md")


def docs_table(results):
    """The Markdown table of `docs/systems.md` from per-backend results."""
    backends = [b for b in common.BACKENDS if b in results]
    header = ["System"] + [f"{b}: ms/step (x BASELINE)" for b in backends]
    lines = [
        "| " + " | ".join(header + ["Note"]) + " |",
        "|---|" + "---:|" * len(backends) + "---|",
    ]
    first = results[backends[0]]
    for i, row in enumerate(first["rows"]):
        cells = [row["system"]]
        for b in backends:
            r = results[b]["rows"][i]
            assert r["system"] == row["system"], "run every backend again"
            cells.append(
                f"{r['ms_per_step']:.2f} ({r['relative_to_baseline']:.2f}x)"
            )
        lines.append("| " + " | ".join(cells + [row["note"]]) + " |")
    runs = "; ".join(
        f"{b}: {results[b]['steps_per_repeat']} steps x "
        f"{results[b]['repeats']} repeats"
        + (
            f", OMP_NUM_THREADS={results[b]['OMP_NUM_THREADS']}"
            if results[b]["OMP_NUM_THREADS"]
            else ""
        )
        for b in backends
    )
    lines += [
        "",
        f"Runs: {runs}. Keras {first['keras']}, {first['machine']}.",
    ]
    return "\n".join(lines)


def update_docs():
    results = common.read_results("systems_cost")
    with open(DOCS) as f:
        text = f.read()
    start, end = "<!-- cost-table -->\n", "<!-- /cost-table -->"
    before, rest = text.split(start)
    after = rest.split(end)[1]
    with open(DOCS, "w") as f:
        f.write(before + start + docs_table(results) + "\n" + end + after)
    print(f"updated {os.path.normpath(DOCS)}")


if __name__ == "__main__":
    main()

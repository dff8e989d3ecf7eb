"""Cost and accuracy of sharing `p` per output unit or per layer.

`probability_sharing="element"` (the paper's algorithm, the default) draws
`e - 1` uniforms per kernel element and step; `"unit"` one set per output
unit, `"layer"` one per kernel. This measures, in one process (set
`KERAS_BACKEND`):

1. the training-step time of the paper's A3 MLP (3072-400-200-100-10, Adam,
   batch 256) at e = 3 for each sharing, against the plain model, variants
   interleaved as in `benchmarks.step_time`;
2. the test accuracy of a digits MLP (64-128-64-10, 30 epochs, Adam 2e-3,
   batch 128) on `digits` and `digits-noisy` (30% wrong training labels)
   for BASELINE and each sharing, mean +/- std over seeds.

    KERAS_BACKEND=torch python -m benchmarks.probability_sharing [--quick]

Prints Markdown tables and writes JSON (default
`benchmarks/results/probability_sharing_<backend>.json`).
"""

import argparse
import statistics

import keras
import numpy as np

import keras_mk
from benchmarks import common
from benchmarks import models
from benchmarks import step_time

SHARINGS = ("element", "unit", "layer")
LOSS = keras.losses.SparseCategoricalCrossentropy(from_logits=True)


def step_times(repeats, steps, quick):
    keras.utils.set_random_seed(0)
    plain, x, y, batch = models.build("mlp", "quick" if quick else "full")
    variants = {"plain": plain}
    for sharing in SHARINGS:
        variants[sharing] = keras_mk.clone_model(
            plain, expansion=3, seed=1, probability_sharing=sharing
        )
    for model in variants.values():
        model.compile(keras.optimizers.Adam(1e-3), LOSS)
    xs = np.concatenate([x] * (steps + 1))
    ys = np.concatenate([y] * (steps + 1))
    timer_class = step_time._timer_callback()
    times = {name: [] for name in variants}
    for repeat in range(repeats + 1):  # the first repeat warms up
        for name, model in variants.items():
            timer = timer_class()
            model.fit(
                xs, ys, batch_size=batch, shuffle=False, verbose=0,
                callbacks=[timer],
            )  # fmt: skip
            if repeat:
                times[name].extend(timer.step_times())
    base = statistics.median(times["plain"])
    return {
        name: {
            "median_ms": 1e3 * statistics.median(t),
            "ratio": statistics.median(t) / base,
        }
        for name, t in times.items()
    }


def accuracy(task, sharing, seed, epochs):
    keras.utils.set_random_seed(seed)
    model = keras.Sequential(
        [
            keras.Input((64,)),
            keras.layers.Dense(128, activation="relu"),
            keras.layers.Dense(64, activation="relu"),
            keras.layers.Dense(10),
        ]
    )
    if sharing != "baseline":
        model = keras_mk.clone_model(
            model, expansion=3, seed=seed, probability_sharing=sharing
        )
    model.compile(keras.optimizers.Adam(2e-3), LOSS, metrics=["accuracy"])
    x_train, y_train, x_test, y_test = task
    model.fit(x_train, y_train, batch_size=128, epochs=epochs, verbose=0)
    return model.evaluate(x_test, y_test, verbose=0)[1]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="a smoke run")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--output", default=None)
    args = parser.parse_args(argv)
    backend = keras.backend.backend()
    repeats, steps, epochs = (1, 3, 1) if args.quick else (5, 6, 30)
    seeds = 1 if args.quick else args.seeds

    cost = step_times(repeats, steps, args.quick)
    print(f"\nA3 MLP training step, e = 3, {backend}:\n")
    print("| sharing | ms / step | x plain |\n|---|---:|---:|")
    for name, row in cost.items():
        print(f"| {name} | {row['median_ms']:.1f} | {row['ratio']:.2f}x |")

    results = {}
    for name in models.DIGITS_TASKS:
        task = models.digits_task(name, max_train=256 if args.quick else None)
        for sharing in ("baseline",) + SHARINGS:
            values = [
                accuracy(task, sharing, seed, epochs) for seed in range(seeds)
            ]
            results.setdefault(name, {})[sharing] = {
                "mean": float(np.mean(values)),
                "std": float(np.std(values)),
                "values": [float(v) for v in values],
            }
    print(f"\nDigits MLP test accuracy (%), {seeds} seeds, {epochs} epochs:\n")
    print("| task | BASELINE | " + " | ".join(SHARINGS) + " |")
    print("|---|" + "---:|" * (1 + len(SHARINGS)))
    for name, row in results.items():
        cells = [
            f"{100 * r['mean']:.2f} ± {100 * r['std']:.2f}"
            for r in row.values()
        ]
        print(f"| {name} | " + " | ".join(cells) + " |")

    output = args.output or common.result_path("probability_sharing", backend)
    if args.quick and args.output is None:
        return
    common.write_json(
        {
            "backend": backend,
            "keras": keras.__version__,
            "cost": cost,
            "accuracy": results,
            "seeds": seeds,
            "epochs": epochs,
        },
        output,
    )
    print(f"\nwrote {output}")


if __name__ == "__main__":
    main()

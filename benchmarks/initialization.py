"""How to initialise the kernel copies: replicate one draw, or draw each?

Trains the same MK MLP on `sklearn.datasets.load_digits` with
`copy_initialization="replicate"` and `"independent"`, over several seeds,
and reports test accuracy and loss (mean +/- std). The default of the MK
layers was chosen from this measurement (`docs/layers.md`, "Initialising
the copies").

    python -m benchmarks.initialization --seeds 5 --epochs 40
"""

import argparse
import os
import time

from benchmarks import common


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--backend", default=os.environ.get("KERAS_BACKEND"))
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--epochs", type=int, default=40)
    parser.add_argument("--expansion", type=int, default=3)
    parser.add_argument("--output", default="outputs/initialization.json")
    return parser.parse_args()


def main():
    args = parse_args()
    if args.backend:
        os.environ["KERAS_BACKEND"] = args.backend
    import keras
    import numpy as np
    from sklearn.model_selection import train_test_split

    import keras_mk

    x, y = common.digits()
    results = {}
    for init in ("replicate", "independent"):
        accuracies, losses = [], []
        start = time.perf_counter()
        for seed in range(args.seeds):
            keras.utils.set_random_seed(seed)
            x_train, x_test, y_train, y_test = train_test_split(
                x, y, test_size=0.3, random_state=seed, stratify=y
            )
            kwargs = {
                "expansion": args.expansion,
                "copy_initialization": init,
                "seed": seed,
            }
            model = keras.Sequential(
                [
                    keras.Input((64,)),
                    keras_mk.layers.MKDense(128, activation="relu", **kwargs),
                    keras_mk.layers.MKDense(64, activation="relu", **kwargs),
                    keras_mk.layers.MKDense(10, **kwargs),
                ]
            )
            model.compile(
                keras.optimizers.Adam(1e-3),
                keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                metrics=["accuracy"],
            )
            model.fit(
                x_train, y_train, batch_size=64, epochs=args.epochs, verbose=0
            )
            loss, accuracy = model.evaluate(x_test, y_test, verbose=0)
            accuracies.append(accuracy)
            losses.append(loss)
            print(f"{init:12s} seed {seed}: accuracy {accuracy:.4f}")
        results[init] = {
            "accuracy_mean": float(np.mean(accuracies)),
            "accuracy_std": float(np.std(accuracies)),
            "loss_mean": float(np.mean(losses)),
            "loss_std": float(np.std(losses)),
            "accuracies": [float(a) for a in accuracies],
            "seconds": time.perf_counter() - start,
        }
    print(
        f"\nbackend={keras.backend.backend()} e={args.expansion} "
        f"seeds={args.seeds} epochs={args.epochs}"
    )
    print("| copy_initialization | test accuracy | test loss |")
    print("|---|---|---|")
    for init, r in results.items():
        print(
            f"| {init} | {r['accuracy_mean']:.4f} +/- {r['accuracy_std']:.4f}"
            f" | {r['loss_mean']:.4f} +/- {r['loss_std']:.4f} |"
        )
    common.write_json(
        {"backend": keras.backend.backend(), "args": vars(args), **results},
        args.output,
    )


if __name__ == "__main__":
    main()

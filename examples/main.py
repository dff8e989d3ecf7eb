"""The main job: does Majority Kernels win on this machine's data?

Trains, on scikit-learn's embedded 8x8 digits (offline), an MLP and a small
CNN with BASELINE, MAJORITY KERNELS (e = 3), ADV-MK, ENSEMBLE and DISTILLED
for several seeds, then prints and writes (JSON, markdown, PNG plots) the
test accuracy (mean +/- std), the train-test gap, the training time per step
relative to BASELINE and the deployed model's parameters and latency
relative to BASELINE, and saves the collapsed MK models as `.keras` and
`.tflite`.

Two tasks: `digits` (clean labels) and `digits-noisy` (30% of the training
labels flipped to a wrong class, clean test labels), where a network
memorises noise and the generalisation gap decides the test accuracy.

    python -m examples.main                      # ~10 min on 2 CPU cores
    python -m examples.main --smoke              # ~1 min
    python -m examples.main --backend jax --dataset digits-noisy --seeds 5
"""

import argparse
import sys
import time

from examples.common.backend import BACKENDS
from examples.common.backend import default_backend
from examples.common.backend import select_backend

TASKS = ("digits", "digits-noisy")
ARCHITECTURES = ("mlp", "cnn")
ALGORITHM_FLAGS = ("baseline", "mk", "adv-mk", "ensemble", "distilled")


def parse_args(argv=None):
    """Parses the command line (see `--help`)."""
    parser = argparse.ArgumentParser(
        prog="python -m examples.main",
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument(
        "--backend",
        choices=BACKENDS,
        default=default_backend(),
        help="Keras backend (default: $KERAS_BACKEND or tensorflow)",
    )
    parser.add_argument(
        "--dataset",
        choices=TASKS + ("all",),
        default=None,
        help="task to run (default: all; digits with --smoke)",
    )
    parser.add_argument(
        "--models",
        nargs="+",
        choices=ARCHITECTURES,
        default=list(ARCHITECTURES),
        help="architectures",
    )
    parser.add_argument(
        "--algorithms",
        nargs="+",
        choices=ALGORITHM_FLAGS,
        default=list(ALGORITHM_FLAGS),
        help="systems to compare (BASELINE is always kept)",
    )
    parser.add_argument(
        "--expansion", type=int, default=3, help="MK expansion e"
    )
    parser.add_argument(
        "--seeds", type=int, default=None, help="seeds (default 3; 1 smoke)"
    )
    parser.add_argument(
        "--epochs", type=int, default=None, help="epochs (default 15; 2 smoke)"
    )
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--learning-rate", type=float, default=2e-3)
    parser.add_argument("--optimizer", choices=("adam", "sgd"), default="adam")
    parser.add_argument(
        "--adv-epsilon",
        type=float,
        default=1000.0,
        help="ADV-MK step size on the probabilities",
    )
    parser.add_argument(
        "--output", default="outputs/main", help="output directory"
    )
    parser.add_argument(
        "--smoke",
        action="store_true",
        help="tiny run (~1 min): 1 seed, 2 epochs, 256 training images",
    )
    parser.add_argument(
        "--no-export",
        action="store_true",
        help="skip saving the collapsed .keras/.tflite models",
    )
    parser.add_argument(
        "--no-progress", action="store_true", help="hide the progress bar"
    )
    args = parser.parse_args(argv)
    if args.expansion < 1:
        parser.error("--expansion must be >= 1")
    if args.seeds is not None and args.seeds < 1:
        parser.error("--seeds must be >= 1")
    if args.epochs is not None and args.epochs < 1:
        parser.error("--epochs must be >= 1")
    return args


def options_from_args(args):
    """Turns parsed flags into `ComparisonOptions` (imports Keras)."""
    from examples.common import algorithms
    from examples.common.comparison import ComparisonOptions

    dataset = args.dataset or ("digits" if args.smoke else "all")
    names = ["baseline"] + [a for a in args.algorithms if a != "baseline"]
    return ComparisonOptions(
        tasks=TASKS if dataset == "all" else (dataset,),
        architectures=tuple(args.models),
        systems=tuple(algorithms.FLAG_NAMES[a] for a in names),
        seeds=args.seeds or (1 if args.smoke else 3),
        training=algorithms.TrainingConfig(
            epochs=args.epochs or (2 if args.smoke else 15),
            batch_size=args.batch_size,
            learning_rate=args.learning_rate,
            optimizer=args.optimizer,
            expansion=args.expansion,
            adversarial_epsilon=args.adv_epsilon,
        ),
        output=args.output,
        max_train=256 if args.smoke else None,
        max_test=128 if args.smoke else None,
        export=not args.no_export,
        progress=not args.no_progress,
    )


def main(argv=None):
    """Runs the main job; returns the process exit code."""
    args = parse_args(argv)
    select_backend(args.backend)
    start = time.perf_counter()
    from examples.common.comparison import run_comparison
    from examples.common.comparison import table_columns
    from examples.common.results import text_table

    options = options_from_args(args)
    data = run_comparison(options)
    print()
    print(text_table(data["summary"], table_columns()))
    print()
    for export in data["exports"]:
        print(
            f"saved {export['keras']} and {export['tflite']} "
            f"(max |LiteRT - Keras| = {export['max_abs_diff_vs_keras']:.1e})"
        )
    env = data["environment"]
    print(
        f"backend {env['backend']}, {env['cpu_count']} CPUs, "
        f"{options.seeds} seeds: {time.perf_counter() - start:.0f} s "
        "(with imports); results in "
        f"{options.output}/results.json, results.md and *.png"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Paper Appendix G, Table 5: fully connected networks on CIFAR-10.

A1 [100], A2 [200, 100], A3 [400, 200, 100]; BASELINE, ENSEMBLE, DISTILLED,
SUBSET, MAJORITY KERNELS (e = 3) and ADV-MK; Adam and SGD with the paper's
learning-rate sweep chosen on a validation split; batch 256; mean +/- std
over seeds. CIFAR-10 comes from `tensorflow_datasets` (downloaded on first
use). Finished runs are appended to `<output>/runs.jsonl`: rerunning the
same command resumes where it stopped.

    python -m examples.fully_connected                  # the full table
    python -m examples.fully_connected --architectures A1 --optimizers adam
    python -m examples.fully_connected --smoke          # offline, mock data
"""

import argparse
import sys

from examples.common.backend import BACKENDS
from examples.common.backend import default_backend
from examples.common.backend import select_backend

ARCHITECTURES = ("A1", "A2", "A3")
ALGORITHM_FLAGS = (
    "baseline",
    "mk",
    "adv-mk",
    "ensemble",
    "distilled",
    "subset",
)


def parse_args(argv=None):
    """Parses the command line (see `--help`)."""
    parser = argparse.ArgumentParser(
        prog="python -m examples.fully_connected",
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument(
        "--backend", choices=BACKENDS, default=default_backend()
    )
    parser.add_argument(
        "--architectures", nargs="+", choices=ARCHITECTURES, default=None
    )
    parser.add_argument(
        "--optimizers", nargs="+", choices=("adam", "sgd"), default=None
    )
    parser.add_argument(
        "--algorithms",
        nargs="+",
        choices=ALGORITHM_FLAGS,
        default=list(ALGORITHM_FLAGS),
    )
    parser.add_argument(
        "--lr-exponents",
        nargs="+",
        type=int,
        default=None,
        help="i of lr = base * 1.5**i (default -4..5; 0 with --smoke)",
    )
    parser.add_argument("--seeds", type=int, default=None, help="default 3")
    parser.add_argument("--epochs", type=int, default=None, help="default 30")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--expansion", type=int, default=3)
    parser.add_argument(
        "--adv-epsilon",
        type=float,
        default=1000.0,
        help="ADV-MK step size on p (grad_p ~ W * grad_W is tiny)",
    )
    parser.add_argument("--data-dir", default=None, help="TFDS data dir")
    parser.add_argument(
        "--max-train", type=int, default=None, help="cap training examples"
    )
    parser.add_argument("--output", default="outputs/fully_connected")
    parser.add_argument(
        "--smoke",
        action="store_true",
        help="offline: TFDS mock data, A1, Adam, one learning rate, 1 epoch",
    )
    parser.add_argument("--no-progress", action="store_true")
    return parser.parse_args(argv)


def main(argv=None):
    """Runs the experiment; returns the process exit code."""
    args = parse_args(argv)
    select_backend(args.backend)
    from examples.common import algorithms
    from examples.common.fully_connected_sweep import FullyConnectedOptions
    from examples.common.fully_connected_sweep import run_fully_connected

    smoke = args.smoke
    options = FullyConnectedOptions(
        architectures=tuple(
            args.architectures or (["A1"] if smoke else ARCHITECTURES)
        ),
        optimizers=tuple(
            args.optimizers or (["adam"] if smoke else ["adam", "sgd"])
        ),
        systems=tuple(algorithms.FLAG_NAMES[a] for a in args.algorithms),
        learning_rate_exponents=tuple(
            args.lr_exponents or ((0,) if smoke else range(-4, 6))
        ),
        seeds=args.seeds or (1 if smoke else 3),
        epochs=args.epochs or (1 if smoke else 30),
        batch_size=args.batch_size,
        expansion=args.expansion,
        adversarial_epsilon=args.adv_epsilon,
        data_dir=args.data_dir,
        max_train=args.max_train,
        smoke=smoke,
        output=args.output,
        progress=not args.no_progress,
    )
    run_fully_connected(options)
    print(f"results in {options.output}/results.json and results.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Paper Appendix G, Table 5: fully connected networks on CIFAR-10.

The main job's protocol (`examples/main.py`) with `--datasets cifar10
--full`: A1 [100], A2 [200, 100], A3 [400, 200, 100]; BASELINE,
BASELINE-LONG, MAJORITY KERNELS (e = 3), ADV-MK, SUBSET, ENSEMBLE and
DISTILLED; Adam and SGD with the paper's learning-rate grid chosen on a
validation split (the last 10% of the training set); test accuracy at the
epoch of best validation accuracy, mean and 95% CI over seeds. CIFAR-10
comes from `tensorflow_datasets` (downloaded on first use). Every flag of
`examples.main` applies.

    python -m examples.fully_connected                  # the full table
    python -m examples.fully_connected --topologies A1 --optimizers adam
    python -m examples.fully_connected --smoke          # offline, mock data
"""

import sys

from examples import main as main_job


def main(argv=None):
    """Runs the main job on CIFAR-10 with the full protocol."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if "-h" in argv or "--help" in argv:
        print(__doc__)
    defaults = ["--datasets", "cifar10", "--output", "outputs/fully_connected"]
    if "--smoke" not in argv:
        defaults.append("--full")
    return main_job.main(defaults + argv)


if __name__ == "__main__":
    sys.exit(main())

"""Choosing the Keras backend from a command-line flag.

Keras reads `KERAS_BACKEND` once, when it is first imported, so a script must
set it before importing Keras (or anything that imports Keras).
"""

import argparse
import os
import sys

BACKENDS = ("tensorflow", "jax", "torch")


def default_backend():
    """The backend a script uses when `--backend` is not given."""
    return os.environ.get("KERAS_BACKEND", "tensorflow")


def script_parser(module, docstring, smoke_help):
    """The command line every example script starts from.

    Its `--help` opens with the first paragraph of the script's docstring;
    the options every script has: `--backend`, `--smoke` (an offline run
    in seconds, `smoke_help` says what it shrinks), `--data-dir` (TFDS
    data), `--output` (`outputs/<script>`) and `--no-progress`.

    Args:
        module: the script's module, e.g. `"examples.main"`.
        docstring: the script's docstring.
        smoke_help: what `--smoke` does in this script.

    Returns:
        An `argparse.ArgumentParser`, for the script to add its own options.
    """
    parser = argparse.ArgumentParser(
        prog=f"python -m {module}",
        description=docstring.split("\n\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument(
        "--backend",
        choices=BACKENDS,
        default=default_backend(),
        help="Keras backend (default: $KERAS_BACKEND or tensorflow)",
    )
    parser.add_argument("--smoke", action="store_true", help=smoke_help)
    parser.add_argument("--data-dir", default=None, help="TFDS data dir")
    parser.add_argument(
        "--output", default=os.path.join("outputs", module.split(".")[-1])
    )
    parser.add_argument("--no-progress", action="store_true")
    return parser


def select_backend(backend):
    """Makes `backend` the Keras backend of this process.

    Must run before Keras is imported. Also quietens TensorFlow's C++ logs.

    Args:
        backend: one of `"tensorflow"`, `"jax"`, `"torch"`.

    Raises:
        ValueError: if `backend` is unknown.
        RuntimeError: if Keras was already imported with another backend.
    """
    if backend not in BACKENDS:
        raise ValueError(
            f"`backend` must be one of {BACKENDS}. Received: {backend!r}"
        )
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    if "keras" in sys.modules:
        current = sys.modules["keras"].backend.backend()
        if current != backend:
            raise RuntimeError(
                f"Keras was already imported with the {current} backend; "
                f"cannot switch to {backend}. Run the script in a fresh "
                "process (`python -m examples.main --backend ...`)."
            )
        return
    os.environ["KERAS_BACKEND"] = backend

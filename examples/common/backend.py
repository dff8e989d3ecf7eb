"""Choosing the Keras backend from a command-line flag.

Keras reads `KERAS_BACKEND` once, when it is first imported, so a script must
set it before importing Keras (or anything that imports Keras).
"""

import os
import sys

BACKENDS = ("tensorflow", "jax", "torch")


def default_backend():
    """The backend a script uses when `--backend` is not given."""
    return os.environ.get("KERAS_BACKEND", "tensorflow")


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

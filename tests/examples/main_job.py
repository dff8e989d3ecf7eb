"""Runs `python -m examples.main` in a fresh process, for the smoke tests."""

import json
import os
import subprocess
import sys

import keras

BACKEND = keras.backend.backend()
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(__file__)))


def run(output, *argv):
    """Runs the main job with `argv` into `output` on this backend.

    Returns:
        `(stdout, results.json's content)`.
    """
    env = dict(os.environ, KERAS_BACKEND=BACKEND, TF_CPP_MIN_LOG_LEVEL="2")
    command = [sys.executable, "-m", "examples.main", *argv]
    command += ["--backend", BACKEND, "--output", str(output), "--no-progress"]
    result = subprocess.run(
        command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=900
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-4000:]
    with open(os.path.join(output, "results.json")) as f:
        return result.stdout, json.load(f)

"""`python -m examples.fully_connected --smoke`: Table 5 on mock CIFAR-10."""

import json
import os
import subprocess
import sys

import keras
import pytest

BACKEND = keras.backend.backend()
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(__file__)))

pytestmark = pytest.mark.skipif(
    BACKEND != "tensorflow",
    reason="CI budget: the paper scripts' smoke runs once, on TensorFlow "
    "(which TFDS loads with anyway); the main job covers every backend",
)


def test_mock_cifar10_runs_the_main_job_protocol(tmp_path):
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "examples.fully_connected",
            "--smoke",
            "--backend",
            BACKEND,
            "--output",
            str(tmp_path),
            "--no-progress",
            "--no-export",
            "--algorithms",
            "baseline",
            "mk",
        ],
        cwd=ROOT,
        env=dict(os.environ, KERAS_BACKEND=BACKEND, TF_CPP_MIN_LOG_LEVEL="2"),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    with open(tmp_path / "results.json") as f:
        data = json.load(f)
    assert data["options"]["datasets"] == ["cifar10"]
    rows = {r["algorithm"]: r for r in data["summary"]}
    assert set(rows) == {"BASELINE", "MAJORITY KERNELS"}
    assert (
        rows["MAJORITY KERNELS"]["inference_params"]
        == (rows["BASELINE"]["inference_params"])
    )
    assert "paper Table 5" in (tmp_path / "results.md").read_text()

"""The benchmarks run (`--quick`); their reports are consistent."""

import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest

BACKEND = keras.backend.backend()
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(__file__)))
# CI budget: the benchmarks' smoke runs once, on PyTorch, where it costs
# least (37 s; 116 s on TensorFlow); the benchmarks themselves are run per
# backend for `docs/performance.md`.
pytestmark = pytest.mark.skipif(
    BACKEND != "torch", reason="CI budget: the benchmarks' smoke runs once"
)


def test_benchmark_quick_mode_writes_a_complete_report(tmp_path):
    output = tmp_path / "step_time.json"
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "benchmarks.step_time",
            "--quick",
            "--backends",
            BACKEND,
            "--output",
            str(output),
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(output.read_text())
    models = report["backends"][BACKEND]["models"]
    assert set(models) == {"mlp", "cnn", "transformer"}
    for entry in models.values():
        train, predict = entry["train"], entry["predict"]
        # Ratios are to the plain model's time; MK trains e x the kernels.
        for table in (train, predict):
            plain_ms = table["plain"]["median_ms"]
            for row in table.values():
                assert row["ratio"] == pytest.approx(
                    row["median_ms"] / plain_ms
                )
        assert train["mk_e3"]["params"] == train["mk_e3_uniform"]["params"]
        assert train["mk_e3"]["params"] > train["plain"]["params"]
        assert predict["collapsed"]["params"] == predict["plain"]["params"]
    assert "mlp" in proc.stdout


def test_probability_sharing_benchmark_quick_mode(tmp_path):
    output = tmp_path / "sharing.json"
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks.probability_sharing", "--quick"]
        + ["--output", str(output)],
        cwd=ROOT,
        env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"),
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(output.read_text())
    assert report["backend"] == BACKEND
    assert set(report["cost"]) == {"plain", "element", "unit", "layer"}
    for task in report["accuracy"].values():
        assert set(task) == {"baseline", "element", "unit", "layer"}
        for row in task.values():  # the mean over the seeds it lists
            assert row["values"]
            assert row["mean"] == pytest.approx(np.mean(row["values"]))

"""The benchmarks run (`--quick`); their numbers are not checked."""

import json
import os
import subprocess
import sys

import keras

BACKEND = keras.backend.backend()
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(__file__)))


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
        assert entry["train"]["plain"]["median_ms"] > 0
        assert entry["train"]["mk_e3"]["ratio"] > 0
        assert entry["train"]["mk_e3_uniform"]["ratio"] > 0
        predict = entry["predict"]
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
        assert all(0.0 <= row["mean"] <= 1.0 for row in task.values())

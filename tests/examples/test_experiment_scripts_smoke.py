"""`--smoke` runs of the ResNet/ImageNet and T5/GLUE scripts (mock TFDS)."""

import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest

from examples.common import names

BACKEND = keras.backend.backend()
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(__file__)))
SCRIPTS = ("resnet_imagenet", "t5_glue")


def _run(script, *args):
    return subprocess.run(
        [sys.executable, "-m", f"examples.{script}", *args],
        cwd=ROOT,
        env=dict(os.environ, KERAS_BACKEND=BACKEND, TF_CPP_MIN_LOG_LEVEL="2"),
        capture_output=True,
        text=True,
        timeout=600,
    )


@pytest.mark.parametrize("script", SCRIPTS)
def test_help(script):
    result = _run(script, "--help")
    assert result.returncode == 0, result.stderr
    assert "--smoke" in result.stdout
    assert "--backend" in result.stdout


def _smoke(script, output, *extra):
    result = _run(
        script, "--smoke", "--backend", BACKEND, "--output", str(output),
        "--no-progress", *extra,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-4000:]
    with open(output / "results.json") as f:
        data = json.load(f)
    assert data["data"]["mock"] is True
    text = (output / "results.md").read_text()
    assert "MOCK DATA" in text
    assert "**Not guarded.**" in text
    assert "| Algorithm |" in text
    return data, text


def runs_once_on(backend):
    """CI budget: a paper script's smoke runs once, on the backend where it
    costs least (measured on 2 cores: the ResNet smoke 30 s on
    PyTorch, 79 s on TensorFlow; T5 38 s and 187 s; `convert_pretrained`
    66 s on TensorFlow, 91 s on PyTorch); the main job covers every
    backend."""
    return pytest.mark.skipif(
        BACKEND != backend,
        reason=f"CI budget: the paper scripts' smoke runs once, on {backend}",
    )


@runs_once_on("torch")
def test_resnet_imagenet_smoke_all_algorithms_then_resume(tmp_path):
    every = ["baseline", "baseline-long", "mk", "adv-mk", "ensemble"]
    every.append("distilled")
    data, text = _smoke("resnet_imagenet", tmp_path, "--algorithms", *every)
    rows = {r["algorithm"]: r for r in data["summary"]}
    assert set(rows) == set(names.flag_names(every).values())
    baseline = rows["BASELINE"]["inference_params"]
    for name in ("BASELINE-LONG", "MAJORITY KERNELS", "ADV-MK", "DISTILLED"):
        assert rows[name]["inference_params"] == baseline
    assert rows["ENSEMBLE"]["inference_params"] == 2 * baseline
    for row in rows.values():
        assert f"| {row['algorithm']} |" in text
    # Rerunning the same command resumes: every run is recorded already,
    # nothing trains again.
    runs = (tmp_path / "runs.jsonl").read_text()
    _smoke("resnet_imagenet", tmp_path, "--algorithms", *every)
    assert (tmp_path / "runs.jsonl").read_text() == runs


@runs_once_on("torch")
def test_t5_glue_smoke_classification_and_regression_then_resume(tmp_path):
    # RTE (accuracy) and STS-B (Pearson/Spearman: the regression head).
    data, text = _smoke("t5_glue", tmp_path, "--tasks", "rte", "stsb")
    rows = {r["algorithm"]: r for r in data["summary"]}
    assert set(rows) == {
        "BASELINE",
        "MAJORITY KERNELS",
        "SOUP-UNIFORM",
        "SOUP-GREEDY",
    }
    for row in rows.values():
        assert set(row["tasks"]) == {"rte", "stsb"}
        stsb = row["tasks"]["stsb"]
        # Exactly 0 is the guard for constant predictions (all inputs
        # tokenised alike): the evaluation would measure nothing.
        assert stsb["pearson"]["mean"] != 0.0
    runs = {(r["task"], r["algorithm"]): r for r in data["runs"]}
    for task in ("rte", "stsb"):
        baseline = runs[(task, "BASELINE")]["inference_params"]
        for name in rows:
            assert runs[(task, name)]["inference_params"] == baseline
    assert "rte accuracy" in text and "stsb pearson" in text
    # Rerunning the same command resumes: nothing trains again.
    recorded = (tmp_path / "runs.jsonl").read_text()
    _smoke("t5_glue", tmp_path, "--tasks", "rte", "stsb")
    assert (tmp_path / "runs.jsonl").read_text() == recorded


def test_glue_correlations_guard_constant_predictions():
    from scipy import stats

    from examples import t5_glue

    metrics = t5_glue.glue_metrics()
    rng = np.random.default_rng(0)
    scores = rng.normal(size=200)
    noisy = scores + rng.normal(size=200)
    assert np.isclose(
        metrics["spearman"](scores, noisy), stats.spearmanr(scores, noisy)[0]
    )
    # Constant predictions: scipy's NaN becomes 0 (no correlation).
    assert metrics["pearson"](scores, np.ones(200)) == 0.0


@runs_once_on("tensorflow")
def test_convert_pretrained_notebook_ships_models_of_the_original_size():
    """The notebook example: KerasHub ResNet and T5 from local presets,
    converted, trained, collapsed; `.tflite` weights equal the original's."""
    result = _run("convert_pretrained")
    assert result.returncode == 0, result.stderr[-4000:]
    weights = {}
    for line in result.stdout.splitlines():
        if "(weights: " in line:
            name = line.split()[2]
            weights[name] = int(line.split("(weights: ")[1].split()[0])
    assert set(weights) == {
        "resnet_original.tflite",
        "resnet_collapsed.tflite",
        "t5_original.tflite",
        "t5_collapsed.tflite",
    }
    assert (
        weights["resnet_collapsed.tflite"] == weights["resnet_original.tflite"]
    )
    assert weights["t5_collapsed.tflite"] == weights["t5_original.tflite"]
    diffs = [
        float(line.rsplit(" ", 1)[1])
        for line in result.stdout.splitlines()
        if line.startswith("collapsed vs MK inference: max abs diff")
    ]
    assert len(diffs) == 2 and max(diffs) <= 1e-5
    litert = [
        float(line.rsplit(" ", 1)[1])
        for line in result.stdout.splitlines()
        if line.startswith("LiteRT vs Keras: max abs diff")
    ]
    assert len(litert) == 1 and litert[0] <= 1e-4

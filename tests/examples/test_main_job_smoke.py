"""The main job (`python -m examples.main --smoke`) on the current backend."""

import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest

BACKEND = keras.backend.backend()
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(__file__)))
ALGORITHMS = ("BASELINE", "MAJORITY KERNELS", "ADV-MK", "ENSEMBLE", "DISTILLED")
SETTINGS = (("digits", "mlp"), ("digits", "cnn"))


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory):
    output = tmp_path_factory.mktemp("main_job")
    env = dict(os.environ, KERAS_BACKEND=BACKEND, TF_CPP_MIN_LOG_LEVEL="2")
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "examples.main",
            "--smoke",
            "--backend",
            BACKEND,
            "--output",
            str(output),
            "--no-progress",
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-4000:]
    with open(output / "results.json") as f:
        data = json.load(f)
    return output, result.stdout, data


def test_prints_the_comparison_table(smoke_run):
    _, stdout, _ = smoke_run
    assert "Test accuracy (%)" in stdout
    for algorithm in ALGORITHMS:
        assert algorithm in stdout


def test_results_json_is_well_formed(smoke_run):
    _, _, data = smoke_run
    for key in ("options", "environment", "summary", "runs", "exports"):
        assert key in data
    assert data["environment"]["backend"] == BACKEND
    rows = {
        (r["task"], r["architecture"], r["algorithm"]) for r in data["summary"]
    }
    assert rows == {s + (a,) for s in SETTINGS for a in ALGORITHMS}
    epochs = data["options"]["training"]["epochs"]
    for run in data["runs"]:
        assert 0.0 <= run["test_accuracy"] <= 1.0
        assert run["seconds_per_step"] > 0
        assert len(run["curves"]["test_accuracy"]) == epochs
        assert len(run["curves"]["train_loss"]) == epochs
    for row in data["summary"]:
        assert row["step_time_ratio"] > 0
        assert row["latency_ratio"] > 0


def test_collapsed_model_has_the_baseline_parameter_count(smoke_run):
    _, _, data = smoke_run
    by_key = {
        (r["task"], r["architecture"], r["algorithm"]): r
        for r in data["summary"]
    }
    for task, architecture in SETTINGS:
        baseline = by_key[(task, architecture, "BASELINE")]
        for name in ("MAJORITY KERNELS", "ADV-MK", "DISTILLED"):
            row = by_key[(task, architecture, name)]
            assert row["inference_params"] == baseline["inference_params"]
            assert row["inference_params_ratio"] == 1.0
        mk = by_key[(task, architecture, "MAJORITY KERNELS")]
        assert mk["training_params"] > mk["inference_params"]
        ensemble = by_key[(task, architecture, "ENSEMBLE")]
        assert ensemble["inference_params_ratio"] == 3.0
    for run in data["runs"]:
        if run["algorithm"] in ("MAJORITY KERNELS", "ADV-MK"):
            # The collapsed model computes the MK model's inference outputs.
            assert run["collapse_max_abs_diff"] < 1e-4


def test_markdown_table_has_one_row_per_system(smoke_run):
    output, _, _ = smoke_run
    text = (output / "results.md").read_text()
    lines = [line for line in text.splitlines() if line.startswith("| ")]
    header = "| Task | Model | Algorithm | Test accuracy (%) |"
    assert any(line.startswith(header) for line in lines)
    rows = [line for line in lines if line.startswith("| digits |")]
    assert len(rows) == len(SETTINGS) * len(ALGORITHMS)


def test_plots_are_readable_png_images(smoke_run):
    import matplotlib.image

    output, _, _ = smoke_run
    for task, architecture in SETTINGS:
        for kind in ("curves", "gap"):
            image = matplotlib.image.imread(
                output / f"{kind}_{task}_{architecture}.png"
            )
            assert image.ndim == 3 and image.shape[0] > 100


def test_collapsed_keras_file_loads_at_the_baseline_size(smoke_run):
    output, _, data = smoke_run
    baseline_params = {
        r["architecture"]: r["inference_params"]
        for r in data["summary"]
        if r["algorithm"] == "BASELINE"
    }
    assert len(data["exports"]) == len(SETTINGS)
    for task, architecture in SETTINGS:
        path = output / "models" / f"{task}_{architecture}_mk_collapsed.keras"
        # A plain Keras model: loads without keras_mk's custom objects.
        model = keras.saving.load_model(path)
        assert model.count_params() == baseline_params[architecture]
        logits = model.predict_on_batch(np.zeros((2, 8, 8, 1), "float32"))
        assert tuple(logits.shape) == (2, 10)


def test_tflite_file_runs_in_the_interpreter(smoke_run):
    output, _, data = smoke_run
    for export in data["exports"]:
        assert export["tflite_bytes"] > 0
        # Measured by the main job in the LiteRT interpreter.
        assert export["max_abs_diff_vs_keras"] < 1e-4
    if BACKEND != "tensorflow":
        # Importing TensorFlow here costs ~10 s; the job already ran the
        # interpreter in its TensorFlow subprocess (checked above).
        return
    from examples.common.litert import run_tflite

    path = output / "models" / "digits_mlp_mk_collapsed.tflite"
    outputs = run_tflite(str(path), np.zeros((3, 8, 8, 1), "float32"))
    assert outputs.shape == (3, 10)
    assert np.all(np.isfinite(outputs))

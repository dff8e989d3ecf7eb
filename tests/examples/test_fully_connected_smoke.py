"""`python -m examples.fully_connected --smoke`: Table 5 on mock CIFAR-10."""

import json
import os
import subprocess
import sys

import keras
import pytest

BACKEND = keras.backend.backend()
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(__file__)))
ALGORITHMS = (
    "BASELINE",
    "MAJORITY KERNELS",
    "ADV-MK",
    "SUBSET",
    "ENSEMBLE",
    "DISTILLED",
)

pytestmark = pytest.mark.skipif(
    BACKEND != "tensorflow",
    reason="CI budget: the paper scripts' smoke runs once, on TensorFlow "
    "(which TFDS loads with anyway); the main job covers every backend",
)


def _run(output):
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "examples.fully_connected",
            "--smoke",
            "--backend",
            BACKEND,
            "--output",
            str(output),
            "--no-progress",
        ],
        cwd=ROOT,
        env=dict(os.environ, KERAS_BACKEND=BACKEND, TF_CPP_MIN_LOG_LEVEL="2"),
        capture_output=True,
        text=True,
        timeout=600,
    )


@pytest.fixture(scope="module")
def smoke_output(tmp_path_factory):
    output = tmp_path_factory.mktemp("fully_connected")
    result = _run(output)
    assert result.returncode == 0, result.stderr[-4000:]
    return output


def test_results_cover_every_algorithm(smoke_output):
    with open(smoke_output / "results.json") as f:
        data = json.load(f)
    assert data["data"]["mock"] is True
    rows = {r["algorithm"]: r for r in data["summary"]}
    assert set(rows) == set(ALGORITHMS)
    baseline = rows["BASELINE"]["inference_params"]
    for name in ("MAJORITY KERNELS", "ADV-MK", "SUBSET", "DISTILLED"):
        assert rows[name]["inference_params"] == baseline
    assert rows["ENSEMBLE"]["inference_params"] == 3 * baseline
    for row in rows.values():
        assert row["learning_rate"] == pytest.approx(0.001)


def test_markdown_table_and_plot(smoke_output):
    import matplotlib.image

    text = (smoke_output / "results.md").read_text()
    assert "| Model | Algorithm | adam test acc (%) |" in text
    assert "MOCK DATA" in text
    image = matplotlib.image.imread(smoke_output / "curves_A1_adam.png")
    assert image.ndim == 3


def test_rerun_resumes_without_training(smoke_output):
    runs = smoke_output / "runs.jsonl"
    before = runs.read_text()
    result = _run(smoke_output)
    assert result.returncode == 0, result.stderr[-4000:]
    # Every run was already recorded: nothing was trained again.
    assert runs.read_text() == before

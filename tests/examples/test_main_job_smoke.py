"""The main job (`python -m examples.main --smoke`) on the current backend."""

import keras
import main_job
import numpy as np
import pytest

BACKEND = main_job.BACKEND
ALGORITHMS = (
    "BASELINE",
    "BASELINE-LONG",
    "MAJORITY KERNELS",
    "ADV-MK",
    "SUBSET",
    "ENSEMBLE",
    "DISTILLED",
)
# The smoke run turns the guards off: never a verdict.
VERDICTS = ("inconclusive",)


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory):
    output = tmp_path_factory.mktemp("main_job")
    stdout, data = main_job.run(output, "--smoke")
    return output, stdout, data


def test_prints_the_table_verdicts_and_reference(smoke_run):
    _, stdout, _ = smoke_run
    assert "Test accuracy (%, 95% CI)" in stdout
    assert "Verdict for MK" in stdout
    assert "mnist1d reference: published: MLP ~68%" in stdout
    for algorithm in ALGORITHMS:
        assert algorithm in stdout


def test_every_algorithm_is_read_at_its_best_validation_epoch(smoke_run):
    _, _, data = smoke_run
    assert {r["algorithm"] for r in data["summary"]} == set(ALGORITHMS)
    epochs = data["options"]["epochs"]
    for run in data["runs"]:
        curves = run["curves"]
        long = run["algorithm"] in ALGORITHMS[1:5]
        assert len(curves["val_accuracy"]) == epochs * (3 if long else 1)
        best = int(np.argmax(curves["val_accuracy"]))
        assert run["best_epoch"] == best + 1
        assert run["test_accuracy"] == curves["test_accuracy"][best]
    for row in data["paired"]:
        assert row["algorithm"] == "MAJORITY KERNELS"
        assert row["verdict"] in VERDICTS
        assert "guards off (--smoke)" in row["reason"]
        assert len(row["differences"]) == data["options"]["seeds"]
    assert data["paired"][0]["headline"]


def test_smoke_never_extends_the_grid_or_the_budget(smoke_run):
    _, _, data = smoke_run
    for row in data["summary"]:
        search = row["search"]
        assert search["grid"] == data["options"]["lr_exponents"]
        assert search["epochs"] == search["start_epochs"]
        assert not search["checked"] and not search["passed"]


def test_learning_rate_chosen_on_validation(smoke_run):
    _, _, data = smoke_run
    chosen = {r["algorithm"]: r["learning_rate"] for r in data["summary"]}
    for algorithm in ALGORITHMS:
        if algorithm == "ENSEMBLE":  # BASELINE's members, BASELINE's rate.
            assert chosen[algorithm] == chosen["BASELINE"]
            continue
        sweep = [s for s in data["sweeps"] if s["algorithm"] == algorithm]
        assert len(sweep) == len(data["options"]["lr_exponents"])
        best = max(sweep, key=lambda s: s["val_accuracy"])
        assert chosen[algorithm] == best["learning_rate"]


def test_deployed_sizes_and_adversarial_p_moves(smoke_run):
    _, _, data = smoke_run
    rows = {r["algorithm"]: r for r in data["summary"]}
    baseline = rows["BASELINE"]["inference_params"]
    for name in ALGORITHMS:
        factor = 3 if name == "ENSEMBLE" else 1
        assert rows[name]["inference_params"] == factor * baseline
    assert rows["MAJORITY KERNELS"]["training_params"] > baseline
    # ADV-MK's adversary moved p away from uniform at the default epsilon.
    assert rows["ADV-MK"]["p_deviation"] > 1e-2
    assert rows["ADV-MK"]["p_mixing_u"] > 0.0


def test_plots_are_readable_png_images(smoke_run):
    import matplotlib.image

    output, _, _ = smoke_run
    for name in (
        "lr_mnist1d_A1_adam.png",
        "curves_mnist1d_A1_adam.png",
        "seeds_mk_vs_baseline.png",
    ):
        image = matplotlib.image.imread(output / name)
        assert image.ndim == 3 and image.shape[0] > 100
    text = (output / "results.md").read_text()
    assert "band: 95% Student-t confidence interval" in text


def test_collapsed_model_saved_and_runs_in_litert(smoke_run):
    output, _, data = smoke_run
    rows = {r["algorithm"]: r for r in data["summary"]}
    (export,) = data["exports"]
    assert export["tflite_bytes"] > 0
    assert export["max_abs_diff_vs_keras"] < 1e-4
    # A plain Keras model: loads without keras_mk's custom objects.
    model = keras.saving.load_model(export["keras"])
    assert model.count_params() == rows["BASELINE"]["inference_params"]
    logits = model.predict_on_batch(np.zeros((2, 40), "float32"))
    assert tuple(logits.shape) == (2, 10)

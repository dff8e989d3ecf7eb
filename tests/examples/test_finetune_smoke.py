"""`python -m examples.main --finetune --smoke`: every pair's kind, once."""

import os

import main_job
import pytest

from examples import main as main_script

BACKEND = main_job.BACKEND
# CI budget: the fine-tuning smoke runs once, on JAX, where the small
# models cost least (about 45 s on 2 cores).
pytestmark = pytest.mark.skipif(
    BACKEND != "jax", reason="CI budget: the fine-tuning smoke runs on JAX"
)
SMOKE_ALGORITHMS = {
    "digits-5to9": {"BASELINE", "BASELINE-LONG", "MAJORITY KERNELS"},
    "docstrings": {"LORA", "LORA-LONG", "LORA (rank e x r)", "MK-LORA"},
}


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory):
    output = tmp_path_factory.mktemp("finetune")
    stdout, data = main_job.run(output, "--finetune", "--smoke", "--no-export")
    return output, stdout, data


def test_smoke_runs_each_pair_with_its_algorithms(smoke_run):
    output, stdout, data = smoke_run
    assert data["options"]["finetune"]
    assert set(data["pairs"]) == set(SMOKE_ALGORITHMS)
    for pair, expected in SMOKE_ALGORITHMS.items():
        ran = {r["algorithm"] for r in data["summary"] if r["dataset"] == pair}
        assert ran == expected
    assert data["pairs"]["docstrings"]["corpus"]["sha256"]
    # The smoke stays small: 2 seeds, 2 rates, 256 training examples.
    assert data["options"]["seeds"] == 2
    assert all(sizes["train"] <= 256 for sizes in data["data"].values())
    # One checkpoint per seed and setting, kept in the output folder.
    for setting, records in data["checkpoints"].items():
        assert [r["seed"] for r in records] == [0, 1], setting
    kept = os.listdir(output / "checkpoints")
    assert len([f for f in kept if f.endswith(".weights.h5")]) == 4
    assert "## Fine-tuning: source and target tasks" in (
        (output / "results.md").read_text()
    )


def test_smoke_verdicts_are_inconclusive_and_mk_lora_has_a_headline(
    smoke_run,
):
    _, _, data = smoke_run
    headlines = [r for r in data["paired"] if r["headline"]]
    assert {r["algorithm"] for r in headlines} == {
        "MAJORITY KERNELS", "MK-LORA",
    }  # fmt: skip
    for row in data["paired"]:
        assert row["verdict"] == "inconclusive"
        assert "guards off (--smoke)" in row["reason"]


def test_pairs_need_finetune():
    with pytest.raises(SystemExit):
        main_script.parse_args(["--pairs", "digits-5to9"])
    args = main_script.parse_args(["--finetune"])
    assert args.pairs == ["mnist1d-shift"] and args.batch_size == 64
    assert main_script.parse_args([]).batch_size == 256


def test_lora_algorithms_need_finetune():
    with pytest.raises(SystemExit):
        main_script.parse_args(["--algorithms", "mk-lora"])
    args = main_script.parse_args(["--finetune", "--algorithms", "mk-lora"])
    assert args.algorithms == ["mk-lora"]

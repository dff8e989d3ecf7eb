"""The evidence map's cells and report, on a synthetic finished cell."""

import os

from examples import evidence_map
from examples.common import evidence


def _kept(verdict, reason="", mk_best_epoch=60):
    search = {"guards": "held (+1 high)"}
    return {
        "wall_time_s": 600.0,
        "environment": {"backend": "jax"},
        "summary": [
            {
                "algorithm": "MAJORITY KERNELS",
                "search": search,
                "epochs": 120,
                "seeds": 10,
                "best_epoch_median": mk_best_epoch,
            }
        ],
        "paired": [
            {
                "headline": True,
                "versus": "better baseline (BASELINE-LONG)",
                "seeds": 10,
                "difference_mean": 0.004,
                "difference_low": -0.002,
                "difference_high": 0.01,
                "minimum_detectable": 0.009,
                "verdict": verdict,
                "reason": reason,
            },
            {
                "versus": "ENSEMBLE",
                "difference_mean": -0.01,
                "verdict": "worse",
            },
        ],
    }


def test_the_map_covers_the_issue_cells_most_informative_first():
    names = [cell["name"] for cell in evidence_map.CELLS]
    assert names[0] == "a2-sgd-e3"
    for topology in ("a1", "a2", "a3"):
        for optimizer in ("adam", "sgd"):
            assert f"{topology}-{optimizer}-e3" in names
    for name in ("a1-adam-e2", "a1-adam-e5", "cnn-adam-e3"):
        assert name in names
    for cell in evidence_map.CELLS:
        if cell["name"].endswith("-e3") and "--seeds" in cell["argv"]:
            seeds = cell["argv"][cell["argv"].index("--seeds") + 1]
            assert int(seeds) >= 10


def test_report_shows_unrun_cells_and_answers(tmp_path):
    cells = [
        {"name": "done", "question": "q1"},
        {"name": "todo", "question": "q2"},
    ]
    kept = {"done": _kept("no detectable difference")}
    directory = tmp_path / "evidence"
    directory.mkdir()
    evidence.write_report(
        cells, kept.get, str(directory), {"todo": 7, "done": 0}.get
    )
    text = (directory / "map.md").read_text()
    assert (
        "| `todo` | q2 | from scratch | - | - | - | - | not run (7 runs "
        "kept) |" in text
    )
    assert "No fine-tuning cell of the map has finished yet" in text
    assert "ENSEMBLE: worse (-1.00)" in text
    assert "1 of 2 cells have finished (1 not run)" in text
    assert "nowhere we could measure" in text
    assert "detected differences of 0.9 points" in text
    assert os.path.exists(tmp_path / "img" / "evidence_map.png")


def test_answer_names_inconclusive_cells():
    rows = [{"cell": "x", "verdict": "inconclusive"}, {"cell": "y"}]
    assert "Inconclusive in 1 (`x`)" in evidence.answer(rows)


def test_a_kept_cell_whose_seeds_peaked_at_the_end_is_inconclusive():
    """Cells kept before the budget guard checked every seed are checked
    again from the median best epoch over all seeds."""
    assert evidence.headline(_kept("better"))["verdict"] == "better"
    late = evidence.headline(_kept("better", mk_best_epoch=108.5))
    assert late["verdict"] == "inconclusive"
    assert late["reason"] == (
        "MAJORITY KERNELS: median best epoch 108.5 of 120 over all 10 "
        "seeds (in the last 10%)"
    )


def test_fine_tuning_cells_answer_their_own_question():
    rows = [
        {"cell": "x", "kind": "from scratch", "verdict": "better"},
        {"cell": "f", "kind": "fine-tuning", "verdict": "worse"},
    ]
    scratch = evidence.answer(rows, evidence.FROM_SCRATCH)
    tuning = evidence.answer(rows, evidence.FINETUNING)
    assert "1 of 1 cells" in scratch and "(`x`)" in scratch
    assert "MK was worse in 1 (`f`)" in tuning
    assert "nowhere we could measure" in tuning
    kinds = {c.get("kind") for c in evidence_map.CELLS}
    assert kinds == {None, "fine-tuning"}
    tuned = [c for c in evidence_map.CELLS if c.get("kind")]
    assert any("docstrings" in c["argv"] for c in tuned)
    for cell in tuned:
        seeds = int(cell["argv"][cell["argv"].index("--seeds") + 1])
        assert seeds >= 10


def test_an_uninformative_kept_verdict_says_so():
    kept = _kept("no detectable difference")
    kept["paired"][0].update(minimum_detectable=0.4, reason="")
    row = evidence.headline(kept)
    assert row["verdict"] == "no detectable difference"
    assert row["reason"].startswith("uninformative")

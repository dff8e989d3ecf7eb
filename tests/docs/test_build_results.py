"""The backend-agreement section of `docs/results.md` on synthetic runs."""

import importlib.util
import os

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(__file__)))
spec = importlib.util.spec_from_file_location(
    "build_results", os.path.join(ROOT, "docs", "build_results.py")
)
build_results = importlib.util.module_from_spec(spec)
spec.loader.exec_module(build_results)


def _run(backend, baseline_mean, differences, verdict="better"):
    return {
        "environment": {"backend": backend},
        "wall_time_s": 60.0,
        "summary": [
            {
                "algorithm": "BASELINE",
                "test_accuracy_mean": baseline_mean,
                "test_accuracy_ci": 0.0042,  # standard error 0.002, 20 seeds
                "seeds": 20,
            }
        ],
        "paired": [
            {
                "versus": "better baseline (BASELINE)",
                "verdict": verdict,
                "difference_mean": sum(differences) / len(differences),
                "differences": differences,
            }
        ],
    }


def test_backends_differ_only_beyond_their_seeds_noise():
    close = [_run("a", 0.600, [0.01]), _run("b", 0.603, [0.01])]
    far = [_run("a", 0.600, [0.01]), _run("b", 0.620, [0.01])]

    def rows(runs):
        return [{r["algorithm"]: r for r in run["summary"]} for run in runs]

    gap, differ = build_results._backends_differ(rows(close), "BASELINE")
    assert gap == pytest.approx(0.003) and not differ
    gap, differ = build_results._backends_differ(rows(far), "BASELINE")
    assert gap == pytest.approx(0.02) and differ


def test_pooled_reads_every_backends_seeds_and_keeps_inconclusive():
    runs = [
        _run("a", 0.6, [0.01, 0.02, 0.00, 0.01]),
        _run(
            "b",
            0.6,
            [0.02, 0.01, 0.01, 0.00],
            verdict="no detectable difference",
        ),
    ]
    mean, low, high, verdict, seeds = build_results.pooled(runs)
    assert seeds == 8 and mean == pytest.approx(0.01)
    assert 0 <= low < mean < high and verdict == "better"
    runs[1]["paired"][0]["verdict"] = "inconclusive"
    assert build_results.pooled(runs)[3] == "inconclusive"
    text = build_results.agreement(runs, "Heading", "command --backend B")
    assert text.startswith("## Heading\n")
    assert "`command --backend B`, B in a, b" in text
    assert "Pooled over the 2 backends (8 seeds)" in text

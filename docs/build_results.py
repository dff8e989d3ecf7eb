"""Writes `docs/results.md` from main-job runs and copies their plots.

Reads only the runs' files (`results.json`, `results.md`, `*.png`) and the
evidence map's `docs/evidence/map.md`: no import of `examples`. The first
source is the run shown in full; every source (the same command on each
backend) goes into the backend-agreement table.

python -m examples.main --backend tensorflow --output outputs/demo_tensorflow
python -m examples.main --backend jax --output outputs/demo_jax
python -m examples.main --backend torch --output outputs/demo_torch
python -m examples.main --optimizers adam --backend B --output outputs/adam_B
python -m examples.evidence_map --report      # docs/evidence/map.md
python docs/build_results.py --source outputs/demo_jax \
    outputs/demo_tensorflow outputs/demo_torch \
    --also outputs/adam_jax outputs/adam_tensorflow outputs/adam_torch

The runs behind today's page are kept in `docs/evidence/demo_<backend>/`
(the default, SGD) and `docs/evidence/adam_<backend>/` (Adam): their
results files and plots, not the models. `--source docs/evidence/demo_jax
docs/evidence/demo_tensorflow docs/evidence/demo_torch --also
docs/evidence/adam_jax docs/evidence/adam_tensorflow
docs/evidence/adam_torch` rebuilds it.
"""

import argparse
import json
import os
import shutil

import numpy as np
from scipy import stats

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)

HAND_WRITTEN = "<!-- hand-written -->"
# Written by `python -m examples.evidence_map --report`, not by a run.
EVIDENCE_FIGURE = "evidence_map.png"
PAPER = """\
## The paper's numbers, for comparison

Not reproduced here (CIFAR-10 is not available offline; other models and
hardware); quoted from Mazzawi et al. (2024) to show what MK is claimed to
do. Table 5 (CIFAR-10, batch 256, test accuracy, mean ± std as printed in
the paper; the paper has no BASELINE-LONG or ADV-MK row for these nets):

| Topology | Algorithm | Adam | SGD |
| --- | --- | --- | --- |
| A1 [100] | BASELINE | 51.79 ± 0.21 | 51.24 ± 0.16 |
| A1 [100] | ENSEMBLE | 52.27 ± 0.12 | 52.55 ± 0.52 |
| A1 [100] | DISTILLED | 48.68 ± 0.86 | 48.69 ± 0.33 |
| A1 [100] | SUBSET | 52.09 ± 0.16 | 52.10 ± 0.20 |
| A1 [100] | MAJORITY KERNELS | 52.01 ± 0.10 | 51.82 ± 0.15 |
| A2 [200, 100] | BASELINE | 52.99 ± 0.09 | 52.64 ± 0.34 |
| A2 [200, 100] | ENSEMBLE | 54.36 ± 0.08 | 54.87 ± 0.15 |
| A2 [200, 100] | DISTILLED | 52.94 ± 0.26 | 51.87 ± 0.89 |
| A2 [200, 100] | SUBSET | 53.69 ± 0.20 | 53.90 ± 0.15 |
| A2 [200, 100] | MAJORITY KERNELS | 54.29 ± 0.20 | 54.21 ± 0.24 |
| A3 [400, 200, 100] | BASELINE | 53.79 ± 0.18 | 53.30 ± 0.17 |
| A3 [400, 200, 100] | ENSEMBLE | 55.62 ± 0.15 | 56.56 ± 0.27 |
| A3 [400, 200, 100] | DISTILLED | 55.26 ± 0.32 | 54.21 ± 0.31 |
| A3 [400, 200, 100] | SUBSET | 54.58 ± 0.15 | 54.57 ± 0.34 |
| A3 [400, 200, 100] | MAJORITY KERNELS | 55.04 ± 0.12 | 54.97 ± 0.31 |

Elsewhere: ImageNet ResNet-50 (Fig. 4.3) BASELINE-LONG 76.43 ± 0.08, MK
77.20 ± 0.07, ADV-MK 77.33 ± 0.11, ENSEMBLE 78.56 ± 0.04, DISTILLED
77.05 ± 0.08; GLUE average with T5-small (Table 2) BASELINE 80.3 ± 0.12,
MK 80.9 ± 0.3. Training cost (Table 1): MK +16.67% CPU time on the fully
connected nets, +9.24% TPU time on ResNet-50, +0.85% on T5; an ensemble of
3 costs +300%.
"""  # noqa: E501


def _load(source):
    with open(os.path.join(source, "results.json")) as f:
        return json.load(f)


def _inside(value, row):
    mean, half = row["test_accuracy_mean"], row["test_accuracy_ci"]
    return mean - half <= value <= mean + half


def _standard_error(row):
    # The 95% Student-t half-width back to a standard error.
    return row["test_accuracy_ci"] / stats.t.ppf(0.975, row["seeds"] - 1)


def _backends_differ(rows, name):
    """The largest gap between two backends' means, and whether any pair
    differs at the 5% level (two-sided z test on the two seed means,
    Bonferroni-corrected over the pairs)."""
    pairs = [(a, b) for i, a in enumerate(rows) for b in rows[i + 1 :]]
    level = 0.05 / max(1, len(pairs))
    gaps, differ = [], False
    for a, b in pairs:
        gap = a[name]["test_accuracy_mean"] - b[name]["test_accuracy_mean"]
        spread = np.hypot(_standard_error(a[name]), _standard_error(b[name]))
        gaps.append(abs(gap))
        differ |= 2 * stats.norm.sf(abs(gap) / spread) < level
    return max(gaps), differ


def pooled(runs, index=0):
    """The comparison `index` pooled over every backend's seeds.

    Returns:
        `(mean, low, high, verdict, seeds)`: the mean paired difference of
        all backends' seeds, its 95% percentile bootstrap interval (10,000
        resamples, `random_state=0`) and the verdict read from it;
        "inconclusive" when any backend's comparison was.
    """
    rows = [run["paired"][index] for run in runs]
    differences = np.concatenate([row["differences"] for row in rows])
    interval = stats.bootstrap(
        (differences,),
        np.mean,
        n_resamples=10000,
        method="percentile",
        random_state=0,
    ).confidence_interval
    low, high = float(interval.low), float(interval.high)
    if any(row["verdict"] == "inconclusive" for row in rows):
        verdict = "inconclusive"
    elif low > 0:
        verdict = "better"
    elif high < 0:
        verdict = "worse"
    else:
        verdict = "no detectable difference"
    return float(differences.mean()), low, high, verdict, len(differences)


def agreement(runs, heading, command):
    """The backend-agreement section: the same command on every backend.

    Args:
        runs: `results.json` dicts of one command on different backends.
        heading: the section's title.
        command: the command, `B` standing for the backend.

    Returns:
        Markdown: per algorithm, each backend's mean and 95% interval and
        whether every mean lies inside every other backend's interval;
        per comparison, each backend's verdict and whether they are equal.
    """
    backends = [r["environment"]["backend"] for r in runs]
    rows = [{r["algorithm"]: r for r in run["summary"]} for run in runs]
    lines = [
        "| Algorithm | "
        + " | ".join(f"{b} (%, 95% CI)" for b in backends)
        + " | Each mean inside the others' intervals"
        + " | Largest gap (pts); backends differ at 5%? |",
        "| --- |" + " --- |" * (len(runs) + 2),
    ]
    for name in rows[0]:
        cells = [
            f"{100 * r[name]['test_accuracy_mean']:.2f} ± "
            f"{100 * r[name]['test_accuracy_ci']:.2f}"
            for r in rows
        ]
        inside = all(
            _inside(a[name]["test_accuracy_mean"], b[name])
            for a in rows
            for b in rows
        )
        gap, differ = _backends_differ(rows, name)
        lines.append(
            f"| {name} | "
            + " | ".join(cells)
            + f" | {'yes' if inside else 'NO'}"
            + f" | {100 * gap:.2f}; {'YES' if differ else 'no'} |"
        )
    lines += [
        "",
        "| MK minus | " + " | ".join(backends) + " | Equal |",
        "| --- |" + " --- |" * (len(runs) + 1),
    ]
    for i, row in enumerate(runs[0]["paired"]):
        verdicts = [run["paired"][i]["verdict"] for run in runs]
        cells = [
            f"{v} ({100 * run['paired'][i]['difference_mean']:+.2f})"
            for v, run in zip(verdicts, runs)
        ]
        equal = "yes" if len(set(verdicts)) == 1 else "NO"
        lines.append(
            f"| {row['versus']} | " + " | ".join(cells) + f" | {equal} |"
        )
    mean, low, high, verdict, seeds = pooled(runs)
    lines += [
        "",
        f"Pooled over the {len(runs)} backends ({seeds} seeds), MK minus "
        f"{runs[0]['paired'][0]['versus']}: {100 * mean:+.2f} "
        f"[{100 * low:+.2f}, {100 * high:+.2f}], **{verdict}**.",
    ]
    times = ", ".join(
        f"{b} {r['wall_time_s'] / 60:.1f} min" for b, r in zip(backends, runs)
    )
    return "\n".join(
        [
            f"## {heading}",
            "",
            f"`{command}`, B in "
            f"{', '.join(backends)}, one after the other on this machine "
            f"(wall time: {times}). "
            "Bit-equal runs are not expected (each backend draws its own "
            "initial weights and `p`; the data order is NumPy's, the same "
            "on every backend); the same answer is. "
            "Two runs of one distribution put each mean inside the other's "
            "95% interval only about 83% of the time, so the last column "
            "asks the direct question: do two backends' means differ more "
            "than their seeds explain (z test of the difference, "
            "Bonferroni over the pairs)? A verdict near the edge of its "
            "interval can differ between backends while the means agree; "
            "the pooled line reads all backends' seeds together.",
            "",
        ]
        + lines
        + [""]
    )


def build(sources, also=()):
    """Copies the first run's `results.md` and plots into `docs/`, adds
    the backend agreement of all runs (and of `also`, another command's
    runs on every backend) and the evidence map."""
    source = sources[0]
    runs = [_load(s) for s in sources]
    data = runs[0]
    with open(os.path.join(source, "results.md")) as f:
        body = f.read().split("\n", 1)[1]  # Without the run's title.
    img = os.path.join(HERE, "img")
    os.makedirs(img, exist_ok=True)
    for name in os.listdir(img):
        if name.endswith(".png") and name != EVIDENCE_FIGURE:
            os.remove(os.path.join(img, name))
    for name in sorted(os.listdir(source)):
        if name.endswith(".png"):
            shutil.copy(os.path.join(source, name), os.path.join(img, name))
            body = body.replace(f"]({name})", f"](img/{name})")
    options = data["options"]
    command = "python -m examples.main"
    if options.get("full"):
        command += " --full"
    command += f" --backend {data['environment']['backend']}"
    lines = [
        "# Results measured on this machine",
        "",
        f"The main job as run on the development machine: `{command}` "
        "(regenerate with it, then `python docs/build_results.py`). "
        "The protocol and what differs from the paper: "
        "[experiments.md](experiments.md).",
        body,
    ]
    if len(runs) > 1:
        lines.append(
            agreement(
                runs,
                "The same command on every backend",
                "python -m examples.main --backend B",
            )
        )
    if also:
        other = [_load(s) for s in also]
        optimizers = " ".join(other[0]["options"]["optimizers"])
        lines.append(
            agreement(
                other,
                f"The same question under {optimizers} on every backend",
                f"python -m examples.main --optimizers {optimizers} "
                "--backend B",
            )
        )
    evidence = os.path.join(HERE, "evidence", "map.md")
    if os.path.exists(evidence):
        with open(evidence) as f:
            lines += [
                "## The evidence map",
                "",
                "`python -m examples.evidence_map` (guarded main job per "
                "cell, kept in `docs/evidence/`; "
                "[experiments.md](experiments.md)):",
                "",
                f.read(),
            ]
    lines.append(PAPER)
    path = os.path.join(HERE, "results.md")
    # The reading of a run is written by hand below this marker: kept.
    kept = ""
    if os.path.exists(path):
        with open(path) as f:
            previous = f.read()
        if HAND_WRITTEN in previous:
            kept = previous[previous.index(HAND_WRITTEN) :]
    with open(path, "w") as f:
        f.write("\n".join(lines) + ("\n" + kept if kept else ""))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--source",
        nargs="+",
        default=[os.path.join(ROOT, "outputs", "main")],
        help="main-job output directories; the first is shown in full",
    )
    parser.add_argument(
        "--also",
        nargs="*",
        default=(),
        help="another command's output directories, one per backend: its "
        "backend agreement is added",
    )
    args = parser.parse_args()
    build(args.source, args.also)
    print("wrote docs/results.md and docs/img/")

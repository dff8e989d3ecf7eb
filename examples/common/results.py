"""Results of an experiment: per-run records, summaries, JSON, markdown."""

import json
import os

import numpy as np
from scipy import stats

# What the fixed-recipe scripts (ResNet, T5) say above their tables.
UNGUARDED = (
    "**Not guarded.** A fixed recipe: one learning rate and one budget "
    "for every algorithm, neither searched nor checked for being at the "
    "edge of what was tried, and no verdicts. A difference below may come "
    "from the recipe suiting one algorithm better; the main job's guards "
    "(`docs/experiments.md`) apply to the fully connected protocol only.\n\n"
)


def mean_ci(values, confidence=0.95):
    """Mean and half-width of its Student-t confidence interval.

    Args:
        values: per-seed numbers.
        confidence: the interval's coverage. Default 0.95.

    Returns:
        `(mean, half_width)`; the half-width is NaN for fewer than two
        values (no interval from one seed).
    """
    values = np.asarray(values, dtype="float64")
    mean = float(values.mean())
    if len(values) < 2:
        return mean, float("nan")
    sem = values.std(ddof=1) / np.sqrt(len(values))
    t = stats.t.ppf(0.5 + confidence / 2, len(values) - 1)
    return mean, float(t * sem)


def bootstrap_ci(differences, confidence=0.95, resamples=10000, seed=0):
    """Percentile bootstrap interval of the mean of paired differences.

    Args:
        differences: per-seed differences (e.g. MK minus BASELINE).
        confidence: the interval's coverage. Default 0.95.
        resamples: bootstrap resamples. Default 10,000.
        seed: the resampling seed (the interval is reproducible).

    Returns:
        `(low, high)`; `(d, d)` when every difference is `d`, NaNs for
        fewer than three differences (resampling two values gives only
        their range: no basis for a verdict).
    """
    differences = np.asarray(differences, dtype="float64")
    if len(differences) < 3:
        return float("nan"), float("nan")
    if np.all(differences == differences[0]):
        return float(differences[0]), float(differences[0])
    result = stats.bootstrap(
        (differences,),
        np.mean,
        confidence_level=confidence,
        n_resamples=resamples,
        method="percentile",
        rng=np.random.default_rng(seed),
    )
    interval = result.confidence_interval
    return float(interval.low), float(interval.high)


def verdict(low, high):
    """A plain reading of a confidence interval of a difference."""
    if not np.isfinite(low) or not np.isfinite(high):
        return "too few seeds"
    if low > 0:
        return "better"
    if high < 0:
        return "worse"
    return "no detectable difference"


def format_ci(mean, half_width, scale=100.0, digits=2):
    """`"91.23 ± 0.45"` (scaled, e.g. to percent); no `±` for one seed."""
    if not np.isfinite(half_width):
        return f"{mean * scale:.{digits}f} (1 seed)"
    return f"{mean * scale:.{digits}f} ± {half_width * scale:.{digits}f}"


def summarize(runs, group_keys, baseline="BASELINE"):
    """Aggregates per-seed runs into one row per group.

    Args:
        runs: list of run dicts with `group_keys`, `"algorithm"`,
            `"test_accuracy"`, `"train_accuracy"`, `"seconds_per_step"`
            and `"inference_params"`.
        group_keys: the keys that identify a setting besides the algorithm
            (e.g. `("task", "architecture")`).
        baseline: the algorithm the ratios are relative to.

    Returns:
        A list of dicts, one per (setting, algorithm) in first-seen order,
        with means, 95% confidence half-widths and ratios to the baseline
        of the same setting (None when the baseline was not run).
    """
    groups = {}
    for run in runs:
        key = tuple(run[k] for k in group_keys) + (run["algorithm"],)
        groups.setdefault(key, []).append(run)

    def mean_of(rows, name):
        values = [r[name] for r in rows if r.get(name) is not None]
        return float(np.mean(values)) if values else None

    def ratio(value, reference):
        if value is None or not reference:
            return None
        return value / reference

    summary = []
    for key, rows in groups.items():
        setting = dict(zip(group_keys, key[:-1]))
        reference = groups.get(key[:-1] + (baseline,), [])
        test_mean, test_ci = mean_ci([r["test_accuracy"] for r in rows])
        gaps = [r["train_accuracy"] - r["test_accuracy"] for r in rows]
        gap_mean, gap_ci = mean_ci(gaps)
        row = dict(setting)
        row.update(
            algorithm=key[-1],
            seeds=len(rows),
            test_accuracy_mean=test_mean,
            test_accuracy_ci=test_ci,
            generalization_gap_mean=gap_mean,
            generalization_gap_ci=gap_ci,
            seconds_per_step=mean_of(rows, "seconds_per_step"),
            step_time_ratio=ratio(
                mean_of(rows, "seconds_per_step"),
                mean_of(reference, "seconds_per_step"),
            ),
            training_params=rows[0].get("training_params"),
            inference_params=rows[0]["inference_params"],
            inference_params_ratio=ratio(
                rows[0]["inference_params"],
                reference[0]["inference_params"] if reference else None,
            ),
        )
        summary.append(row)
    return summary


def _ratio_text(value):
    return "-" if value is None else f"{value:.2f}x"


SUMMARY_COLUMNS = (
    ("Test accuracy (%, 95% CI)", lambda r: format_ci(
        r["test_accuracy_mean"], r["test_accuracy_ci"])),
    ("Train-test gap (pts)", lambda r: format_ci(
        r["generalization_gap_mean"], r["generalization_gap_ci"])),
    ("Step time", lambda r: _ratio_text(r["step_time_ratio"])),
    ("Inference params", lambda r: f"{r['inference_params']:,}"),
    ("Params", lambda r: _ratio_text(r["inference_params_ratio"])),
)  # fmt: skip


def markdown_table(rows, columns):
    """A GitHub markdown table.

    Args:
        rows: list of dicts.
        columns: list of `(header, row -> str)` pairs, or of keys.

    Returns:
        The table as a string (header, separator, one line per row).
    """
    columns = [
        c if isinstance(c, tuple) else (c, lambda r, k=c: str(r[k]))
        for c in columns
    ]
    lines = [
        "| " + " | ".join(h for h, _ in columns) + " |",
        "| " + " | ".join("---" for _ in columns) + " |",
    ]
    for row in rows:
        lines.append("| " + " | ".join(f(row) for _, f in columns) + " |")
    return "\n".join(lines)


def text_table(rows, columns):
    """The same table aligned in plain text, for the terminal."""
    columns = [
        c if isinstance(c, tuple) else (c, lambda r, k=c: str(r[k]))
        for c in columns
    ]
    cells = [[h for h, _ in columns]]
    cells += [[f(row) for _, f in columns] for row in rows]
    widths = [max(len(line[i]) for line in cells) for i in range(len(columns))]

    def line(values):
        return "  ".join(v.ljust(w) for v, w in zip(values, widths))

    rule = "-" * len(line(cells[0]))
    return "\n".join([line(cells[0]), rule] + [line(c) for c in cells[1:]])


def write_json(path, data):
    """Writes `data` as indented JSON, creating the directory."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w") as f:
        json.dump(data, f, indent=2, default=_json_default)
        f.write("\n")


def _json_default(value):
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"Not JSON serializable: {value!r}")


def write_fixed_recipe_report(output, data, columns, title):
    """Writes a fixed-recipe script's `results.json` and `results.md`.

    Args:
        output: the script's output directory.
        data: the JSON document: runs, `summary` (its rows make the table)
            and the configuration, with `data["data"]["mock"]` for a
            `--smoke` run.
        columns: `(header, row -> text)` pairs of the table.
        title: the markdown heading; `UNGUARDED` and, for mock data, a
            warning follow it.
    """
    write_json(os.path.join(output, "results.json"), data)
    title = f"# {title}\n\n" + UNGUARDED
    if data["data"]["mock"]:
        title += "**MOCK DATA** (`--smoke`): the numbers mean nothing.\n\n"
    table = markdown_table(data["summary"], columns)
    with open(os.path.join(output, "results.md"), "w") as f:
        f.write(title + table + "\n")
    print(text_table(data["summary"], columns))

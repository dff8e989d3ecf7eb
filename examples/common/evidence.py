"""The evidence map's report: table, figure and the answer paragraph."""

import os

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402

from examples.common import guards  # noqa: E402
from examples.common import results  # noqa: E402

VERDICT_COLORS = {
    "better": "tab:green",
    "worse": "tab:red",
    "no detectable difference": "tab:gray",
    "inconclusive": "tab:orange",
}
NOT_RUN = "not run"
FROM_SCRATCH = "from scratch"
FINETUNING = "fine-tuning"
# What each kind's headline compares, for the answer paragraphs.
HEADLINE_WORDS = {
    FROM_SCRATCH: "the better of BASELINE and BASELINE-LONG",
    FINETUNING: "the better of BASELINE and BASELINE-LONG (MK-LORA: the "
    "best of the three LoRA baselines)",
}


def headline(kept):
    """The headline row (MK against the better baseline) of a kept cell."""
    return _checked(kept)[0]


def _others(kept):
    return _checked(kept, headline_row=False)


def _checked(kept, headline_row=True):
    """The kept comparisons under today's guards.

    Cells kept before the budget guard looked at every seed (not only the
    selection seeds) are checked again here, from each algorithm's median
    best epoch over all seeds: a comparison where it lies in the last 10%
    of the budget becomes inconclusive, with the reason. A "no detectable
    difference" whose seeds detect only large differences says so.
    """
    summary = {r["algorithm"]: r for r in kept["summary"]}
    rows = []
    for row in kept["paired"]:
        if bool(row.get("headline")) != headline_row:
            continue
        versus = row["versus"]
        other = versus[versus.find("(") + 1 : -1] if "(" in versus else versus
        reasons = []
        for name in (row.get("algorithm", "MAJORITY KERNELS"), other):
            ran = summary.get(name)
            if (
                ran
                and "best_epoch_median" in ran
                and guards.still_rising(
                    [ran["best_epoch_median"]], ran["epochs"]
                )
            ):
                reasons.append(
                    f"{name}: median best epoch {ran['best_epoch_median']:g} "
                    f"of {ran['epochs']} over all {ran['seeds']} seeds (in "
                    f"the last {guards.LAST_FRACTION:.0%})"
                )
        if row["verdict"] == "no detectable difference" and not row.get(
            "reason"
        ):
            # Kept before the verdict said when it is uninformative.
            _, reason = guards.verdict(
                row["difference_low"],
                row["difference_high"],
                {},
                row["minimum_detectable"],
            )
            row = dict(row, reason=reason)
        known = row["reason"].split("; ") if row.get("reason") else []
        new = [r for r in reasons if r not in known]
        if new:
            row = dict(
                row,
                verdict="inconclusive",
                reason="; ".join(known + new),
            )
        rows.append(row)
    return rows


def _row(cell, kept, partial=0):
    kind = cell.get("kind", FROM_SCRATCH)
    if kept is None:
        state = f"{NOT_RUN} ({partial} runs kept)" if partial else NOT_RUN
        return {
            "cell": cell["name"],
            "question": cell["question"],
            "kind": kind,
            "state": state,
        }
    top = headline(kept)
    mk = next(
        r
        for r in kept["summary"]
        if r["algorithm"] == top.get("algorithm", "MAJORITY KERNELS")
    )
    return {
        "cell": cell["name"],
        "question": cell["question"],
        "kind": kind,
        "algorithm": mk["algorithm"],
        "wall_time_s": kept["wall_time_s"],
        "training_s": kept.get("training_s", kept["wall_time_s"]),
        "backend": kept["environment"]["backend"],
        "versus": top["versus"],
        "seeds": top["seeds"],
        "difference": top["difference_mean"],
        "low": top["difference_low"],
        "high": top["difference_high"],
        "detectable": top["minimum_detectable"],
        "verdict": top["verdict"],
        "reason": top["reason"],
        "mk_guards": mk["search"]["guards"],
        "others": [
            f"{r['versus']}: {r['verdict']} ({100 * r['difference_mean']:+.2f})"
            + (f" [{r['reason']}]" if r.get("reason") else "")
            for r in _others(kept)
            if "BASELINE" not in r["versus"]
            and r.get("algorithm", mk["algorithm"]) == mk["algorithm"]
        ],
    }


def _cells(row, key, formatter):
    return "-" if "verdict" not in row else formatter(row[key])


COLUMNS = (
    ("Cell", lambda r: f"`{r['cell']}`"),
    ("Question", lambda r: r["question"]),
    ("Kind", lambda r: r["kind"]),
    ("MK minus", lambda r: _cells(r, "versus", lambda v: (
        v if r["algorithm"] == "MAJORITY KERNELS"
        else f"{r['algorithm']} minus {v}"))),
    ("Seeds", lambda r: _cells(r, "seeds", str)),
    ("Difference (pts, 95% CI)", lambda r: _cells(r, "difference", lambda d: (
        f"{100 * d:+.2f} [{100 * r['low']:+.2f}, {100 * r['high']:+.2f}]"))),
    ("Detectable (pts)", lambda r: _cells(
        r, "detectable", lambda d: f"{100 * d:.2f}")),
    ("Verdict for MK", lambda r: r["state"] if "verdict" not in r else (
        f"**{r['verdict']}**" + (f": {r['reason']}" if r["reason"] else ""))),
    ("MK's guards", lambda r: _cells(r, "mk_guards", str)),
    ("Other algorithms", lambda r: _cells(
        r, "others", lambda o: "; ".join(o) or "-")),
    ("Wall time (training, all runs)", lambda r: _cells(
        r, "wall_time_s", lambda s: (
            f"{s / 60:.0f} min ({r['training_s'] / 60:.0f} min, "
            f"{r['backend']})"))),
)  # fmt: skip


def answer(rows, kind=FROM_SCRATCH):
    """One plain paragraph: what the finished cells of `kind` say."""
    rows = [r for r in rows if r.get("kind", FROM_SCRATCH) == kind]
    run = [r for r in rows if "verdict" in r]
    if not run:
        return f"No {kind} cell of the map has finished yet: no answer."
    by = {v: [r for r in run if r["verdict"] == v] for v in VERDICT_COLORS}
    names = {v: ", ".join(f"`{r['cell']}`" for r in by[v]) for v in by}
    parts = [
        f"{len(run)} of {len(rows)} cells have finished "
        f"({len(rows) - len(run)} not run)."
    ]
    if by["better"]:
        parts.append(
            f"MK beat {HEADLINE_WORDS[kind]} in {len(by['better'])} "
            f"({names['better']})."
        )
    else:
        parts.append(
            f"In none did MK beat {HEADLINE_WORDS[kind]} with the guards "
            "held: nowhere we could measure, so far."
        )
    if by["no detectable difference"]:
        detectable = [r["detectable"] for r in by["no detectable difference"]]
        low, high = 100 * min(detectable), 100 * max(detectable)
        span = (
            f"{low:.1f}"
            if f"{low:.1f}" == f"{high:.1f}"
            else (f"{low:.1f}-{high:.1f}")
        )
        parts.append(
            "No detectable difference in "
            f"{len(by['no detectable difference'])} "
            f"({names['no detectable difference']}; their seeds would "
            f"have detected differences of {span} points)."
        )
    if by["worse"]:
        parts.append(f"MK was worse in {len(by['worse'])} ({names['worse']}).")
    if by["inconclusive"]:
        parts.append(
            f"Inconclusive in {len(by['inconclusive'])} "
            f"({names['inconclusive']}): a guard did not hold, see the "
            "table for which."
        )
    return " ".join(parts)


def plot(rows, path):
    """One row per cell: the headline difference and its 95% interval,
    coloured by verdict; cells not run are labelled so."""
    figure, axis = plt.subplots(figsize=(8, max(3.0, 0.45 * len(rows) + 1.5)))
    for y, row in enumerate(rows):
        if "verdict" not in row:
            axis.text(
                0,
                y,
                NOT_RUN,
                va="center",
                ha="center",
                fontsize=8,
                bbox={"facecolor": "white", "edgecolor": "none"},
            )
            continue
        color = VERDICT_COLORS[row["verdict"]]
        d, low, high = (100 * row[k] for k in ("difference", "low", "high"))
        axis.errorbar(
            d,
            y,
            xerr=[[d - low], [high - d]],
            fmt="o",
            color=color,
            capsize=3,
        )
        axis.annotate(
            f"{d:+.2f} ({row['verdict']})",
            (high, y),
            xytext=(4, 0),
            textcoords="offset points",
            va="center",
            fontsize=7,
            color=color,
        )
    axis.axvline(0, color="gray", linewidth=0.8)
    for y in range(1, len(rows)):
        if rows[y]["kind"] != rows[y - 1]["kind"]:
            axis.axhline(y - 0.5, color="black", linewidth=0.8, ls="--")
    axis.set_yticks(
        range(len(rows)),
        [f"{r['cell']} ({r['kind']})" for r in rows],
        fontsize=8,
    )
    axis.set_ylim(len(rows) - 0.5, -0.5)  # First cell on top.
    axis.set_xlabel(
        "MK minus the better baseline (MK-LORA: the best LoRA baseline), "
        "test accuracy (points, 95% CI)"
    )
    axis.grid(alpha=0.3, axis="x")
    for verdict, color in VERDICT_COLORS.items():
        axis.plot([], [], "o", color=color, label=verdict)
    axis.legend(fontsize=7, loc="lower right")
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    figure.savefig(path, dpi=100, bbox_inches="tight")
    plt.close(figure)


def write_report(cells, finished, directory, partial=lambda name: 0):
    """Writes `map.md` (table and answer) and `../img/evidence_map.png`.

    Args:
        cells: the map's cells (`name`, `question`), in order.
        finished: `name -> kept results or None`.
        directory: where `map.md` goes (`docs/evidence`).
        partial: `name -> runs kept of an unfinished cell`.
    """
    rows = [
        _row(cell, finished(cell["name"]), partial(cell["name"]))
        for cell in cells
    ]
    image = os.path.join(os.path.dirname(directory), "img", "evidence_map.png")
    plot(rows, image)
    total = sum(r.get("wall_time_s", 0) for r in rows)
    text = [
        results.markdown_table(rows, COLUMNS),
        "",
        f"Wall time of the finished cells: {total / 3600:.1f} h in all.",
        "",
        "![evidence_map.png](img/evidence_map.png)",
        "",
        "Each row a cell, MK minus the better of BASELINE and BASELINE-LONG "
        "(MK-LORA minus the best of LORA, LORA-LONG and LORA (rank e x r)): "
        "the headline comparison, mean over seeds and 95% bootstrap "
        "interval, coloured by verdict (orange: inconclusive, a guard did "
        "not hold). Cells trained from scratch first, then fine-tuning "
        "cells (below the dashed line), which start every algorithm of a "
        "seed from that seed's pretrained checkpoint.",
        "",
        "### When does MK help from scratch?",
        "",
        answer(rows, FROM_SCRATCH),
        "",
        "### When does MK help when fine-tuning?",
        "",
        answer(rows, FINETUNING),
        "",
    ]
    os.makedirs(directory, exist_ok=True)
    with open(os.path.join(directory, "map.md"), "w") as f:
        f.write("\n".join(text))
    print(f"wrote {directory}/map.md and {image}")

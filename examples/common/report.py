"""The protocol's report: tables for the terminal and `results.md`, plots."""

import os

import numpy as np

from examples.common import guards
from examples.common import plots
from examples.common import results
from examples.common.datasets import REFERENCES


def _setting(row):
    return f"{row['dataset']} {row['topology']} {row['optimizer']}"


def _p_stats(row):
    if "p_deviation" not in row:
        return "-"
    return f"{row['p_deviation']:.3f} / {row['p_mixing_u']:.3f}"


def _grid(row):
    grid = row["search"]["grid"]
    return f"{min(grid)}..{max(grid)} ({len(grid)})"


def _verdict(row):
    if not row["reason"]:
        return row["verdict"]
    return f"{row['verdict']}: {row['reason']}"


SUMMARY_COLUMNS = (
    ("Setting", _setting),
    ("Algorithm", lambda r: r["algorithm"]),
    ("lr", lambda r: f"{r['learning_rate']:.3g}"),
    ("Grid i (points)", _grid),
    ("Guards", lambda r: r["search"]["guards"]),
    ("Epochs (best, median)", lambda r: (
        f"{r['epochs']} ({r['best_epoch_median']:.0f})")),
    ("Test accuracy (%, 95% CI)", lambda r: results.format_ci(
        r["test_accuracy_mean"], r["test_accuracy_ci"])),
    ("Train-test gap (pts)", lambda r: results.format_ci(
        r["gap_mean"], r["gap_ci"])),
    ("Inference params", lambda r: f"{r['inference_params']:,}"),
    ("Mean \\|p_adv - 1/e\\| / u", _p_stats),
)  # fmt: skip

PAIRED_COLUMNS = (
    ("Setting", _setting),
    ("MK", lambda r: r["algorithm"]),
    ("minus", lambda r: r["versus"]),
    ("Seeds", lambda r: str(r["seeds"])),
    ("Mean difference (pts)", lambda r: f"{100 * r['difference_mean']:+.2f}"),
    ("95% bootstrap CI", lambda r: "-" if r["seeds"] < 3 else (
        f"[{100 * r['difference_low']:+.2f}, "
        f"{100 * r['difference_high']:+.2f}]")),
    ("Detectable (pts)", lambda r: f"{100 * r['minimum_detectable']:.2f}"),
    ("Verdict for MK", _verdict),
)  # fmt: skip


def text_tables(data):
    """The summary and paired tables for the terminal."""
    lines = [
        results.text_table(data["summary"], SUMMARY_COLUMNS),
        "",
        results.text_table(data["paired"], PAIRED_COLUMNS),
    ]
    for name in data["options"]["datasets"]:
        if name in REFERENCES:
            lines.append(f"{name} reference: {REFERENCES[name]}")
    return "\n".join(lines)


def write_plots(data, output):
    """Writes the PNG plots; returns `(file, caption)` pairs."""
    figures = []
    settings = list(
        dict.fromkeys(
            (r["dataset"], r["topology"], r["optimizer"]) for r in data["runs"]
        )
    )
    for setting in settings:
        name = "_".join(setting)
        title = " ".join(setting)
        sweeps = [
            r
            for r in data["sweeps"]
            if (r["dataset"], r["topology"], r["optimizer"]) == setting
        ]
        runs = [
            r
            for r in data["runs"]
            if (r["dataset"], r["topology"], r["optimizer"]) == setting
        ]
        plots.plot_learning_rate_selection(
            sweeps, f"{output}/lr_{name}.png", title
        )
        figures.append(
            (
                f"lr_{name}.png",
                f"{title}: validation (left) and test (right) accuracy at "
                "the best validation epoch, mean over the selection seeds, "
                "for every learning rate of each algorithm's final grid at "
                "its final budget; the star marks the rate chosen on "
                "validation.",
            )
        )
        plots.plot_learning_curves(runs, f"{output}/curves_{name}.png", title)
        figures.append(
            (
                f"curves_{name}.png",
                f"{title}: test (left) and inference-mode train (right) "
                "accuracy per epoch at each algorithm's chosen rate; line: "
                "mean over seeds, band: 95% Student-t confidence interval "
                "of that mean. Long algorithms run `e` times as many "
                "epochs.",
            )
        )
    plots.plot_paired_seeds(data["runs"], f"{output}/seeds_mk_vs_baseline.png")
    figures.append(
        (
            "seeds_mk_vs_baseline.png",
            "Test accuracy of MAJORITY KERNELS (y) against BASELINE (x), "
            "or MK-LORA against LORA, one point per seed (labelled), at "
            "each one's chosen rate and best validation epoch; above the "
            "grey diagonal MK won that seed.",
        )
    )
    return figures


def _finetuning(data):
    """The fine-tuning section: each pair, the pretraining, the
    checkpoints."""
    if "pairs" not in data:
        return []
    lines = [
        "## Fine-tuning: source and target tasks",
        "",
        "Per seed, one plain model is pretrained on the source task "
        f"(Adam, fixed rate and budget: {data['pretraining_recipe']}) and "
        "every algorithm of that seed starts from it; MK is "
        "`keras_mk.clone_model` of it (its outputs equal the "
        "checkpoint's), the LoRA algorithms train the adapters and the "
        "head only.",
        "",
    ]
    for name, pair in data["pairs"].items():
        lines.append(
            f"- **{name}**: {pair['shift']}; source {pair['source']}, "
            f"target {pair['target']}"
            + (
                f"; corpus digest `{pair['corpus']['sha256']}` of "
                f"{pair['corpus']['versions']}"
                if "corpus" in pair
                else ""
            )
            + "."
        )
    for setting, records in data["checkpoints"].items():
        accuracies = [
            r.get("val_accuracy", r["train_accuracy"]) for r in records
        ]
        lines.append(
            f"- checkpoints of {setting}: {len(records)} seeds, source "
            f"accuracy {100 * np.mean(accuracies):.1f}% (mean)."
        )
    return lines + [""]


def markdown(data, figures, image_prefix=""):
    """The body of `results.md`."""
    options, env = data["options"], data["environment"]
    lines = [
        f"Measured with Keras {env['keras']} on the **{env['backend']}** "
        f"backend, {env['cpu_count']} CPUs ({env['platform']}); wall time "
        f"{data['wall_time_s']:.0f} s. Datasets: "
        + ", ".join(
            f"{name} ({sizes['train']} train / {sizes['validation']} "
            f"validation / {sizes['test']} test)"
            for name, sizes in data["data"].items()
        )
        + f". Topologies {', '.join(options['topologies'])}; optimizers "
        f"{', '.join(options['optimizers'])}; learning rates "
        f"`base * 1.5**i`, starting grid i in "
        f"{list(options['lr_exponents'])}; {options['seeds']} seeds, the "
        f"rate chosen on the mean validation accuracy of the first "
        f"{min(options['selection_seeds'], options['seeds'])}; BASELINE "
        f"{options['epochs']} epochs (long algorithms "
        f"{options['expansion']}x) to start, batch "
        f"{options['batch_size']}; e = {options['expansion']}; ADV-MK "
        f"epsilon {options['adversarial_epsilon']} (scale-free step, "
        f"{'D.1' if options['adversarial_only'] else 'D.2'}).",
        "",
        "Test accuracy is read at the epoch of best validation accuracy; "
        "mean and 95% Student-t confidence interval over seeds. The "
        "train-test gap is the inference-mode accuracy on 1,000 training "
        "examples (their labels as trained on) minus test accuracy at that "
        "epoch. **Guards** (`examples/common/guards.py`): the grid grows "
        "on a side by one point of its own step (ratio "
        f"{guards.GRID_RATIO} or a power of it), at most "
        f"{guards.MAX_EXTRA_POINTS} beyond the starting grid, while the "
        "chosen rate is that end of the grid or that end is not clearly "
        f"lower (by more than {guards.CLEARLY_LOWER:g} standard errors of "
        "the difference of the seed means); while the median "
        "best-validation epoch is in the last "
        f"{guards.LAST_FRACTION:.0%} of the budget, the budget grows "
        f"{guards.BUDGET_STEP}x, at most {guards.MAX_BUDGET_FACTOR}x (the "
        "grid is then the chosen rate and its neighbours). `Grid i` is the "
        "final grid's range of `i` (and its number of points), `Epochs` "
        "the final budget and the median best epoch; `Guards` says whether "
        "both held and what they extended. The last column is ADV-MK's "
        "measured mean `|p_adv - 1/e|` and mean mixing weight `u` after "
        "training (0 / 0 would mean ADV-MK is MK).",
        "",
        results.markdown_table(data["summary"], SUMMARY_COLUMNS),
        "",
    ]
    lines += _finetuning(data)
    for name in options["datasets"]:
        if name in REFERENCES:
            lines += [f"Reference for {name}: {REFERENCES[name]}.", ""]
    lines += [
        "## MAJORITY KERNELS against each algorithm, seed by seed",
        "",
        "Per seed, MK's test accuracy minus the other algorithm's (each at "
        "its own chosen learning rate and budget); mean, 95% percentile "
        "bootstrap interval of the mean (10,000 resamples) and the verdict: "
        "**better** / **worse** when the interval excludes 0, otherwise "
        "**no detectable difference**; **inconclusive** (with the reason) "
        "whenever a guard failed for either algorithm, or below 3 seeds. "
        "The first row is the headline: MK against the better of BASELINE "
        "and BASELINE-LONG (MK-LORA against the best of LORA, LORA-LONG "
        "and LORA (rank e x r)), on mean validation accuracy. A seed that "
        "diverged at an algorithm's rate (outputs not finite, or best "
        "validation accuracy within "
        f"{100 * guards.CHANCE_MARGIN:.0f} points of chance) makes every "
        "comparison with that algorithm inconclusive. `Detectable` is "
        "the smallest mean difference these seeds detect with 80% power "
        "at the 5% level: `2.8 * sd(paired differences) / sqrt(seeds)` "
        "(normal approximation, 2.8 = 1.96 + 0.84).",
        "",
        results.markdown_table(data["paired"], PAIRED_COLUMNS),
        "",
    ]
    if data["exports"]:
        lines += ["## Deployed MK model (collapsed)", ""]
        for export in data["exports"]:
            lines.append(
                f"- `{os.path.basename(export['keras'])}` and "
                f"`{os.path.basename(export['tflite'])}` "
                f"({export['tflite_bytes']:,} bytes); max |LiteRT - Keras| "
                f"= {export['max_abs_diff_vs_keras']:.1e} on 32 test inputs."
            )
        lines.append("")
    lines += ["## Plots", ""]
    for name, caption in figures:
        lines += [f"![{name}]({image_prefix}{name})", "", caption, ""]
    return "\n".join(lines)

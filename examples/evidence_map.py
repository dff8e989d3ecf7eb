"""The evidence map: where does Majority Kernels help, on guarded verdicts?

Runs the main job (`examples.main`, guards on) on a list of cells, one
process per cell, most informative first: MNIST-1D with 10,000 samples,
A1-A3 x Adam/SGD with e = 3 (MK against the better of BASELINE and
BASELINE-LONG, 10 seeds), e = 2 and 5 on one cell, MNIST-1D's small CNN,
then ENSEMBLE, DISTILLED, SUBSET and ADV-MK on the A3 cells, then other
datasets. A finished cell's results (summary, paired comparisons with
their per-seed differences, searches, wall time; no curves) are written to
`docs/evidence/<cell>.json`, kept in the repository: a stopped map resumes
from its finished cells, and an interrupted cell from its finished runs
(`docs/evidence/runs/<cell>/runs.jsonl`: curves, no models; commit it to
continue elsewhere; kept after the cell finishes, so that `--rerun` after
a change of the guards trains only the runs it lacks). A cell records the
wall time of the invocation that finished it and the training time of all
its runs over every invocation. `--report`
writes the map's table, figure and answer paragraph
(`docs/evidence/map.md`, `docs/img/evidence_map.png`), which
`docs/build_results.py` puts into `docs/results.md`; a cell without a file
is shown as "not run".

    python -m examples.evidence_map --list
    nice -n 10 python -m examples.evidence_map       # every unfinished cell
    python -m examples.evidence_map --cells a2-sgd-e3 --backend jax
    python -m examples.evidence_map --report
"""

import argparse
import json
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
EVIDENCE = os.path.join(ROOT, "docs", "evidence")
HEADLINE = ["--algorithms", "baseline", "baseline-long", "mk"]
OTHERS = ["--algorithms", "mk", "adv-mk", "subset", "ensemble", "distilled"]
COMMON = ["--datasets", "mnist1d", "--mnist1d-samples", "10000"]
# The demo's starting grid, i in {1, 3, 5} of the paper's: the guards
# extend it where the best rate lies beyond (on every side).
COMMON += ["--lr-exponents", "1", "3", "5", "--epochs", "40"]


def _cell(name, question, topology, optimizer, *extra, seeds=10):
    argv = COMMON + ["--topologies", topology, "--optimizers", optimizer]
    return {
        "name": name,
        "question": question,
        "argv": argv + ["--seeds", str(seeds)] + list(extra),
    }


def _finetune(name, question, pair, *extra, seeds=20):
    """A fine-tuning cell (`--finetune`): 20 seeds where runs are cheap."""
    argv = ["--finetune", "--pairs", pair, "--seeds", str(seeds), *extra]
    return {"name": name, "question": question, "argv": argv,
            "kind": "fine-tuning"}  # fmt: skip


# Most informative first: the setting the issue found unguarded, then one
# cell per topology, then the other optimizer, e, the CNN, the other
# algorithms (5 seeds), the other datasets.
CELLS = [
    _cell("a2-sgd-e3", "MK's SGD rate is lr/e", "A2", "sgd", *HEADLINE),
    _cell("a1-adam-e3", "the demo's cell, 10k samples", "A1", "adam",
          *HEADLINE),
    _cell("a3-adam-e3", "the widest MLP", "A3", "adam", *HEADLINE),
    _cell("a2-adam-e3", "A2 under Adam", "A2", "adam", *HEADLINE),
    _cell("a1-sgd-e3", "A1 under SGD", "A1", "sgd", *HEADLINE),
    _cell("a3-sgd-e3", "A3 under SGD", "A3", "sgd", *HEADLINE),
    _cell("a1-adam-e2", "e = 2", "A1", "adam", *HEADLINE, "--expansion",
          "2"),
    _cell("a1-adam-e5", "e = 5", "A1", "adam", *HEADLINE, "--expansion",
          "5"),
    _cell("cnn-adam-e3", "a convolutional net", "CNN", "adam", *HEADLINE),
    _cell("a3-adam-others", "MK against the other algorithms", "A3",
          "adam", *OTHERS, seeds=5),
    _cell("a3-sgd-others", "MK against the other algorithms", "A3", "sgd",
          *OTHERS, seeds=5),
    {
        "name": "digits-noisy-a1-adam",
        "question": "label noise",
        "argv": ["--datasets", "digits-noisy", "--topologies", "A1",
                 "--optimizers", "adam", "--seeds", "10", *HEADLINE],
    },
    {
        "name": "mnist1d-5k-a1-adam",
        "question": "less data (5,000 samples)",
        "argv": ["--topologies", "A1", "--optimizers", "adam",
                 "--lr-exponents", "1", "3", "5", "--epochs", "40",
                 "--seeds", "10", *HEADLINE],
    },
    _finetune("ft-mnist1d-a1", "fine-tuning an MLP: MNIST-1D, shifted",
              "mnist1d-shift", "--topologies", "A1"),
    _finetune("ft-mnist1d-cnn", "fine-tuning a CNN: MNIST-1D, shifted",
              "mnist1d-shift", "--topologies", "CNN"),
    _finetune("ft-digits-a1", "fine-tuning an MLP: digits 0-4 to 5-9",
              "digits-5to9", "--topologies", "A1"),
    _finetune("ft-docstrings-lora", "LoRA on a tiny GPT-2: which package",
              "docstrings", seeds=10),
]  # fmt: skip
# What a cell keeps of `results.json` (not the runs' curves).
KEPT = ("options", "environment", "data", "wall_time_s", "summary")
KEPT += ("pairs", "pretraining_recipe", "checkpoints")  # Fine-tuning cells.


def cell_path(name):
    """Where a finished cell's results are kept."""
    return os.path.join(EVIDENCE, f"{name}.json")


def partial_path(name):
    """Where a cell keeps its finished runs (`--resume`): kept after the
    cell finishes too, so that a rerun (`--rerun`, e.g. after a guard
    changed) trains only the runs it did not have."""
    return os.path.join(EVIDENCE, "runs", name)


def partial_runs(name):
    """How many runs an unfinished cell has kept."""
    path = os.path.join(partial_path(name), "runs.jsonl")
    if not os.path.exists(path):
        return 0
    with open(path) as f:
        return sum(1 for line in f if line.strip())


def finished(name):
    """The kept results of cell `name`, or None if it was not run."""
    path = cell_path(name)
    if not os.path.exists(path):
        return None
    with open(path) as f:
        return json.load(f)


def run_cell(cell, backend, output):
    """Runs one cell in its own process; keeps its results."""
    directory = os.path.join(output, cell["name"])
    partial = partial_path(cell["name"])
    command = [sys.executable, "-m", "examples.main", *cell["argv"]]
    command += ["--backend", backend, "--output", directory]
    command += ["--no-export", "--no-progress", "--resume", partial]
    print(f"[{time.strftime('%H:%M:%S')}] {cell['name']}:", *command[1:])
    sys.stdout.flush()
    subprocess.run(command, cwd=ROOT, check=True)
    with open(os.path.join(directory, "results.json")) as f:
        data = json.load(f)
    kept = {key: data[key] for key in KEPT if key in data}
    kept.update(
        training_s=_training_seconds(partial),
        cell=cell["name"],
        question=cell["question"],
        argv=cell["argv"],
        paired=data["paired"],
        sweeps=data["sweeps"],
    )
    os.makedirs(EVIDENCE, exist_ok=True)
    with open(cell_path(cell["name"]), "w") as f:
        json.dump(kept, f, indent=1)
        f.write("\n")
    print(f"kept {cell_path(cell['name'])} ({data['wall_time_s']:.0f} s)")


def _training_seconds(partial):
    """Training seconds of every run of the cell, over every invocation
    (the kept runs' `seconds`: compilation and evaluation included)."""
    from examples.common.run_store import RunStore

    store = RunStore(partial)
    return sum(record["seconds"] for record in store.records.values())


def parse_args(argv=None):
    """Parses the command line (see `--help`)."""
    parser = argparse.ArgumentParser(
        prog="python -m examples.evidence_map",
        description=__doc__.split("\n\n")[0],
    )
    parser.add_argument(
        "--cells",
        nargs="+",
        choices=[c["name"] for c in CELLS],
        default=None,
        help="default: every cell without kept results, in map order",
    )
    parser.add_argument("--backend", default="jax")
    parser.add_argument("--output", default="outputs/evidence_map")
    parser.add_argument(
        "--rerun", action="store_true", help="run cells already kept too"
    )
    parser.add_argument("--list", action="store_true", help="list the cells")
    parser.add_argument(
        "--report", action="store_true", help="write map.md and the figure"
    )
    return parser.parse_args(argv)


def main(argv=None):
    """Runs the unfinished cells (or lists them, or reports)."""
    args = parse_args(argv)
    if args.list:
        for cell in CELLS:
            state = "kept" if finished(cell["name"]) else "not run"
            print(f"{cell['name']:22} {state:8} {' '.join(cell['argv'])}")
        return 0
    if args.report:
        from examples.common import evidence

        evidence.write_report(CELLS, finished, EVIDENCE, partial_runs)
        return 0
    names = args.cells or [c["name"] for c in CELLS]
    for cell in CELLS:
        if cell["name"] in names and (args.rerun or not finished(cell["name"])):
            run_cell(cell, args.backend, args.output)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Coverage of KerasHub tasks with their preprocessors, on this backend.

Runs `tests/conversion/test_keras_hub_tasks.py` with `--all-families` (CI
runs each family's whole path on one backend only) and records, per task
family, whether the converted and collapsed task keep the preprocessor
(cheap) and whether the whole user path passes: `fit` on raw inputs,
`generate`, `keras_mk.save_model` round trip, collapsed preset loaded in a
fresh process without keras_mk.

    KERAS_BACKEND=torch python -m benchmarks.hub_task_coverage
    python -m benchmarks.conversion_coverage --update-docs  # the table

Writes `benchmarks/results/hub_tasks_<backend>.json`.
"""

import os
import re
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ElementTree
from importlib import metadata

from benchmarks import common

TEST_FILE = os.path.join("tests", "conversion", "test_keras_hub_tasks.py")
CHECKS = {
    "test_converted_and_collapsed_task_keep_their_preprocessor": "keep",
    "test_keras_hub_task_trains_generates_and_ships_as_a_preset": "full",
}
# family -> (KerasHub task, what its preprocessor keeps)
FAMILIES = {
    "text_classifier": ("TextClassifier: `BertTextClassifier`", "WordPiece"),
    "masked_lm": ("MaskedLM: `BertMaskedLM`", "WordPiece"),
    "gpt2_causal_lm": ("CausalLM: `GPT2CausalLM`", "byte-pair + merges"),
    "gemma_causal_lm": ("CausalLM: `GemmaCausalLM`", "SentencePiece"),
    "bart_seq2seq_lm": ("Seq2SeqLM: `BartSeq2SeqLM`", "byte-pair + merges"),
    "image_classifier": (
        "ImageClassifier: `ResNetImageClassifier`",
        "image converter",
    ),
}


def parse_junit(path):
    """`{family: {check: {"status", "seconds"}}}` from a pytest JUnit file."""
    results = {}
    for case in ElementTree.parse(path).getroot().iter("testcase"):
        match = re.match(r"(\w+)\[(\w+)\]$", case.get("name", ""))
        if not match or match.group(1) not in CHECKS:
            continue
        test, family = match.groups()
        if case.find("skipped") is not None:
            continue
        failed = any(case.find(t) is not None for t in ("failure", "error"))
        results.setdefault(family, {})[CHECKS[test]] = {
            "status": "fail" if failed else "pass",
            "seconds": round(float(case.get("time", 0.0)), 1),
        }
    return results


def run(backend):
    """Runs the task tests on `backend`; returns the results dict."""
    with tempfile.TemporaryDirectory() as directory:
        junit = os.path.join(directory, "junit.xml")
        start = time.time()
        subprocess.run(
            [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"]
            + [TEST_FILE, "--all-families", f"--junitxml={junit}"],
            env=dict(os.environ, KERAS_BACKEND=backend),
            check=False,
        )
        return {
            "backend": backend,
            "date": time.strftime("%Y-%m-%d"),
            "keras_hub_version": metadata.version("keras-hub"),
            "wall_s": round(time.time() - start),
            "families": parse_junit(junit),
        }


def _cell(result):
    if result is None:
        return "not run"
    return f"{result['status']} ({result['seconds']:.0f} s)"


def table_lines():
    """The docs section: one row per family, one column per backend."""
    runs = common.read_results("hub_tasks")
    lines = [
        "## KerasHub tasks with their preprocessors",
        "",
        "Each task is built from a tiny config with its preprocessor, its "
        "tokenizer made offline (a WordPiece list, a byte-pair vocabulary "
        "with merges, a SentencePiece proto trained with the "
        "`sentencepiece` package), saved with `save_to_preset` and loaded "
        "back with `from_preset`, as KerasHub users load a task. **keep**: "
        "`keras_mk.clone_model` and `keras_mk.collapse` keep the "
        "preprocessor (same vocabulary, same features from raw inputs) and "
        "the outputs (MK equals the original right after conversion, the "
        "collapsed task equals MK inference). **whole path**: `fit` on raw "
        "inputs, `predict`, `generate` for the language models (MK and "
        "collapsed agree, and equal the original right after conversion), "
        "`keras_mk.save_model`/`load_model`, and the collapsed task's "
        "preset loaded in a fresh process without keras_mk with the same "
        "outputs. Time per check in brackets (noisy: the other core was "
        "busy). Regenerate with `KERAS_BACKEND=<backend> python -m "
        "benchmarks.hub_task_coverage`, then `python -m "
        "benchmarks.conversion_coverage --update-docs`. CI runs **keep** "
        "for every task on every backend and **whole path** for each task "
        "on one backend.",
        "",
    ]
    backends = [b for b in common.BACKENDS if b in runs]
    header = ["task", "preprocessor keeps"]
    for backend in backends:
        run_info = runs[backend]
        header += [
            f"keep, {backend}",
            f"whole path, {backend} ({run_info['date']}, KerasHub "
            f"{run_info.get('keras_hub_version', 'unrecorded')})",
        ]
    lines += ["| " + " | ".join(header) + " |"]
    lines += ["|" + "---|" * len(header)]
    for family, (task, keeps) in FAMILIES.items():
        cells = [task, keeps]
        for backend in backends:
            found = runs[backend]["families"].get(family, {})
            cells += [_cell(found.get("keep")), _cell(found.get("full"))]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def main():
    import keras

    backend = keras.backend.backend()
    common.write_json(run(backend), common.result_path("hub_tasks", backend))


if __name__ == "__main__":
    main()

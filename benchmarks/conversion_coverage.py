"""Conversion coverage: every `keras.applications` model and KerasHub models.

Runs `keras_mk.testing.check_model` (convert, compare, one `fit` step with
`jit_compile=False`: a single step does not pay for an XLA compilation,
collapse, reload in a fresh process) on each model, random weights, the
smallest input it accepts, on the current backend.

    KERAS_BACKEND=jax python -m benchmarks.conversion_coverage
    python -m benchmarks.conversion_coverage --update-docs  # after 3 runs
    python -m benchmarks.conversion_coverage --published  # shares, any backend

A run skips the models its backend's JSON file already holds (delete the
file to start over).

Each run writes `benchmarks/results/coverage_<backend>.json`;
`--update-docs` turns the three into the table in `docs/coverage.md`.
`--published` measures the simulated share of KerasHub backbones at their
published sizes (the tiny configs' embeddings and T5's attention bias weigh
more than at real sizes) into `benchmarks/results/coverage_published.json`.
"""

import argparse
import gc
import json
import os
import time

from benchmarks import common
from benchmarks import hub_task_coverage
from keras_mk.testing import APPLICATIONS
from keras_mk.testing import FAMILIES
from keras_mk.testing import HUB_MODELS
from keras_mk.testing import TOLERANCE
from keras_mk.testing import build_application
from keras_mk.testing import build_hub
from keras_mk.testing import check_model


def lstm_text_classifier():
    """A recurrent text classifier: token table, LSTM, bidirectional GRU."""
    import keras

    tokens = keras.Input((12,), dtype="int32")
    x = keras.layers.Embedding(64, 16, mask_zero=True)(tokens)
    x = keras.layers.LSTM(16, return_sequences=True)(x)
    x = keras.layers.Bidirectional(keras.layers.GRU(8))(x)
    return keras.Model(tokens, keras.layers.Dense(2)(x))


# KerasHub backbones at the sizes of their presets (random weights, built
# from config: presets need a download), for the simulated share.
PUBLISHED = {
    "T5 (t5_small_multi)": (
        "T5Backbone",
        dict(
            vocabulary_size=32128,
            hidden_dim=512,
            intermediate_dim=2048,
            num_layers=6,
            num_heads=8,
            key_value_dim=64,
            activation="relu",
            use_gated_activation=False,
            tie_embedding_weights=True,
        ),
    ),
    "Bert (bert_base_en_uncased)": (
        "BertBackbone",
        dict(
            vocabulary_size=30522,
            num_layers=12,
            num_heads=12,
            hidden_dim=768,
            intermediate_dim=3072,
        ),
    ),
    "GPT2 (gpt2_base_en)": (
        "GPT2Backbone",
        dict(
            vocabulary_size=50257,
            num_layers=12,
            num_heads=12,
            hidden_dim=768,
            intermediate_dim=3072,
        ),
    ),
}
PUBLISHED_NAME = "coverage_published"


def published_shares(output):
    """The simulated shares of the `PUBLISHED` backbones, written as JSON."""
    import keras
    import keras_hub

    import keras_mk

    shares = {}
    for name, (class_name, config) in PUBLISHED.items():
        model = getattr(keras_hub.models, class_name)(**config)
        shares[name] = {"parameters": int(model.count_params())}
        for key, embeddings in (("default", False), ("embeddings", True)):
            mk = keras_mk.clone_model(model, expansion=2, embeddings=embeddings)
            summary = keras_mk.conversion_summary(mk)
            shares[name][key] = summary.matrix_share
            if embeddings:
                shares[name]["left_plain"] = [
                    f"{path} ({cls})" for path, cls, _ in summary.left_plain
                ]
            del mk
        del model
        keras.backend.clear_session()
        gc.collect()
    common.write_json({"models": shares}, output, indent=1)
    return shares


def _published_lines():
    path = os.path.join(common.RESULTS, PUBLISHED_NAME + ".json")
    if not os.path.exists(path):
        return ["Published sizes: not run (`--published`)."]
    with open(path) as f:
        shares = json.load(f)["models"]
    lines = [
        "**At published sizes** (`python -m benchmarks.conversion_coverage "
        "--published`: the backbones of these presets built from their "
        "configs, random weights; the tiny configs above give the "
        "embeddings and T5's relative attention bias more weight than at "
        "real sizes). Simulated share of the matrix-shaped weights, "
        "default -> with embeddings selected; what stays plain:",
        "",
        "| backbone | parameters | simulated | left plain |",
        "|---|---|---|---|",
    ]
    for name, r in shares.items():
        plain = ", ".join(r["left_plain"]) or "nothing"
        lines.append(
            f"| {name} | {r['parameters']:,} | {r['default']:.3%} -> "
            f"{r['embeddings']:.3%} | {plain} |"
        )
    return lines


# KerasHub has no recurrent model: a Keras one stands in for them.
KERAS_MODELS = {"LSTMTextClassifier": lstm_text_classifier}
# Every model of the table, in its order.
NAMES = list(APPLICATIONS) + list(HUB_MODELS) + list(KERAS_MODELS)


def run(names, output):
    import keras

    try:
        from tqdm import tqdm
    except ImportError:  # progress bars are optional
        tqdm = None
    results = {}
    if os.path.exists(output):
        with open(output) as f:
            results = json.load(f)["models"]
    # A rerun continues where a run stopped (one JSON entry per model). A
    # model still marked "running" killed the process that checked it (on
    # this project's 24 GiB VM: the kernel's out-of-memory killer): it is
    # recorded as such, not retried forever and not hidden.
    for name, entry in results.items():
        if entry.get("status") == "running":
            results[name] = {
                "status": "killed",
                "reason": "the process checking it was killed (out of "
                f"memory?) after starting at {entry['started']}",
            }
            common.write_json(_document(results), output, indent=1)
    names = [n for n in names if n not in results]
    todo = names if tqdm is None else tqdm(names, desc="models")
    for name in todo:
        start = time.perf_counter()
        results[name] = {"status": "running", "started": time.ctime()}
        common.write_json(_document(results), output, indent=1)
        try:
            if name in APPLICATIONS:
                model = build_application(name)
            elif name in KERAS_MODELS:
                model = KERAS_MODELS[name]()
            else:
                model = build_hub(name)
        except Exception as e:
            results[name] = {
                "status": "not built",
                "reason": f"{type(e).__name__}: {str(e).splitlines()[0]}",
            }
            common.write_json(_document(results), output, indent=1)
            continue
        results[name] = check_model(model, jit_compile=False)
        results[name]["seconds"] = round(time.perf_counter() - start, 1)
        if name in HUB_MODELS:
            import keras_hub

            results[name]["keras_hub"] = keras_hub.__version__
        del model
        keras.backend.clear_session()
        gc.collect()
        common.write_json(_document(results), output, indent=1)
        print(name, results[name].get("status"), flush=True)
    return results


def _document(results):
    import keras

    return {
        "backend": keras.backend.backend(),
        "keras": keras.__version__,
        "models": results,
    }


def update_docs():
    """Writes `docs/coverage.md` from the per-backend JSON files."""
    tables = {
        backend: data["models"]
        for backend, data in common.read_results("coverage").items()
    }
    shares = {}
    for backend in tables:
        for name, r in tables[backend].items():
            if "matrix_share" in r:
                shares.setdefault(name, _share_cell(r))
    lines = [
        "# Conversion coverage",
        "",
        "Every `keras.applications` constructor (random weights, the "
        "smallest input it accepts, 10 classes) and KerasHub models built "
        "from small configs, converted with `keras_mk.clone_model` on each "
        "backend. **pass** means: the MK model's outputs equal the "
        "original's right after conversion (inference and training mode, "
        "dropout rates set to 0, "
        f"relative error <= {TOLERANCE:g}), one `fit` step runs "
        "(SGD, `jit_compile=False`), "
        "`keras_mk.collapse` equals MK inference, and the collapsed `.keras` "
        "file loads in a fresh process that never imports keras_mk with "
        "the same outputs. The worst relative error of the three "
        "comparisons is shown. Regenerate with "
        "`KERAS_BACKEND=<backend> python -m benchmarks.conversion_coverage` "
        "per backend, then `python -m benchmarks.conversion_coverage "
        "--update-docs`. The test suite (`tests/conversion/"
        "test_coverage_families.py`) runs one model per family, each "
        "family on one backend (most on PyTorch, where they cost least), "
        "so every CI run covers every family once. "
        "'not run' means the run on this 2-core machine did not reach the "
        "model in the time it had; 'not built', that Keras does not offer "
        "the model on that backend (the reason is listed); 'killed', that "
        "the process checking it was killed before it finished (on this "
        "24 GiB machine, by the kernel's out-of-memory killer), and "
        "'running', a check in progress. **simulated** "
        "is the share of the matrix-shaped weights (kernels and tables; "
        "biases and norm scales left out) that the default conversion puts "
        "in MK layers, and after the arrow the share with embedding tables "
        "selected (`clone_model(..., embeddings=True)`); the same on every "
        "backend, read from the first run that measured it "
        "(`keras_mk.conversion_summary`). Each model's check time is in "
        "the results files (`seconds`; the TensorFlow and JAX columns ran "
        "side by side on 2 cores, so theirs are upper bounds). For a whole "
        "column, run one fresh process per model (`--models NAME` in a "
        "shell loop): one process checking model after model grows "
        "(TensorFlow's reached 18.8 GB by VGG16, JAX ConvNeXtXLarge was "
        "killed that way and passes alone, at 18.9 GB).",
        "",
        "| model | " + " | ".join(tables) + " | simulated |",
        "|---|" + "---|" * (len(tables) + 1),
    ]
    notes = []
    for name in NAMES:
        cells = []
        for backend in tables:
            r = tables[backend].get(name)
            if r is None:
                cells.append("not run")
                continue
            if r["status"] == "pass":
                worst = max(
                    r.get(k, 0.0)
                    for k in ("convert_error", "collapse_error", "reload_error")
                )
                hub = r.get("keras_hub")
                cells.append(
                    f"pass ({worst:.0e}"
                    + (f", KerasHub {hub}" if hub else "")
                    + ")"
                )
            else:
                reason = r.get("reason") or ", ".join(
                    f"{k} {r[k]:.1e}"
                    for k in ("convert_error", "collapse_error", "reload_error")
                    if k in r
                )
                notes.append(f"- {name} ({backend}): {reason}")
                cells.append(r["status"])
        cells.append(shares.get(name, "not run"))
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    if notes:
        lines += ["", "Reasons:", ""] + notes
    lines += [""] + _published_lines()
    lines += [""] + hub_task_coverage.table_lines()
    with open(os.path.join(common.DOCS, "coverage.md"), "w") as f:
        f.write("\n".join(lines) + "\n")


def _share_cell(result):
    cell = f"{result['matrix_share']:.1%}"
    if "matrix_share_embeddings" in result:
        cell += f" -> {result['matrix_share_embeddings']:.1%}"
    return cell


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--models",
        nargs="*",
        default=None,
        help="names to check (default: all; 'families' for one per family)",
    )
    parser.add_argument("--update-docs", action="store_true")
    parser.add_argument(
        "--published",
        action="store_true",
        help="the simulated share of KerasHub backbones at published sizes",
    )
    args = parser.parse_args(argv)
    if args.update_docs:
        update_docs()
        return
    if args.published:
        output = os.path.join(common.RESULTS, PUBLISHED_NAME + ".json")
        for name, r in published_shares(output).items():
            print(name, r)
        return
    import keras

    names = []
    for name in args.models or NAMES:
        names += list(FAMILIES) if name == "families" else [name]
    output = common.result_path("coverage", keras.backend.backend())
    run(names, output)


if __name__ == "__main__":
    main()

"""Paper Section 4.2, Appendix E, Tables 2-4: T5 fine-tuned on GLUE.

For every GLUE task from `tensorflow_datasets`: BASELINE (fine-tune a
KerasHub T5 preset, `t5_small_multi` by default), MAJORITY KERNELS (the
same preset converted with `keras_mk.clone_model(expansion=3)`, every
encoder Dense replicated, fine-tuned, deployed collapsed) and model soups
(Wortsman et al. 2022): several BASELINE fine-tunings with different seeds,
their weights averaged uniformly (SOUP-UNIFORM) and greedily (SOUP-GREEDY).
Metrics as in the paper: Matthews correlation (CoLA), F1 and accuracy
(MRPC, QQP), Pearson and Spearman (STS-B), accuracy otherwise (MNLI matched
and mismatched); the task score is their mean, the GLUE score the mean over
tasks; evaluated on the validation splits.

Simplification: the paper fine-tunes T5 text to text. Here a head (one Dense
layer: logits, or one score for STS-B) reads the encoder's mean-pooled
output; the decoder is fed a single start token and unused. MK converts the
encoder's Dense layers (attention and feed-forward). Finished runs are
appended to `<output>/runs.jsonl`: rerunning the same command resumes.

    python -m examples.t5_glue                          # all 8 tasks
    python -m examples.t5_glue --tasks rte mrpc --epochs 5 --seeds 3
    python -m examples.t5_glue --smoke          # offline, mock data
"""

import os
import sys

from examples.common import data_order
from examples.common.backend import script_parser
from examples.common.backend import select_backend
from examples.common.names import flag_names
from examples.common.names import member_seed
from examples.common.run_store import RunStore
from examples.common.tfds_data import offline_stand_in

# name -> (text features, number of outputs (1: regression), metrics,
# evaluation splits).
V = ("validation",)
TASKS = {
    "cola": (("sentence",), 2, ("matthews",), V),
    "sst2": (("sentence",), 2, ("accuracy",), V),
    "mrpc": (("sentence1", "sentence2"), 2, ("f1", "accuracy"), V),
    "qqp": (("question1", "question2"), 2, ("accuracy", "f1"), V),
    "stsb": (("sentence1", "sentence2"), 1, ("pearson", "spearman"), V),
    "mnli": (
        ("premise", "hypothesis"),
        3,
        ("accuracy",),
        ("validation_matched", "validation_mismatched"),
    ),
    "qnli": (("question", "sentence"), 2, ("accuracy",), V),
    "rte": (("sentence1", "sentence2"), 2, ("accuracy",), V),
}
ALGORITHM_FLAGS = flag_names(("baseline", "mk", "soups"))
# XLA off in smoke runs (compiling a T5 costs more than 2 steps on a CPU).
JIT_COMPILE = "auto"


def parse_args(argv=None):
    """Parses the command line (see `--help`)."""
    parser = script_parser(
        "examples.t5_glue",
        __doc__,
        "offline: TFDS mock data (rte, stsb), a tiny local T5 preset, 2 steps",
    )
    parser.add_argument(
        "--tasks",
        nargs="+",
        choices=tuple(TASKS),
        default=None,
        help="default all (rte stsb with --smoke)",
    )
    parser.add_argument(
        "--algorithms",
        nargs="+",
        choices=tuple(ALGORITHM_FLAGS),
        default=list(ALGORITHM_FLAGS),
    )
    parser.add_argument(
        "--preset",
        default=None,
        help="KerasHub T5 preset (handle or local directory); default "
        "t5_small_multi, a tiny local one with --smoke",
    )
    parser.add_argument("--expansion", type=int, default=3)
    parser.add_argument(
        "--soup-ingredients",
        type=int,
        default=None,
        help="BASELINE fine-tunings per soup (default 4; 2 with --smoke)",
    )
    parser.add_argument("--epochs", type=int, default=None, help="default 3")
    parser.add_argument("--batch-size", type=int, default=None, help="32")
    parser.add_argument("--learning-rate", type=float, default=1e-4)
    parser.add_argument(
        "--sequence-length",
        type=int,
        default=None,
        help="tokens per input (default 128; 48 with --smoke)",
    )
    parser.add_argument("--seeds", type=int, default=1)
    parser.add_argument("--max-train", type=int, default=None)
    parser.add_argument("--max-eval", type=int, default=None)
    return parser.parse_args(argv)


# --------------------------------------------------------------- metrics


def _correlation(function):
    """A scipy correlation as a metric: 0 when a side is constant."""

    def metric(labels, predictions):
        import numpy as np

        y, p = np.asarray(labels, "float64"), np.asarray(predictions, "float64")
        if y.std() == 0 or p.std() == 0:
            return 0.0
        return float(function(y, p)[0])

    return metric


def glue_metrics():
    """GLUE's metrics from scikit-learn and scipy, by name."""
    from scipy import stats
    from sklearn import metrics

    return dict(
        accuracy=metrics.accuracy_score,
        f1=metrics.f1_score,
        matthews=metrics.matthews_corrcoef,
        pearson=_correlation(stats.pearsonr),
        spearman=_correlation(stats.spearmanr),
    )


# ------------------------------------------------------------------ data


class ByteTokenizer:
    """Fallback when a preset has no tokenizer: UTF-8 bytes as token ids.

    Id 0 is padding, 1 the end of the sequence; byte `b` is
    `2 + b % (vocabulary_size - 2)`.
    """

    def __init__(self, vocabulary_size):
        self.vocabulary_size = vocabulary_size

    def __call__(self, texts):
        return [
            [2 + b % (self.vocabulary_size - 2) for b in text.encode()]
            for text in texts
        ]


def load_tokenizer(preset, vocabulary_size):
    """The preset's T5 tokenizer, or a `ByteTokenizer`."""
    import keras_hub

    try:
        tokenizer = keras_hub.models.T5Tokenizer.from_preset(preset)
    except Exception as error:  # no tokenizer in the preset
        print(f"no tokenizer in {preset} ({type(error).__name__}): bytes")
        return ByteTokenizer(vocabulary_size)

    def tokenize(texts):
        import numpy as np

        ids = tokenizer(texts)
        return [list(np.asarray(row)) + [1] for row in ids]

    return tokenize


def encode(texts, tokenize, length):
    """`T5Backbone` inputs: token ids (end token, zero padding), masks."""
    import numpy as np

    ids = np.zeros((len(texts), length), "int32")
    for i, row in enumerate(tokenize(texts)):
        row = row[: length - 1] + [1] if len(row) >= length else row
        ids[i, : len(row)] = row
    return {
        "encoder_token_ids": ids,
        "encoder_padding_mask": ids != 0,
        "decoder_token_ids": np.zeros((len(texts), 1), "int32"),
        "decoder_padding_mask": np.ones((len(texts), 1), bool),
    }


def load_task(task, split, args, tokenize):
    """`(inputs, labels)` of one GLUE split, as NumPy."""
    from examples.common.tfds_data import load_numpy

    keys, _, _, _ = TASKS[task]
    limit = args.max_train if split == "train" else args.max_eval
    columns = load_numpy(
        f"glue/{task}",
        split,
        keys + ("label",),
        data_dir=args.data_dir,
        max_examples=limit,
    )
    texts = [
        " ".join(
            f"{key}: {columns[key][i].decode('utf-8', 'replace')}"
            for key in keys
        )
        for i in range(len(columns["label"]))
    ]
    texts = [f"{task} {text}" for text in texts]
    return encode(texts, tokenize, args.sequence_length), columns["label"]


# ---------------------------------------------------------------- models


def make_tiny_preset(directory):
    """A tiny random T5 saved as a local preset (for `--smoke`)."""
    from keras_mk.testing import build_hub

    build_hub("T5", num_layers=2, dropout=0.0).save_to_preset(directory)
    return directory


def build_model(args, num_outputs, mk_seed=None):
    """The preset's backbone (MK-converted if `mk_seed`) plus a head.

    Returns:
        `(model, mk_backbone)`; `mk_backbone` is None for plain models.
    """
    import keras
    import keras_hub

    import keras_mk

    backbone = keras_hub.models.Backbone.from_preset(args.preset)
    mk_backbone = None
    if mk_seed is not None:
        backbone = mk_backbone = keras_mk.clone_model(
            backbone,
            expansion=args.expansion,
            layers=r"^transformer_encoder",
            seed=mk_seed,
        )
    inputs = {
        name: keras.Input(shape=(None,), dtype=dtype, name=name)
        for name, dtype in (
            ("encoder_token_ids", "int32"),
            ("encoder_padding_mask", "bool"),
            ("decoder_token_ids", "int32"),
            ("decoder_padding_mask", "bool"),
        )
    }
    features = backbone(inputs)["encoder_sequence_output"]
    pooled = keras.layers.GlobalAveragePooling1D()(
        features, mask=inputs["encoder_padding_mask"]
    )
    # The same head initialisation for every run: soups need a shared start.
    head = keras.layers.Dense(
        num_outputs,
        kernel_initializer=keras.initializers.GlorotUniform(seed=0),
        name="head",
    )
    return keras.Model(inputs, head(pooled)), mk_backbone


def _predict(model, inputs, num_outputs, batch_size):
    import numpy as np

    if not model.compiled:  # soups and collapsed models
        model.compile(jit_compile=JIT_COMPILE)
    outputs = model.predict(inputs, batch_size=batch_size, verbose=0)
    outputs = np.asarray(outputs)
    return outputs[:, 0] if num_outputs == 1 else outputs.argmax(-1)


def evaluate(model, task, evals, args):
    """Every metric of `task` on its evaluation splits, and the score."""
    keys, num_outputs, metrics, splits = TASKS[task]
    values = {}
    for split in splits:
        inputs, labels = evals[split]
        predictions = _predict(model, inputs, num_outputs, args.batch_size)
        suffix = "" if len(splits) == 1 else "_" + split.split("_")[-1]
        for name in metrics:
            values[name + suffix] = float(
                glue_metrics()[name](labels, predictions)
            )
    values["score"] = sum(values.values()) / len(values)
    return values


def fine_tune(model, task, train, evals, args, seed):
    """Fine-tunes with Adam; returns the per-epoch validation metrics."""
    import keras

    _, num_outputs, _, _ = TASKS[task]
    keras.utils.set_random_seed(seed)
    loss = (
        keras.losses.MeanSquaredError()
        if num_outputs == 1
        else keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    )
    model.compile(
        keras.optimizers.Adam(args.learning_rate),
        loss,
        jit_compile=JIT_COMPILE,
    )
    curve = []

    class Evaluate(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            curve.append(evaluate(model, task, evals, args))

    inputs, labels = train
    model.fit(
        # A new order every epoch on every backend (see `data_order`).
        data_order.EpochShuffled(inputs, labels, args.batch_size, seed),
        epochs=args.epochs,
        verbose=0 if args.no_progress else 1,
        callbacks=[Evaluate()],
    )
    return curve


def _record(task, algorithm, seed, model, metrics, curve, params):
    curve = [point["score"] for point in curve]
    return dict(
        task=task,
        algorithm=algorithm,
        seed=seed,
        metrics=metrics,
        score=metrics["score"],
        validation_curve=curve,
        training_params=int(params),
        inference_params=int(model.count_params()),
    )


def _ingredient(task, k, seed, data, args, store):
    """BASELINE fine-tuning `k` of `seed` (k = 0 is the BASELINE run)."""
    import keras

    key = f"{task}/ingredient/{seed}/{k}"
    path = store.model_path(key)
    if store.get(key) is not None and os.path.exists(path):
        return keras.saving.load_model(path), store.get(key)
    train, evals = data
    model, _ = build_model(args, TASKS[task][1])
    seed_k = member_seed(seed, k)
    curve = fine_tune(model, task, train, evals, args, seed_k)
    metrics = curve[-1]
    record = _record(
        task, "BASELINE", seed_k, model, metrics, curve,
        model.count_params(),
    )  # fmt: skip
    model.save(path)
    return model, store.add(key, record)


def run_task(task, args, store, tokenize, seed):
    """All algorithms of one task and seed; returns their records."""
    import keras_mk
    from keras_mk import baselines

    records = []

    def done(algorithm):
        return store.get(f"{task}/{algorithm}/{seed}")

    data = None

    def get_data():
        nonlocal data
        if data is None:
            train = load_task(task, "train", args, tokenize)
            evals = {
                split: load_task(task, split, args, tokenize)
                for split in TASKS[task][3]
            }
            data = (train, evals)
        return data

    for algorithm in args.algorithms:
        names = (
            ["SOUP-UNIFORM", "SOUP-GREEDY"]
            if algorithm == "SOUPS"
            else [algorithm]
        )
        if all(done(name) for name in names):
            records += [done(name) for name in names]
            continue
        print(f"== {task}: {algorithm}, seed {seed}", flush=True)
        train, evals = get_data()
        if algorithm == "BASELINE":
            new = [_ingredient(task, 0, seed, get_data(), args, store)[1]]
        elif algorithm == "MAJORITY KERNELS":
            model, mk_backbone = build_model(
                args, TASKS[task][1], mk_seed=1000 * seed
            )
            curve = fine_tune(model, task, train, evals, args, seed)
            deployed = keras_mk.collapse(model)
            metrics = evaluate(deployed, task, evals, args)
            new = [
                _record(
                    task,
                    algorithm,
                    seed,
                    deployed,
                    metrics,
                    curve,
                    model.count_params(),
                )  # fmt: skip
            ]
        else:
            models = [
                _ingredient(task, k, seed, get_data(), args, store)[0]
                for k in range(args.soup_ingredients)
            ]
            uniform = baselines.uniform_soup(models)
            greedy, used = baselines.greedy_soup(
                models,
                lambda m, e=evals: evaluate(m, task, e, args)["score"],
            )
            new = []
            soups = (("SOUP-UNIFORM", uniform), ("SOUP-GREEDY", greedy))
            for name, soup in soups:
                record = _record(
                    task, name, seed, soup, evaluate(soup, task, evals, args),
                    [], sum(m.count_params() for m in models),
                )  # fmt: skip
                record["ingredients"] = (
                    used if name == "SOUP-GREEDY" else list(range(len(models)))
                )
                new.append(record)
        for record in new:
            records.append(
                store.add(f"{task}/{record['algorithm']}/{seed}", record)
            )
    return records


# ---------------------------------------------------------------- output


def summarize(runs):
    """Mean and 95% CI per (task, algorithm, metric), and GLUE average."""
    import numpy as np

    from examples.common.results import mean_ci

    groups = {}
    for run in runs:
        groups.setdefault(run["algorithm"], {}).setdefault(
            run["task"], []
        ).append(run["metrics"])
    summary = []
    for algorithm, tasks in groups.items():
        row = dict(algorithm=algorithm, tasks={})
        for task, metrics in tasks.items():
            row["tasks"][task] = {
                name: dict(
                    zip(("mean", "ci"), mean_ci([m[name] for m in metrics]))
                )
                for name in metrics[0]
            }
        row["glue_average"] = float(
            np.mean([t["score"]["mean"] for t in row["tasks"].values()])
        )
        summary.append(row)
    return summary


def write_outputs(args, runs):
    """`results.json` and `results.md` (one column per task metric)."""
    from examples.common import results

    summary = summarize(runs)
    data = dict(
        experiment="t5_glue",
        paper="Majority Kernels, Section 4.2, Appendix E, Tables 2-4",
        data=dict(dataset="glue", mock=args.smoke, tasks=args.tasks),
        config=vars(args),
        runs=runs,
        summary=summary,
    )
    metric_columns = []
    for task in args.tasks:
        for name in summary[0]["tasks"].get(task, {}):
            if name != "score":
                metric_columns.append((task, name))

    def cell(row, task, name):
        value = row["tasks"].get(task, {}).get(name)
        if value is None:
            return "-"
        return results.format_ci(value["mean"], value["ci"])

    columns = [
        ("Algorithm", lambda r: r["algorithm"]),
        ("GLUE avg", lambda r: f"{100 * r['glue_average']:.2f}"),
    ] + [
        (f"{task} {name}", lambda r, t=task, n=name: cell(r, t, n))
        for task, name in metric_columns
    ]
    results.write_fixed_recipe_report(
        args.output, data, columns, "T5 on GLUE (Section 4.2, Tables 2-4)"
    )


def main(argv=None):
    """Runs the experiment; returns the process exit code."""
    args = parse_args(argv)
    select_backend(args.backend)
    smoke = args.smoke
    if smoke:
        global JIT_COMPILE
        JIT_COMPILE = False
    args.tasks = args.tasks or (["rte", "stsb"] if smoke else list(TASKS))
    args.algorithms = [ALGORITHM_FLAGS[a] for a in args.algorithms]
    args.soup_ingredients = args.soup_ingredients or (2 if smoke else 4)
    args.epochs = args.epochs or (1 if smoke else 3)
    args.batch_size = args.batch_size or (8 if smoke else 32)
    # 48 in the smoke run: the byte tokenizer spends 16 tokens on the task
    # prefix alone ("stsb sentence1: "); shorter inputs would all be equal.
    args.sequence_length = args.sequence_length or (48 if smoke else 128)
    if smoke:
        args.max_train = args.max_train or 16
        args.max_eval = args.max_eval or 16
    store = RunStore(args.output)
    if args.preset is None:
        args.preset = (
            make_tiny_preset(os.path.join(args.output, "tiny_t5_preset"))
            if smoke
            else "t5_small_multi"
        )
    import keras_hub

    vocabulary_size = keras_hub.models.Backbone.from_preset(
        args.preset
    ).vocabulary_size
    tokenize = load_tokenizer(args.preset, vocabulary_size)
    runs = []
    with offline_stand_in(smoke, num_examples=16):
        for seed in range(args.seeds):
            for task in args.tasks:
                runs += run_task(task, args, store, tokenize, seed)
    write_outputs(args, runs)
    print(f"results in {args.output}/results.json and results.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Runs the protocol over datasets, topologies and optimizers; writes it.

Used by `examples/main.py` (and `examples/fully_connected.py`, the same
protocol on CIFAR-10).
"""

import dataclasses
import os
import platform
import time
import warnings

import keras
from tqdm.auto import tqdm

import keras_mk
from examples.common import algorithms
from examples.common import datasets
from examples.common import finetune
from examples.common import litert
from examples.common import report
from examples.common import results
from examples.common import runner
from examples.common.models import TOPOLOGIES
from examples.common.run_store import RunStore


def _environment():
    return {
        "backend": keras.backend.backend(),
        "keras": keras.__version__,
        "keras_mk": keras_mk.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        # Other work sharing the CPUs makes wall times noisier.
        "load_average": [round(x, 2) for x in os.getloadavg()],
    }


def _quiet():
    # Many small models: TensorFlow's retracing warnings are expected.
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        tf.get_logger().setLevel("ERROR")
    warnings.filterwarnings("ignore", message=".*tf.lite.Interpreter.*")
    warnings.filterwarnings("ignore", message=".*copies are equal.*")


def _algorithms(flags, with_baseline=True):
    names = [algorithms.FLAG_NAMES[f] for f in flags]
    if with_baseline and algorithms.BASELINE not in names:
        names.insert(0, algorithms.BASELINE)
    return tuple(n for n in algorithms.ALGORITHMS if n in names)


def fits_per_setting(names, rates, seeds, expansion, selection_seeds):
    """How many models one setting trains before any guard extends its
    grid or budget (the progress bar's first total)."""
    selection = min(selection_seeds, seeds)
    per_swept = rates * selection + seeds - selection
    ensemble = {algorithms.ENSEMBLE, algorithms.DISTILLED} & set(names)
    swept = [n for n in runner.SWEPT if n in names]
    if ensemble and algorithms.BASELINE not in swept:
        swept.append(algorithms.BASELINE)
    read = [n for n in swept if runner.READ_FROM.get(n) in swept]
    fits = (len(swept) - len(read)) * per_swept
    if ensemble:
        fits += seeds * expansion
    if algorithms.DISTILLED in names:
        fits += per_swept
    return fits


def run_experiment(args):
    """Runs the protocol for the parsed `examples.main` flags.

    Returns:
        The dict written to `<output>/results.json`.
    """
    start = time.perf_counter()
    _quiet()
    finetuning = getattr(args, "finetune", False)
    budget = algorithms.Budget(
        epochs=args.epochs,
        batch_size=args.batch_size,
        expansion=args.expansion,
        adversarial_epsilon=args.adv_epsilon,
        adversarial_only=args.adv_d1,
        lora_rank=getattr(args, "lora_rank", 4),
    )
    store = RunStore(args.resume) if args.resume else None
    settings, data, pairs = [], {}, {}
    limits = (args.max_train, 256 if args.smoke else None)

    def make_setting(
        d, topology, optimizer, names, exponents, start=None, traced=False
    ):
        return runner.Setting(
            data=d,
            topology=topology,
            hidden_units=TOPOLOGIES.get(topology),
            optimizer=optimizer,
            algorithms=names,
            exponents=tuple(exponents),
            seeds=args.seeds,
            budget=dataclasses.replace(
                budget, optimizer=optimizer, traced_evaluation=traced
            ),
            selection_seeds=args.selection_seeds,
            guarded=not args.smoke,
            store=store,
            start=start,
        )

    for name in args.pairs if finetuning else []:
        pair = finetune.load(name, args.smoke)
        pairs[name] = pair
        data[name] = d = pair.target.limited(*limits)
        flags = args.algorithms or finetune.default_flags(pair)
        names = _algorithms(flags, with_baseline=False)
        exponents = args.lr_exponents or finetune.default_exponents(pair)
        if args.smoke and not args.lr_exponents:
            exponents = exponents[:2]
        topologies = args.topologies
        if pair.text:
            topologies = [finetune.TEXT_TOPOLOGY]
        for topology in topologies:
            checkpoints = finetune.Checkpoints(
                pair,
                TOPOLOGIES.get(topology),
                topology,
                os.path.join(args.output, "checkpoints"),
                args.smoke,
            )
            settings += [
                make_setting(
                    d,
                    topology,
                    optimizer,
                    names,
                    exponents,
                    checkpoints,
                    traced=pair.text,
                )  # fmt: skip
                for optimizer in args.optimizers
            ]
    for name in [] if finetuning else args.datasets:
        loaded = datasets.load(
            name, args.data_dir, args.smoke, args.mnist1d_samples
        )
        data[name] = loaded.limited(*limits)
        names = _algorithms(args.algorithms)
        settings += [
            make_setting(
                data[name], topology, optimizer, names, args.lr_exponents
            )
            for topology in args.topologies
            for optimizer in args.optimizers
        ]
    total = sum(
        fits_per_setting(
            s.algorithms,
            len(s.exponents),
            args.seeds,
            args.expansion,
            args.selection_seeds,
        )
        for s in settings
    )
    progress = tqdm(
        total=total,
        desc="training",
        unit="model",
        disable=args.no_progress,
        dynamic_ncols=True,
    )
    runs, sweeps, to_export = [], [], {}
    for setting in settings:
        new_runs, new_sweeps, mk = runner.Protocol(setting, progress).run()
        runs += new_runs
        sweeps += new_sweeps
        if mk is not None and mk.deployed is not None and not to_export:
            name = (
                f"{setting.data.name}_{setting.topology}_"
                f"{setting.optimizer}_mk_collapsed"
            )
            to_export[name] = (mk.deployed, setting.data.x_test[:32])
    progress.close()
    names = tuple(dict.fromkeys(n for s in settings for n in s.algorithms))
    exports = []
    if to_export and not args.no_export:
        exports = litert.save_and_export(
            to_export, os.path.join(args.output, "models")
        )
    output = {
        "description": "keras_mk main job: "
        + ("fine-tuning" if finetuning else "the paper's Table 5 protocol"),
        "options": {
            "finetune": finetuning,
            "datasets": list(data),
            "topologies": list(args.topologies),
            "optimizers": list(args.optimizers),
            "algorithms": list(names),
            "lr_exponents": sorted({i for s in settings for i in s.exponents}),
            "seeds": args.seeds,
            "selection_seeds": args.selection_seeds,
            "guarded": not args.smoke,
            "epochs": args.epochs,
            "batch_size": args.batch_size,
            "expansion": args.expansion,
            "adversarial_epsilon": args.adv_epsilon,
            "adversarial_only": args.adv_d1,
            "full": args.full,
            "smoke": args.smoke,
            "mnist1d_samples": args.mnist1d_samples,
        },
        "environment": _environment(),
        "data": {name: d.sizes() for name, d in data.items()},
        "wall_time_s": time.perf_counter() - start,
        "summary": runner.summarize(runs),
        "paired": runner.paired_comparisons(runs),
        "exports": exports,
        **_finetuning_record(pairs, settings),
        "sweeps": sweeps,
        "runs": runs,
    }
    os.makedirs(args.output, exist_ok=True)
    figures = report.write_plots(output, args.output)
    results.write_json(os.path.join(args.output, "results.json"), output)
    with open(os.path.join(args.output, "results.md"), "w") as f:
        f.write("# keras_mk main job: results\n\n")
        f.write(report.markdown(output, figures))
    print()
    print(report.text_tables(output))
    for export in exports:
        print(
            f"saved {export['keras']} and {export['tflite']} "
            f"(max |LiteRT - Keras| = {export['max_abs_diff_vs_keras']:.1e})"
        )
    print(
        f"{output['wall_time_s']:.0f} s on {os.cpu_count()} CPUs "
        f"({keras.backend.backend()}); results in {args.output}/results.json,"
        " results.md and *.png"
    )
    return output


def _finetuning_record(pairs, settings):
    """The pairs and the checkpoints every algorithm started from."""
    if not pairs:
        return {}
    return {
        "pairs": {name: pair.describe() for name, pair in pairs.items()},
        "pretraining_recipe": finetune.PRETRAINING,
        "checkpoints": {
            f"{s.data.name} {s.topology} {s.optimizer}": s.start.summary()
            for s in settings
        },
    }

"""Paper Section 4.1, Fig. 4.3: ResNet-50 on ImageNet.

BASELINE (90 epochs, lr / 10 at 30 and 60), BASELINE-LONG (330 epochs, drops
at 90, 180, 240), MAJORITY KERNELS (e = 3, the long schedule), ADV-MK,
ENSEMBLE (3 BASELINE-LONG models) and DISTILLED (BASELINE-LONG taught by the
ensemble). Recipe of He et al. (2016): SGD momentum 0.9, lr 0.1 scaled by
batch / 256, weight decay 1e-4 as an L2 term in the loss (the
gradient gains 1e-4 * w for every conv and dense kernel), random-resized
224 crops and horizontal flips. `imagenet2012` comes from
`tensorflow_datasets` (manual download of the ILSVRC tarballs into
`<data-dir>/downloads/manual`). The ResNet-50 is
KerasHub's `ResNetBackbone` built from its config (random init) with a
`ResNetImageClassifier` head. Finished runs are appended to
`<output>/runs.jsonl` and each run backs itself up every epoch: rerunning
the same command resumes where it stopped.

    python -m examples.resnet_imagenet --data-dir ~/tensorflow_datasets
    python -m examples.resnet_imagenet --algorithms baseline mk --epochs 30
    python -m examples.resnet_imagenet --smoke          # offline, mock data
"""

import os
import sys
import time

from examples.common.backend import script_parser
from examples.common.backend import select_backend
from examples.common.names import flag_names
from examples.common.names import member_seed
from examples.common.run_store import RunStore
from examples.common.tfds_data import offline_stand_in

ALGORITHM_NAMES = flag_names(
    ("baseline", "baseline-long", "mk", "adv-mk", "ensemble", "distilled")
)
MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)


def parse_args(argv=None):
    """Parses the command line (see `--help`)."""
    parser = script_parser(
        "examples.resnet_imagenet",
        __doc__,
        "offline: TFDS mock data, 32x32 images, a tiny ResNet, 2 steps per "
        "epoch",
    )
    parser.add_argument(
        "--algorithms",
        nargs="+",
        choices=tuple(ALGORITHM_NAMES),
        default=None,
        help="default all (baseline mk ensemble with --smoke)",
    )
    parser.add_argument(
        "--epochs",
        type=int,
        default=None,
        help="BASELINE length; the long schedule is 330/90 times longer "
        "(default 90; 1 with --smoke)",
    )
    parser.add_argument("--batch-size", type=int, default=None, help="256")
    parser.add_argument(
        "--base-lr",
        type=float,
        default=0.1,
        help="learning rate at batch 256 (scaled by batch / 256)",
    )
    parser.add_argument(
        "--weight-decay",
        type=float,
        default=1e-4,
        help="He et al.'s weight decay: `wd/2 * ||w||^2` added to the loss "
        "for every kernel (not Keras's decoupled `weight_decay`, which with "
        "momentum 0.9 is about 10x weaker)",
    )
    parser.add_argument("--image-size", type=int, default=None, help="224")
    parser.add_argument("--expansion", type=int, default=3)
    parser.add_argument(
        "--ensemble-size", type=int, default=None, help="3 (2 with --smoke)"
    )
    parser.add_argument(
        "--adv-epsilon",
        type=float,
        default=0.25,
        help="ADV-MK's scale-free step on p (see AdversarialMK)",
    )
    parser.add_argument("--distillation-temperature", type=float, default=3.0)
    parser.add_argument("--seeds", type=int, default=1)
    parser.add_argument(
        "--steps-per-epoch",
        type=int,
        default=None,
        help="cap on steps per epoch (default: the whole split)",
    )
    parser.add_argument(
        "--eval-examples",
        type=int,
        default=None,
        help="cap on validation (and train-accuracy) examples",
    )
    return parser.parse_args(argv)


# ----------------------------------------------------------------- data


def _random_resized_crop(image, size):
    import tensorflow as tf

    begin, crop, _ = tf.image.sample_distorted_bounding_box(
        tf.shape(image),
        bounding_boxes=tf.constant([0.0, 0.0, 1.0, 1.0], shape=(1, 1, 4)),
        min_object_covered=0.1,
        aspect_ratio_range=(3 / 4, 4 / 3),
        area_range=(0.08, 1.0),
        max_attempts=10,
        use_image_if_no_bounding_boxes=True,
    )
    image = tf.slice(image, begin, crop)
    image = tf.image.resize(image, (size, size))
    return tf.image.random_flip_left_right(image)


def _center_crop(image, size):
    import tensorflow as tf

    shape = tf.cast(tf.shape(image)[:2], "float32")
    scale = (size / 0.875) / tf.reduce_min(shape)
    resized = tf.cast(tf.round(shape * scale), "int32")
    image = tf.image.resize(image, resized)
    return tf.image.resize_with_crop_or_pad(image, size, size)


def make_dataset(split, args, training, max_examples=None):
    """A batched `tf.data` pipeline of `(image, label)` for one split."""
    import tensorflow as tf

    from examples.common.tfds_data import load_dataset

    dataset = load_dataset(
        "imagenet2012", split, args.data_dir, shuffle_files=training
    )
    if max_examples is not None:
        dataset = dataset.take(max_examples)
    size = args.image_size

    def transform(example):
        image = tf.cast(example["image"], "float32") / 255.0
        if training:
            image = _random_resized_crop(image, size)
        else:
            image = _center_crop(image, size)
        image = (image - MEAN) / STD
        return image, example["label"]

    if training:
        dataset = dataset.shuffle(10 * args.batch_size).repeat()
    dataset = dataset.map(transform, num_parallel_calls=tf.data.AUTOTUNE)
    return dataset.batch(args.batch_size, drop_remainder=training).prefetch(
        tf.data.AUTOTUNE
    )


# ---------------------------------------------------------------- models


def build_classifier(args, seed):
    """ResNet-50 (or, with `--smoke`, a tiny ResNet) with a 1000-way head."""
    import keras
    import keras_hub

    keras.utils.set_random_seed(seed)
    if args.smoke:
        config = dict(
            input_conv_filters=[64],
            input_conv_kernel_sizes=[3],
            stackwise_num_filters=[64, 32],  # KerasHub requires 64 first
            stackwise_num_blocks=[1, 1],
            stackwise_num_strides=[1, 2],
            block_type="basic_block",
        )
    else:  # ResNet-50 v1, as KerasHub's `resnet_50_imagenet` preset.
        config = dict(
            input_conv_filters=[64],
            input_conv_kernel_sizes=[7],
            stackwise_num_filters=[64, 128, 256, 512],
            stackwise_num_blocks=[3, 4, 6, 3],
            stackwise_num_strides=[1, 2, 2, 2],
            block_type="bottleneck_block",
        )
    backbone = keras_hub.models.ResNetBackbone(
        use_pre_activation=False,
        image_shape=(args.image_size, args.image_size, 3),
        **config,
    )
    return keras_hub.models.ResNetImageClassifier(
        backbone=backbone, num_classes=args.num_classes, pooling="avg"
    )


def _optimizer(args, long):
    import keras

    from keras_mk import baselines

    lr = args.base_lr * args.batch_size / 256
    schedule, epochs = baselines.baseline_schedule(
        lr, args.steps_per_epoch, epochs=args.epochs, long=long
    )
    optimizer = keras.optimizers.SGD(schedule, momentum=0.9)
    return optimizer, epochs


def _add_weight_decay(model, weight_decay):
    """L2 of He et al. in the loss: `wd/2 * ||w||^2` on every kernel.

    Set on the layers of the model as trained, as their
    `kernel_regularizer`: an MK layer applies it once, to the kernel it
    mixes (not to each copy, see `keras_mk.layers.MKLayer`), a plain layer
    to its kernel. `model.losses` collects the terms and `fit` adds them.
    """
    import keras

    import keras_mk

    regularizer = keras.regularizers.L2(weight_decay / 2)
    layers = [model]
    while layers:
        layer = layers.pop()
        layers += getattr(layer, "layers", [])
        if not weight_decay or not hasattr(layer, "kernel_regularizer"):
            continue
        layer.kernel_regularizer = regularizer
        if not isinstance(layer, keras_mk.layers.MKLayer):
            layer.kernel.regularizer = regularizer


def _loss():
    import keras

    return keras.losses.SparseCategoricalCrossentropy(from_logits=True)


class _EpochTimer:
    """Wall time per training step (the first epoch excluded if possible)."""

    def __init__(self, steps_per_epoch):
        import keras

        timer = self
        self.seconds = []

        class Callback(keras.callbacks.Callback):
            def on_epoch_begin(self, epoch, logs=None):
                timer._start = time.perf_counter()

            def on_epoch_end(self, epoch, logs=None):
                timer.seconds.append(time.perf_counter() - timer._start)

        self.callback = Callback()
        self.steps_per_epoch = steps_per_epoch

    @property
    def seconds_per_step(self):
        seconds = self.seconds[1:] if len(self.seconds) > 1 else self.seconds
        if not seconds:
            return None
        return sum(seconds) / (len(seconds) * self.steps_per_epoch)


def _fit(fitted, args, data, long, key, store):
    """Compiles and trains `fitted` with the BASELINE(-LONG) recipe."""
    import keras

    optimizer, epochs = _optimizer(args, long)
    _add_weight_decay(fitted, args.weight_decay)
    fitted.compile(optimizer, _loss())
    timer = _EpochTimer(args.steps_per_epoch)
    backup = os.path.join(store.directory, "backup", key.replace("/", "_"))
    fitted.fit(
        data["train"],
        epochs=epochs,
        steps_per_epoch=args.steps_per_epoch,
        verbose=0 if args.no_progress else 1,
        callbacks=[
            timer.callback,
            keras.callbacks.BackupAndRestore(backup, delete_checkpoint=True),
        ],
    )
    return timer.seconds_per_step, epochs


def _accuracy(model, dataset):
    """Top-1 and top-5 accuracy (Keras metrics) of `model` on `dataset`."""
    import keras

    top1 = keras.metrics.SparseTopKCategoricalAccuracy(k=1)
    top5 = keras.metrics.SparseTopKCategoricalAccuracy(k=5)
    for images, labels in dataset:
        scores = model.predict_on_batch(images)
        top1.update_state(labels, scores)
        top5.update_state(labels, scores)
    return float(top1.result()), float(top5.result())


def _record(algorithm, seed, deployed, data, training_params, seconds, epochs):
    test_top1, test_top5 = _accuracy(deployed, data["validation"])
    train_top1, _ = _accuracy(deployed, data["train_eval"])
    return dict(
        algorithm=algorithm,
        seed=seed,
        epochs=epochs,
        test_accuracy=test_top1,
        test_top5_accuracy=test_top5,
        train_accuracy=train_top1,
        seconds_per_step=seconds,
        training_params=int(training_params),
        inference_params=int(deployed.count_params()),
    )


# ------------------------------------------------------------ algorithms


def _train_plain(args, data, store, seed, long, algorithm, key):
    model = build_classifier(args, seed)
    seconds, epochs = _fit(model, args, data, long, key, store)
    record = _record(
        algorithm, seed, model, data, model.count_params(), seconds, epochs
    )
    return model, record


def _member(args, data, store, seed, k):
    """Ensemble member `k` of `seed`: a BASELINE-LONG run, saved."""
    import keras

    key = f"member/{seed}/{k}"
    path = store.model_path(key)
    if store.get(key) is not None and os.path.exists(path):
        return keras.saving.load_model(path), store.get(key)
    model, record = _train_plain(
        args, data, store, member_seed(seed, k), True, "BASELINE-LONG", key
    )
    model.save(path)
    return model, store.add(key, record)


def run_algorithm(name, args, data, store, seed):
    """Trains one system for one seed; returns its JSON record."""
    import keras_mk
    from keras_mk import baselines
    from keras_mk import training

    key = f"{name}/{seed}"
    if name == "BASELINE":
        return _train_plain(args, data, store, seed, False, name, key)[1]
    if name == "BASELINE-LONG":
        return _member(args, data, store, seed, 0)[1]
    if name in ("MAJORITY KERNELS", "ADV-MK"):
        mk_model = keras_mk.clone_model(
            build_classifier(args, seed),
            expansion=args.expansion,
            seed=1000 * seed,
        )
        fitted = mk_model
        if name == "ADV-MK":
            fitted = training.AdversarialMK(mk_model, epsilon=args.adv_epsilon)
        seconds, epochs = _fit(fitted, args, data, True, key, store)
        deployed = keras_mk.collapse(mk_model)
        deployed.save(store.model_path(key))
        return _record(
            name,
            seed,
            deployed,
            data,
            mk_model.count_params(),
            seconds,
            epochs,
        )
    members, records = zip(
        *[
            _member(args, data, store, seed, k)
            for k in range(args.ensemble_size)
        ]
    )
    if name == "ENSEMBLE":
        ensemble = baselines.Ensemble(list(members), activation="softmax")
        seconds = [r["seconds_per_step"] for r in records]
        return _record(
            name,
            seed,
            ensemble,
            data,
            sum(m.count_params() for m in members),
            None if None in seconds else sum(seconds),
            records[0]["epochs"],
        )
    # DISTILLED: a BASELINE-LONG student taught by the members' mean logits.
    teacher = baselines.Ensemble(list(members), name="teacher")
    student = build_classifier(args, seed + 1)
    distiller = baselines.distillation_baseline(
        teacher, student, temperature=args.distillation_temperature
    )
    seconds, epochs = _fit(distiller, args, data, True, key, store)
    return _record(
        name, seed, student, data, student.count_params(), seconds, epochs
    )


# ---------------------------------------------------------------- output


def write_outputs(args, runs):
    """`results.json` (runs + summary) and `results.md` (the table)."""
    from examples.common import results

    summary = results.summarize(runs, group_keys=())
    for row in summary:
        top5 = [
            r["test_top5_accuracy"]
            for r in runs
            if r["algorithm"] == row["algorithm"]
        ]
        row["test_top5_accuracy_mean"] = float(sum(top5) / len(top5))
    data = dict(
        experiment="resnet_imagenet",
        paper="Majority Kernels, Section 4.1, Fig. 4.3",
        data=dict(
            dataset="imagenet2012", mock=args.smoke, image_size=args.image_size
        ),
        config=vars(args),
        runs=runs,
        summary=summary,
    )
    columns = [
        ("Algorithm", lambda r: r["algorithm"]),
        ("Seeds", lambda r: str(r["seeds"])),
    ]
    columns += list(results.SUMMARY_COLUMNS[:5])
    columns.insert(
        3,
        ("Top-5 (%)", lambda r: f"{100 * r['test_top5_accuracy_mean']:.2f}"),
    )
    results.write_fixed_recipe_report(
        args.output, data, columns, "ResNet on ImageNet (Section 4.1)"
    )


def main(argv=None):
    """Runs the experiment; returns the process exit code."""
    args = parse_args(argv)
    select_backend(args.backend)
    smoke = args.smoke
    flags = args.algorithms or (
        ["baseline", "mk", "ensemble"] if smoke else list(ALGORITHM_NAMES)
    )
    args.algorithms = [ALGORITHM_NAMES[f] for f in flags]
    args.epochs = args.epochs or (1 if smoke else 90)
    args.batch_size = args.batch_size or (4 if smoke else 256)
    args.image_size = args.image_size or (32 if smoke else 224)
    args.ensemble_size = args.ensemble_size or (2 if smoke else 3)
    args.num_classes = 1000
    if smoke:
        args.steps_per_epoch = args.steps_per_epoch or 2
        args.eval_examples = args.eval_examples or 8
    elif args.steps_per_epoch is None:
        args.steps_per_epoch = 1_281_167 // args.batch_size
    store = RunStore(args.output)
    runs = []
    with offline_stand_in(smoke, num_examples=16):
        data = dict(
            train=make_dataset("train", args, training=True),
            train_eval=make_dataset(
                "train",
                args,
                training=False,
                max_examples=args.eval_examples or 50_000,
            ),
            validation=make_dataset(
                "validation",
                args,
                training=False,
                max_examples=args.eval_examples,
            ),
        )
        for seed in range(args.seeds):
            for name in args.algorithms:
                key = f"{name}/{seed}"
                record = store.get(key)
                if record is None:
                    print(f"== {name}, seed {seed}", flush=True)
                    record = store.add(
                        key, run_algorithm(name, args, data, store, seed)
                    )
                runs.append(record)
    write_outputs(args, runs)
    print(f"results in {args.output}/results.json and results.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())

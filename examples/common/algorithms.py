"""The training algorithms of the paper's Table 5, on in-memory data.

`train` trains one algorithm for one learning rate and seed and returns a
`Run`: the deployed model and its inference-mode accuracy on the
validation, test and (a sample of the) training split after every epoch.

* BASELINE: the plain model, `budget.epochs` epochs.
* BASELINE-LONG: the plain model, `expansion` times as many epochs.
* MAJORITY KERNELS: `keras_mk.clone_model(model, expansion=e)` (fresh
  per-element Dirichlet(1) `p` every step), the long budget, deployed as
  `keras_mk.collapse(mk_model)`.
* MK (p per unit), MK (p per layer): MAJORITY KERNELS with
  `probability_sharing="unit"` or `"layer"` (one draw of `p` per output
  unit or per kernel instead of per element: cheaper, not the paper's
  algorithm; opt-in, `--algorithms mk-unit mk-layer`).
* ADV-MK: the same MK model trained by `keras_mk.training.AdversarialMK`
  (Algorithm D.2; D.1 with `adversarial_only`, then with independent
  copies), the long budget, deployed collapsed.
* SUBSET: `keras_mk.baselines.SubsetDense` layers (Algorithm F.1), the long
  budget, deployed as plain `Dense` layers.
* ENSEMBLE: `expansion` BASELINE runs, probabilities averaged
  (`keras_mk.baselines.Ensemble`; `ensemble`).
* DISTILLED: a BASELINE-sized student taught by the ensemble's mean logits
  (`keras_mk.baselines.distillation_baseline`), the BASELINE budget.
* LORA, LORA-LONG, LORA (rank e x r): fine-tuning a checkpoint's LoRA
  adapters (`adapters.with_adapters`) at rank `budget.lora_rank`, the
  BASELINE budget, `e` times it, and rank `e * lora_rank` (MK-LORA's
  training memory, `e` times the adapter to ship).
* MK-LORA: `keras_mk.clone_model` of the LoRA model (the adapters
  simulated, the head plain), the long budget, deployed collapsed.

`start` (`finetune.Checkpoints.start`) gives the model every algorithm of
a seed starts from when fine-tuning; the models are built from scratch
otherwise.
"""

import dataclasses
import time

import keras
import numpy as np
from scipy.special import softmax
from sklearn.metrics import accuracy_score

import keras_mk
from examples.common import adapters
from examples.common import data_order
from examples.common import names
from examples.common.models import build_model
from examples.common.models import build_subset_mlp
from examples.common.names import ADV_MAJORITY
from examples.common.names import BASELINE
from examples.common.names import BASELINE_LONG
from examples.common.names import DISTILLED
from examples.common.names import ENSEMBLE
from examples.common.names import LORA
from examples.common.names import LORA_LONG
from examples.common.names import LORA_WIDE
from examples.common.names import MAJORITY
from examples.common.names import MAJORITY_LAYER
from examples.common.names import MAJORITY_UNIT
from examples.common.names import MK_LORA
from examples.common.names import SUBSET
from examples.common.names import member_seed
from keras_mk import baselines
from keras_mk import training

# The MK variants that share one draw of `p`: their `probability_sharing`.
SHARED_P = {MAJORITY_UNIT: "unit", MAJORITY_LAYER: "layer"}
MK_ALGORITHMS = (
    MAJORITY, ADV_MAJORITY, MAJORITY_UNIT, MAJORITY_LAYER, MK_LORA,
)  # fmt: skip
# Fine-tuning the adapters of a checkpoint; the rank of each.
LORA_ALGORITHMS = (LORA, LORA_LONG, LORA_WIDE, MK_LORA)
ALGORITHMS = (
    BASELINE,
    BASELINE_LONG,
    MAJORITY,
    ADV_MAJORITY,
    MAJORITY_UNIT,
    MAJORITY_LAYER,
    SUBSET,
    ENSEMBLE,
    DISTILLED,
) + LORA_ALGORITHMS
# The algorithms that get `expansion` times BASELINE's epochs.
LONG = (BASELINE_LONG, MAJORITY, ADV_MAJORITY, SUBSET, LORA_LONG, MK_LORA)
LONG += tuple(SHARED_P)
FLAG_NAMES = {f: n for f, n in names.FLAG_NAMES.items() if n in ALGORITHMS}
LOSS = keras.losses.SparseCategoricalCrossentropy(from_logits=True)


@dataclasses.dataclass
class Budget:
    """What every algorithm of one comparison shares.

    Attributes:
        epochs: BASELINE's epochs; the `LONG` algorithms get
            `expansion * epochs`.
        batch_size: training batch size.
        optimizer: `"adam"` or `"sgd"`.
        expansion: MK's `e`; also the ensemble size and SUBSET's candidates
            per neuron.
        adversarial_epsilon: ADV-MK's scale-free step on `p`.
        adversarial_only: ADV-MK as Algorithm D.1 instead of D.2.
        distillation_temperature: DISTILLED's softmax temperature.
        train_eval_samples: training examples evaluated after each epoch
            (for the train-test gap).
        lora_rank: the LoRA algorithms' rank `r`.
        traced_evaluation: evaluate through `predict_on_batch` (traced
            once per model: 4x faster on the GPT-2 pair) instead of direct
            calls (cheaper for small MLPs, which many runs rebuild).
    """

    epochs: int = 60
    batch_size: int = 256
    optimizer: str = "adam"
    expansion: int = 3
    adversarial_epsilon: float = 0.25
    adversarial_only: bool = False
    distillation_temperature: float = 3.0
    train_eval_samples: int = 1000
    lora_rank: int = 4
    traced_evaluation: bool = False

    def rank_for(self, algorithm):
        """The LoRA rank of `algorithm` (`e * r` for LORA (rank e x r))."""
        wide = algorithm == LORA_WIDE
        return self.lora_rank * (self.expansion if wide else 1)

    def epochs_for(self, algorithm):
        """The epochs `algorithm` trains for."""
        return self.epochs * (self.expansion if algorithm in LONG else 1)


@dataclasses.dataclass
class Run:
    """One trained algorithm at one learning rate and seed.

    Attributes:
        algorithm: one of `ALGORITHMS`.
        seed: the training seed.
        learning_rate: the optimizer's learning rate.
        curves: `{"val_accuracy", "test_accuracy", "train_accuracy"}`, one
            value per epoch, inference mode.
        deployed: the model that ships.
        training_params: parameters trained.
        seconds: wall seconds of training (compilation and the per-epoch
            evaluation included).
        extra: algorithm-specific measurements (ADV-MK's `p` statistics).
        probabilities: per-epoch class probabilities on the evaluation
            inputs (kept for BASELINE, to average ensembles).
        inference_params: the deployed model's parameters.
    """

    algorithm: str
    seed: int
    learning_rate: float
    curves: dict
    deployed: keras.Model
    training_params: int
    seconds: float
    extra: dict = dataclasses.field(default_factory=dict)
    probabilities: list = None
    inference_params: int = None

    def as_record(self, digits=6):
        """A JSON-ready record (curves rounded; no model), for
        `from_record` after an interruption."""
        return {
            "algorithm": self.algorithm,
            "seed": self.seed,
            "learning_rate": self.learning_rate,
            "curves": {
                k: [round(float(v), digits) for v in curve]
                for k, curve in self.curves.items()
            },
            "training_params": self.training_params,
            "seconds": self.seconds,
            "extra": self.extra,
            "inference_params": self.inference_params,
        }

    @classmethod
    def from_record(cls, record):
        """The `Run` of an `as_record` record: no model, no
        probabilities."""
        fields = {k: v for k, v in record.items() if k != "key"}
        return cls(deployed=None, **fields)

    def truncated(self, algorithm, epochs):
        """This run's first `epochs` epochs, read as `algorithm`'s run.

        Training never looks ahead, so the first E epochs of a longer run
        are a run of E epochs: BASELINE's run is BASELINE-LONG's run (same
        model, rate and seed) read up to BASELINE's budget. The weights
        after epoch E were not kept: no `deployed`, no `probabilities`.
        """
        total = len(self.curves["val_accuracy"])
        return dataclasses.replace(
            self,
            algorithm=algorithm,
            curves={k: v[:epochs] for k, v in self.curves.items()},
            deployed=None,
            probabilities=None,
            seconds=self.seconds * epochs / total,
            extra={**self.extra, "read_from": self.algorithm},
        )

    @property
    def best_epoch(self):
        """The (first) epoch of best validation accuracy, 0-based."""
        return int(np.argmax(self.curves["val_accuracy"]))

    def at_best(self, split):
        """`split` accuracy at the epoch of best validation accuracy."""
        return self.curves[f"{split}_accuracy"][self.best_epoch]


class EpochEvaluator(keras.callbacks.Callback):
    """Accuracy on validation, test and training data after every epoch.

    Args:
        model: the model evaluated in inference mode (for MK, the mean
            kernels: what the collapsed model computes).
        data: a `datasets.Dataset`.
        train_samples: how many training examples to evaluate.
        keep_probabilities: also keep each epoch's class probabilities.
    """

    def __init__(
        self,
        model,
        data,
        train_samples,
        keep_probabilities=False,
        traced=False,
    ):
        super().__init__()
        self.traced = traced
        self.evaluated = model
        self.inputs, self.labels = evaluation_split(data, train_samples)
        self.keep_probabilities = keep_probabilities
        self.probabilities = []
        self.curves = {f"{s}_accuracy": [] for s in self.labels}
        #: The first epoch (1-based) whose outputs were not finite.
        self.nonfinite_epoch = None

    def on_epoch_end(self, epoch, logs=None):
        probabilities = predict_probabilities(
            self.evaluated, self.inputs, traced=self.traced
        )
        finite = np.all(np.isfinite(probabilities))
        if not finite and self.nonfinite_epoch is None:
            self.nonfinite_epoch = epoch + 1
        if self.keep_probabilities:
            self.probabilities.append(probabilities.astype("float16"))
        record_accuracies(self.curves, probabilities, self.labels)


def evaluation_split(data, train_samples):
    """Validation, test and training inputs in one array, and the labels."""
    inputs = np.concatenate(
        [data.x_val, data.x_test, data.x_train[:train_samples]]
    )
    labels = {
        "val": data.y_val,
        "test": data.y_test,
        "train": data.y_train[:train_samples],
    }
    return inputs, labels


def record_accuracies(curves, probabilities, labels):
    """Appends each split's accuracy of `probabilities` to `curves`."""
    start = 0
    for split, y in labels.items():
        predicted = probabilities[start : start + len(y)].argmax(-1)
        curves[f"{split}_accuracy"].append(accuracy_score(y, predicted))
        start += len(y)


def predict_probabilities(model, x, batch_size=4096, logits=True, traced=False):
    """Class probabilities by direct inference calls, or `traced` through
    `predict_on_batch`."""

    def predict(batch):
        if traced:
            return model.predict_on_batch(batch)
        return model(batch, training=False)

    outputs = np.concatenate(
        [
            keras.ops.convert_to_numpy(predict(x[start : start + batch_size]))
            for start in range(0, len(x), batch_size)
        ]
    )
    return softmax(outputs, axis=-1) if logits else outputs


def make_optimizer(name, learning_rate):
    """Adam or plain SGD with the given learning rate."""
    if name == "adam":
        return keras.optimizers.Adam(learning_rate)
    if name == "sgd":
        return keras.optimizers.SGD(learning_rate)
    raise ValueError(f"`optimizer` must be 'adam' or 'sgd'. Received: {name!r}")


def _compile(fitted, budget, learning_rate, steps):
    if keras.backend.backend() == "torch":
        steps = 1  # Keras's PyTorch trainer runs one step per call.
    fitted.compile(
        make_optimizer(budget.optimizer, learning_rate),
        LOSS,
        steps_per_execution=steps,
    )


def _assign(destination, source):
    """Copies every variable (weights, seed states) of `source`."""
    for mine, theirs in zip(destination.variables, source.variables):
        mine.assign(theirs.value)


class _Compiled:
    """Compiled training models, reused across learning rates and seeds.

    Compiling a train step costs seconds, training these small models
    sometimes less: a new run of the same algorithm and shapes copies the
    freshly initialized variables into the compiled model, zeroes its
    optimizer state and sets the learning rate, then trains it. The
    compiled model is a second instance, never a run's deployed model: a
    deployed model must not train again (a later ENSEMBLE member or
    teacher would change, and JAX donates the buffers it trains).
    """

    def __init__(self):
        self.models = {}

    def get(self, key, build, budget, learning_rate, steps):
        """The compiled model for `key`, reset to a fresh `build()`.

        Returns:
            `(fitted, trained, built)`: what `fit` trains, the model it
            trains (the compiled one, or `built`'s when `key` is None), and
            the fresh `build()` (`(fitted, evaluated, model)` of `_build`),
            whose weights `train` sets to the trained ones.
        """
        built = build()
        fitted, evaluated = built[:2]
        if key is None:
            _compile(fitted, budget, learning_rate, steps)
            return fitted, evaluated, built
        if key not in self.models:
            cached = build()[:2]
            _compile(cached[0], budget, learning_rate, steps)
            self.models[key] = cached
        cached_fitted, cached_evaluated = self.models[key]
        _assign(cached_evaluated, evaluated)
        optimizer = cached_fitted.optimizer
        if optimizer.built:
            for variable in optimizer.variables:
                variable.assign(np.zeros(variable.shape, variable.dtype))
        optimizer.learning_rate.assign(learning_rate)
        return cached_fitted, cached_evaluated, built


_COMPILED = _Compiled()


def _mk_model(build, budget, seed, independent=False, sharing="element"):
    """The MK model of `build(seed)`; copies independent for D.1.

    Algorithm D.1 needs copies that differ from the start (see
    `AdversarialMK`): copy `k` then takes the kernels of `build` with member
    `k`'s seed (`names.member_seed`), an independent initialization.
    """
    mk_model = keras_mk.clone_model(
        build(seed),
        expansion=budget.expansion,
        seed=1000 * seed,
        probability_sharing=sharing,
    )
    if independent:
        others = [build(member_seed(seed, k)) for k in range(budget.expansion)]
        dense = [
            [
                layer
                for layer in m.layers
                if isinstance(layer, keras.layers.Dense)
            ]
            for m in others
        ]
        for i, layer in enumerate(training.mk_layers(mk_model)):
            layer.set_expanded_kernel(
                np.stack(
                    [keras.ops.convert_to_numpy(d[i].kernel) for d in dense]
                )
            )
    return mk_model


def _build(algorithm, data, hidden_units, seed, budget, teacher, start=None):
    """`(fitted, evaluated, model)`: what trains, what is evaluated, and
    the plain (or SUBSET) model."""
    keras.utils.set_random_seed(seed)
    shape, classes = data.input_shape, data.num_classes

    def build(s):
        if start is not None:
            model = start(s)
        else:
            model = build_model(shape, classes, hidden_units, seed=s)
        if algorithm in LORA_ALGORITHMS:
            adapters.with_adapters(model, budget.rank_for(algorithm))
        return model

    if algorithm == SUBSET:
        model = build_subset_mlp(
            shape, classes, hidden_units, budget.expansion, seed
        )
        return model, model, model
    model = build(seed)
    if algorithm in MK_ALGORITHMS:
        # Only ADV-MK as D.1 starts from independent copies; MK, like
        # `keras_mk.clone_model`, from replicated ones.
        independent = algorithm == ADV_MAJORITY and budget.adversarial_only
        sharing = SHARED_P.get(algorithm, "element")
        mk_model = _mk_model(build, budget, seed, independent, sharing)
        fitted = mk_model
        if algorithm == ADV_MAJORITY:
            fitted = training.AdversarialMK(
                mk_model,
                epsilon=budget.adversarial_epsilon,
                adversarial_only=budget.adversarial_only,
            )
        return fitted, mk_model, model
    if algorithm == DISTILLED:
        if teacher is None:
            raise ValueError("DISTILLED needs a `teacher`. Received: None")
        distiller = baselines.distillation_baseline(
            teacher, model, temperature=budget.distillation_temperature
        )
        return distiller, model, model
    return model, model, model


def train(
    algorithm,
    data,
    hidden_units,
    learning_rate,
    seed,
    budget,
    teacher=None,
    epochs=None,
    start=None,
):
    """Trains one algorithm (not ENSEMBLE: see `ensemble`).

    Args:
        algorithm: one of `ALGORITHMS` except `ENSEMBLE`.
        data: a `datasets.Dataset`.
        hidden_units: the MLP's hidden widths, e.g. `(100,)`.
        learning_rate: the optimizer's learning rate.
        seed: the seed of the initialization, data order and `p`.
        budget: a `Budget`.
        teacher: DISTILLED's teacher (`ensemble(...).deployed` members).
        epochs: the epochs to train; default `budget.epochs_for(algorithm)`
            (the budget guard extends it).
        start: `seed -> keras.Model`, the checkpoint to fine-tune
            (`finetune.Checkpoints.start`); None trains from scratch.

    Returns:
        A `Run`.
    """
    if algorithm not in ALGORITHMS or algorithm == ENSEMBLE:
        raise ValueError(
            f"`algorithm` must be one of {ALGORITHMS[:-2] + (DISTILLED,)}. "
            f"Received: algorithm={algorithm!r}"
        )
    began = time.perf_counter()

    def build():
        return _build(
            algorithm, data, hidden_units, seed, budget, teacher, start
        )

    steps = -(-len(data.x_train) // budget.batch_size)
    key = None
    if algorithm != DISTILLED:  # A new teacher per seed: not reusable.
        key = (algorithm, hidden_units, data.input_shape, data.num_classes)
        key += (steps, dataclasses.astuple(budget))
        key += (getattr(start, "name", None),)
    fitted, trained, (_, evaluated, model) = _COMPILED.get(
        key, build, budget, learning_rate, steps
    )
    evaluator = EpochEvaluator(
        trained,
        data,
        budget.train_eval_samples,
        keep_probabilities=algorithm == BASELINE,
        traced=budget.traced_evaluation,
    )
    keras.utils.set_random_seed(seed)
    fitted.fit(
        # A new order every epoch on every backend (not `shuffle=True`: see
        # `data_order`).
        data_order.EpochShuffled(
            data.x_train, data.y_train, budget.batch_size, seed
        ),
        epochs=epochs or budget.epochs_for(algorithm),
        verbose=0,
        callbacks=[evaluator],
    )
    extra = {"nonfinite_epoch": evaluator.nonfinite_epoch}
    if algorithm == ADV_MAJORITY:
        batch = slice(0, budget.batch_size)
        extra |= fitted.probability_statistics(
            data.x_train[batch], data.y_train[batch]
        )
    # The deployed model is a new one: the compiled one trains again.
    if trained is not evaluated:
        _assign(evaluated, trained)
    deployed = evaluated
    if algorithm in MK_ALGORITHMS:
        deployed = _collapsed(evaluated, model)
    if algorithm == SUBSET:
        deployed = baselines.subset_to_dense(model)
    return Run(
        algorithm=algorithm,
        seed=seed,
        learning_rate=learning_rate,
        curves=evaluator.curves,
        deployed=deployed,
        training_params=adapters.trainable_count(evaluated),
        seconds=time.perf_counter() - began,
        extra=extra,
        probabilities=evaluator.probabilities or None,
        inference_params=deployed.count_params(),
    )


def _collapsed(mk_model, plain):
    """`keras_mk.collapse(mk_model)`; `plain` (untrained, the same
    architecture) when training diverged: a rate too large for the grid's
    guard to try is a run at chance accuracy, not an error."""
    weights = [keras.ops.convert_to_numpy(w) for w in mk_model.weights]
    if all(np.all(np.isfinite(w)) for w in weights):
        return keras_mk.collapse(mk_model)
    return plain


def ensemble(members, data, budget):
    """ENSEMBLE of BASELINE runs: probabilities averaged, every epoch.

    Args:
        members: `Run`s of BASELINE (with their probabilities).
        data: the `datasets.Dataset` they were trained on.
        budget: the `Budget` (its `train_eval_samples`).

    Returns:
        A `Run` whose `deployed` is a `keras_mk.baselines.Ensemble`
        averaging the members' softmax outputs.
    """
    _, labels = evaluation_split(data, budget.train_eval_samples)
    curves = {f"{s}_accuracy": [] for s in labels}
    for epoch in range(len(members[0].probabilities)):
        mean = np.mean(
            [m.probabilities[epoch].astype("float32") for m in members], 0
        )
        record_accuracies(curves, mean, labels)
    deployed = baselines.Ensemble(
        [m.deployed for m in members], activation="softmax", name="ensemble"
    )
    deployed(data.x_test[:1])
    return Run(
        algorithm=ENSEMBLE,
        seed=members[0].seed,
        learning_rate=members[0].learning_rate,
        curves=curves,
        deployed=deployed,
        training_params=sum(m.training_params for m in members),
        seconds=sum(m.seconds for m in members),
        inference_params=deployed.count_params(),
    )


def teacher_of(ensemble_run):
    """DISTILLED's teacher: the mean of the ensemble members' logits."""
    teacher = baselines.Ensemble(ensemble_run.deployed.members, name="teacher")
    return teacher

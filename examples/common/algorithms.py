"""The training algorithms the experiments compare, on in-memory data.

Each `train_*` function trains one system for one seed and returns a
`TrainedSystem`: the model that would be deployed, its learning curves
(inference-mode class probabilities on train and test data after every
epoch) and its measured training cost.

* BASELINE: the plain model.
* MAJORITY KERNELS: `keras_mk.clone_model(model, expansion)` trained with
  fresh per-element Dirichlet(1) probabilities every step, deployed as
  `keras_mk.collapse(mk_model)`.
* ADV-MK: the same MK model trained by `training.AdversarialMK`
  (Algorithm D.2), deployed collapsed.
* ENSEMBLE: `expansion` independently trained baselines, probabilities
  averaged (`baselines.Ensemble`); deployed at `expansion` times
  the size.
* DISTILLED: a baseline-sized student trained on the labels and on the
  ensemble's logits (`baselines.distillation_baseline`).
* SUBSET: the submodular neuron selection of Appendix F
  (`baselines.SubsetDense`), deployed as plain `Dense` layers.
"""

import dataclasses

import keras
import numpy as np

import keras_mk
from examples.common.callbacks import CurveRecorder
from examples.common.callbacks import StepTimer
from keras_mk import baselines
from keras_mk import training

BASELINE = "BASELINE"
MAJORITY = "MAJORITY KERNELS"
ADV_MAJORITY = "ADV-MK"
ENSEMBLE = "ENSEMBLE"
DISTILLED = "DISTILLED"
SUBSET = "SUBSET"
ALGORITHMS = (BASELINE, MAJORITY, ADV_MAJORITY, ENSEMBLE, DISTILLED, SUBSET)
# Short names for command-line flags.
FLAG_NAMES = {
    "baseline": BASELINE,
    "mk": MAJORITY,
    "adv-mk": ADV_MAJORITY,
    "ensemble": ENSEMBLE,
    "distilled": DISTILLED,
    "subset": SUBSET,
}


@dataclasses.dataclass
class TrainingConfig:
    """Hyperparameters shared by every algorithm of one comparison.

    Attributes:
        epochs: training epochs (the same for every algorithm).
        batch_size: training batch size.
        learning_rate: the optimizer's learning rate.
        optimizer: `"adam"` or `"sgd"`.
        expansion: MK expansion `e`; also the ensemble size and the subset
            candidates per neuron, as in the paper.
        adversarial_epsilon: ADV-MK's step size on `p`.
        distillation_temperature: the softmax temperature of DISTILLED.
        curve_samples: at most this many training samples are predicted
            after every epoch for the learning curves.
        steps_per_execution: training steps per compiled call (Keras
            `compile(steps_per_execution=...)`); several steps per call
            take the per-step Python overhead out of small models' steps
            (always 1 on PyTorch).
    """

    epochs: int = 40
    batch_size: int = 64
    learning_rate: float = 1e-3
    optimizer: str = "adam"
    expansion: int = 3
    adversarial_epsilon: float = 1000.0
    distillation_temperature: float = 3.0
    curve_samples: int = 5000
    steps_per_execution: int = 8


@dataclasses.dataclass
class TrainedSystem:
    """One trained system (one algorithm, one seed).

    Attributes:
        algorithm: one of `ALGORITHMS`.
        seed: the training seed.
        deployed: the model that ships; outputs logits, or probabilities
            when `outputs_probabilities` (the ensemble).
        outputs_probabilities: whether `deployed` outputs probabilities.
        training_params: the number of parameters trained.
        seconds_per_step: wall seconds per training step (compilation
            excluded); for the ensemble, the sum over its members.
        train_probabilities: one `(n_train, classes)` array per epoch.
        test_probabilities: one `(n_test, classes)` array per epoch.
        trained_model: the model as trained (the MK model before
            collapsing), for saving.
        members: the ensemble's members (the ensemble only).
    """

    algorithm: str
    seed: int
    deployed: keras.Model
    outputs_probabilities: bool
    training_params: int
    seconds_per_step: float
    train_probabilities: list
    test_probabilities: list
    trained_model: keras.Model = None
    members: list = None


def make_optimizer(name, learning_rate):
    """Adam or plain SGD with the given learning rate."""
    if name == "adam":
        return keras.optimizers.Adam(learning_rate)
    if name == "sgd":
        return keras.optimizers.SGD(learning_rate)
    raise ValueError(f"`optimizer` must be 'adam' or 'sgd'. Received: {name!r}")


def _loss():
    return keras.losses.SparseCategoricalCrossentropy(from_logits=True)


def _compile(model, config):
    steps = config.steps_per_execution
    if keras.backend.backend() == "torch":
        steps = 1  # Keras's PyTorch trainer runs one step per call.
    model.compile(
        make_optimizer(config.optimizer, config.learning_rate),
        _loss(),
        steps_per_execution=steps,
    )


def _fit(fitted, inference_model, task, config, seed):
    """Compiles and fits `fitted`; returns `(timer, recorder)`."""
    keras.utils.set_random_seed(seed)
    steps_per_epoch = -(-len(task.x_train) // config.batch_size)
    timer = StepTimer(steps_per_epoch)
    recorder = CurveRecorder(
        inference_model,
        task.x_train[: config.curve_samples],
        task.x_test,
    )
    fitted.fit(
        task.x_train,
        task.y_train,
        batch_size=config.batch_size,
        epochs=config.epochs,
        shuffle=True,
        verbose=0,
        callbacks=[timer, recorder],
    )
    return timer, recorder


def train_baseline(build_model, task, config, seed):
    """BASELINE: trains `build_model(seed)` as it is."""
    keras.utils.set_random_seed(seed)
    model = build_model(seed)
    _compile(model, config)
    timer, recorder = _fit(model, model, task, config, seed)
    return TrainedSystem(
        algorithm=BASELINE,
        seed=seed,
        deployed=model,
        outputs_probabilities=False,
        training_params=model.count_params(),
        seconds_per_step=timer.seconds_per_step,
        train_probabilities=recorder.train_probabilities,
        test_probabilities=recorder.test_probabilities,
        trained_model=model,
    )


def _mk_model(build_model, config, seed):
    keras.utils.set_random_seed(seed)
    plain = build_model(seed)
    # Each converted layer i draws its probabilities from seed + i.
    return keras_mk.clone_model(
        plain, expansion=config.expansion, seed=1000 * seed
    )


def train_majority_kernels(build_model, task, config, seed):
    """MAJORITY KERNELS: converts the model, trains it, collapses it."""
    mk_model = _mk_model(build_model, config, seed)
    _compile(mk_model, config)
    timer, recorder = _fit(mk_model, mk_model, task, config, seed)
    return TrainedSystem(
        algorithm=MAJORITY,
        seed=seed,
        deployed=keras_mk.collapse(mk_model),
        outputs_probabilities=False,
        training_params=mk_model.count_params(),
        seconds_per_step=timer.seconds_per_step,
        train_probabilities=recorder.train_probabilities,
        test_probabilities=recorder.test_probabilities,
        trained_model=mk_model,
    )


def train_adversarial_majority_kernels(build_model, task, config, seed):
    """ADV-MK: the MK model trained with adversarial probabilities."""
    mk_model = _mk_model(build_model, config, seed)
    adversarial = training.AdversarialMK(
        mk_model, epsilon=config.adversarial_epsilon
    )
    _compile(adversarial, config)
    timer, recorder = _fit(adversarial, mk_model, task, config, seed)
    return TrainedSystem(
        algorithm=ADV_MAJORITY,
        seed=seed,
        deployed=keras_mk.collapse(mk_model),
        outputs_probabilities=False,
        training_params=mk_model.count_params(),
        seconds_per_step=timer.seconds_per_step,
        train_probabilities=recorder.train_probabilities,
        test_probabilities=recorder.test_probabilities,
        trained_model=mk_model,
    )


def train_ensemble(build_model, task, config, seed, first_member=None):
    """ENSEMBLE: `config.expansion` independent baselines, averaged.

    Args:
        build_model: `seed -> keras.Model`.
        task: the data.
        config: a `TrainingConfig`.
        seed: the seed; member `k` trains with seed `seed + 7919 * k`.
        first_member: an already trained BASELINE `TrainedSystem` for
            `seed`, reused as member 0 (saves one training run).
    """
    runs = [first_member] if first_member is not None else []
    for k in range(len(runs), config.expansion):
        runs.append(train_baseline(build_model, task, config, seed + 7919 * k))
    members = [run.deployed for run in runs]
    ensemble = baselines.Ensemble(
        members, activation="softmax", name="ensemble"
    )
    ensemble(task.x_test[:1])
    return TrainedSystem(
        algorithm=ENSEMBLE,
        seed=seed,
        deployed=ensemble,
        outputs_probabilities=True,
        training_params=sum(m.count_params() for m in members),
        seconds_per_step=sum(run.seconds_per_step for run in runs),
        train_probabilities=_mean_curves(runs, "train_probabilities"),
        test_probabilities=_mean_curves(runs, "test_probabilities"),
        members=members,
    )


def _mean_curves(runs, attribute):
    per_member = [getattr(run, attribute) for run in runs]
    return [np.mean(epoch, axis=0) for epoch in zip(*per_member)]


def train_distilled(build_model, task, config, seed, ensemble):
    """DISTILLED: a baseline-sized student taught by the ensemble.

    Args:
        build_model: `seed -> keras.Model`.
        task: the data.
        config: a `TrainingConfig`.
        seed: the student's seed.
        ensemble: the ENSEMBLE `TrainedSystem`; the teacher averages its
            members' logits.
    """
    teacher = baselines.Ensemble(ensemble.members, name="teacher")
    teacher(task.x_test[:1])
    keras.utils.set_random_seed(seed)
    student = build_model(seed)
    distiller = baselines.distillation_baseline(
        teacher, student, temperature=config.distillation_temperature
    )
    _compile(distiller, config)
    timer, recorder = _fit(distiller, student, task, config, seed)
    return TrainedSystem(
        algorithm=DISTILLED,
        seed=seed,
        deployed=student,
        outputs_probabilities=False,
        training_params=student.count_params(),
        seconds_per_step=timer.seconds_per_step,
        train_probabilities=recorder.train_probabilities,
        test_probabilities=recorder.test_probabilities,
        trained_model=student,
    )


def train_subset(build_subset_model, task, config, seed):
    """SUBSET: greedy submodular neuron selection, then plain `Dense`.

    Args:
        build_subset_model: `seed -> keras.Model` with `SubsetDense`
            hidden layers.
        task: the data.
        config: a `TrainingConfig`.
        seed: the seed.
    """
    keras.utils.set_random_seed(seed)
    model = build_subset_model(seed)
    _compile(model, config)
    timer, recorder = _fit(model, model, task, config, seed)
    return TrainedSystem(
        algorithm=SUBSET,
        seed=seed,
        deployed=baselines.subset_to_dense(model),
        outputs_probabilities=False,
        training_params=model.count_params(),
        seconds_per_step=timer.seconds_per_step,
        train_probabilities=recorder.train_probabilities,
        test_probabilities=recorder.test_probabilities,
        trained_model=model,
    )

"""ENSEMBLE-BASELINE and DISTILLED-BASELINE."""

import warnings

import keras
import numpy as np
from keras import ops


@keras.saving.register_keras_serializable(package="keras_mk")
class Ensemble(keras.Model):
    """The function-space average of `k` models (ENSEMBLE-BASELINE).

    `Ensemble(models)(x)` is `mean_i activation(models[i](x))`. The members
    are trained independently (e.g. `k` BASELINE-LONG runs with different
    seeds) and then wrapped; the ensemble evaluates, predicts and saves
    (`.keras`) like any model. Its inference cost is `k` models. Fitting the
    ensemble itself trains the members jointly on the averaged output, which
    is not the paper's baseline.

    Args:
        models: a list of at least one Keras model with the same input and
            output structure.
        activation: optional activation applied to every member's output
            before averaging, e.g. `"softmax"` to average probabilities of
            members that output logits. Default None: average the outputs.
        **kwargs: passed to `keras.Model` (e.g. `name`).

    Example:

    ```python
    members = [build_model(seed=i) for i in range(3)]
    for member in members:
        member.compile("adam", loss)
        member.fit(x, y, epochs=10)
    ensemble = keras_mk.baselines.Ensemble(members)
    ensemble.compile(loss=loss, metrics=["accuracy"])
    ensemble.evaluate(x_test, y_test)
    ensemble.save("ensemble.keras")
    ```

    References:
        Mazzawi et al., "Majority Kernels", 2024, Section 4.1 and
        Appendix G (ENSEMBLE-BASELINE).
    """

    def __init__(self, models, activation=None, **kwargs):
        if not isinstance(models, (list, tuple)) or not models:
            raise ValueError(
                "`models` must be a non-empty list of Keras models. "
                f"Received: models={models!r}"
            )
        super().__init__(**kwargs)
        self.members = list(models)
        self.activation = keras.activations.get(activation)

    def call(self, inputs, training=None):
        outputs = [
            self.activation(member(inputs, training=training))
            for member in self.members
        ]
        return keras.tree.map_structure(
            lambda *xs: ops.mean(ops.stack(xs, axis=0), axis=0), *outputs
        )

    def compute_output_spec(self, inputs, training=None):
        return self.members[0].compute_output_spec(inputs)

    def get_config(self):
        return {
            "name": self.name,
            "models": [
                keras.saving.serialize_keras_object(m) for m in self.members
            ],
            "activation": keras.activations.serialize(self.activation),
        }

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["models"] = [
            keras.saving.deserialize_keras_object(m) for m in config["models"]
        ]
        return cls(**config)


def distillation_baseline(
    teacher, student, temperature=3.0, student_loss_weight=0.5, **kwargs
):
    """DISTILLED-BASELINE: a `keras.distillation.Distiller` from a teacher.

    The student (the small model, e.g. the BASELINE architecture) learns from
    the labels and from the teacher's softened logits
    (`keras.distillation.LogitsDistillation`); in the paper the teacher is
    the `Ensemble` of `k` trained models. The teacher is frozen. Compile and
    fit the returned distiller; the trained small model is
    `distiller.student`. A step costs a teacher forward pass (`k` models for
    an ensemble) on top of the student's step.

    Args:
        teacher: a trained Keras model (usually an `Ensemble`) that outputs
            logits.
        student: the Keras model to train, outputting logits of the same
            shape.
        temperature: float > 0, the softmax temperature of the distillation
            loss. Default 3.
        student_loss_weight: float in `[0, 1]`, the weight of the label loss;
            the distillation loss gets `1 - student_loss_weight`.
            Default 0.5.
        **kwargs: passed to `keras.distillation.Distiller`.

    Returns:
        A `keras.distillation.Distiller`.

    Example:

    ```python
    distiller = keras_mk.baselines.distillation_baseline(ensemble, student)
    distiller.compile("adam", keras.losses.SparseCategoricalCrossentropy(
        from_logits=True))
    distiller.fit(x, y, epochs=10)
    small = distiller.student
    ```

    References:
        Mazzawi et al., "Majority Kernels", 2024, Section 4.1
        (DISTILLED-BASELINE); Hinton et al., "Distilling the Knowledge in a
        Neural Network", 2015.
    """
    if not isinstance(temperature, (int, float)) or temperature <= 0:
        raise ValueError(
            "`temperature` must be a number > 0. "
            f"Received: temperature={temperature!r}"
        )
    distiller = keras.distillation.Distiller(
        teacher=teacher,
        student=student,
        # An explicit `KLDivergence` instance: Keras 3.15 turns the default
        # "kl_divergence" string into a plain function, which then skips
        # the softmax and compares raw logits (students learn nothing).
        distillation_losses=keras.distillation.LogitsDistillation(
            temperature=temperature, loss=keras.losses.KLDivergence()
        ),
        student_loss_weight=student_loss_weight,
        **kwargs,
    )
    _build_like(distiller, student)
    return distiller


def _build_like(distiller, student):
    """Builds the distiller with one inference call shaped like the student.

    Keras's `BackupAndRestore` (and anything else that saves before the
    first step) refuses an unbuilt model; a `Distiller` is only built by
    its first call. An inference call on zeros has no side effects.
    """
    try:
        structure = student.input  # Functional: the nested structure.
    except (AttributeError, ValueError):
        # Sequential (never called) only knows its flat `inputs`; a
        # subclassed student has neither and is built by `fit`.
        inputs = getattr(student, "inputs", None)
        if not inputs:
            return
        structure = inputs[0] if len(inputs) == 1 else inputs

    def zeros(tensor):
        shape = [1 if d is None else d for d in tensor.shape]
        return np.zeros(shape, tensor.dtype)

    with warnings.catch_warnings():
        # The Distiller defines no `build` (it has no weights of its own):
        # Keras warns when its first call marks it built. It just ran.
        warnings.filterwarnings(
            "ignore", message=".*does not have a `build\\(\\)` method"
        )
        distiller(keras.tree.map_structure(zeros, structure), training=False)

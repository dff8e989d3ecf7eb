"""DISTILLED-BASELINE really transfers the teacher's function."""

import keras
import numpy as np

from keras_mk import baselines


def mlp(seed):
    keras.utils.set_random_seed(seed)
    return keras.Sequential(
        [
            keras.Input((8,)),
            keras.layers.Dense(32, activation="relu"),
            keras.layers.Dense(5),
        ]
    )


def test_student_learns_teacher_from_distillation_loss_alone():
    # With Keras's default "kl_divergence" string the loss compares raw
    # logits and the student does not learn the teacher (agreement ~chance).
    x = np.random.default_rng(0).normal(size=(512, 8)).astype("float32")
    teacher = mlp(1)
    teacher_labels = np.argmax(teacher.predict(x, verbose=0), axis=-1)
    student = mlp(2)
    before = np.mean(
        np.argmax(student.predict(x, verbose=0), -1) == teacher_labels
    )
    distiller = baselines.distillation_baseline(
        teacher, student, temperature=2.0, student_loss_weight=0.0
    )
    distiller.compile(
        keras.optimizers.Adam(1e-2),
        keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    # Labels are ignored (weight 0): random ones prove it.
    y = np.random.default_rng(1).integers(0, 5, size=(512,))
    # 40 epochs: agreement is 0.91-0.94 on every backend (0.83-0.88 at 15).
    distiller.fit(x, y, batch_size=64, epochs=40, verbose=0)
    after = np.mean(
        np.argmax(student.predict(x, verbose=0), -1) == teacher_labels
    )
    assert after > 0.85 and after > before + 0.3


def test_distiller_is_built_so_backup_and_restore_accepts_it(tmp_path):
    # `keras.callbacks.BackupAndRestore` refuses an unbuilt model; a plain
    # `keras.distillation.Distiller` is unbuilt until its first step.
    distiller = baselines.distillation_baseline(
        baselines.Ensemble([mlp(1), mlp(2)]), mlp(3)
    )
    assert distiller.built
    distiller.compile(
        "adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    )
    x = np.random.default_rng(0).normal(size=(32, 8)).astype("float32")
    y = np.random.default_rng(1).integers(0, 5, size=(32,))
    backup = keras.callbacks.BackupAndRestore(str(tmp_path / "backup"))
    history = distiller.fit(x, y, epochs=2, verbose=0, callbacks=[backup])
    assert len(history.history["loss"]) == 2

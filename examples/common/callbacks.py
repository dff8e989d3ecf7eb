"""Keras callbacks measuring training: step time and learning curves."""

import time

import keras
import numpy as np


class StepTimer(keras.callbacks.Callback):
    """Measures the wall time per training step, compilation excluded.

    The first epoch (tracing and compilation) is left out when there are
    others. Put it first in the callback list so that later callbacks'
    `on_epoch_end` work (e.g. evaluation) is not counted.

    Args:
        steps_per_epoch: optimizer steps per epoch (batch callbacks come
            once per compiled call, which may run several steps).
    """

    def __init__(self, steps_per_epoch):
        super().__init__()
        self.steps_per_epoch = steps_per_epoch
        self.epoch_seconds = []
        self.epoch_steps = []
        self._start = None

    def on_epoch_begin(self, epoch, logs=None):
        self._start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.epoch_seconds.append(time.perf_counter() - self._start)
        self.epoch_steps.append(self.steps_per_epoch)

    @property
    def seconds_per_step(self):
        """Mean seconds per step over the epochs after the first."""
        start = 1 if len(self.epoch_seconds) > 1 else 0
        steps = sum(self.epoch_steps[start:])
        return sum(self.epoch_seconds[start:]) / max(steps, 1)


class CurveRecorder(keras.callbacks.Callback):
    """Records inference-mode predictions on train and test data per epoch.

    The predictions are kept as class probabilities, so curves of an
    ensemble can be computed afterwards by averaging its members'.

    Args:
        inference_model: the model whose predictions are recorded (for
            MK, ADV-MK or distillation, the model being trained inside the
            fitted wrapper). Called with `training=False`: MK layers use the
            mean of their copies, as the collapsed model will.
        x_train: training inputs.
        x_test: test inputs.
        batch_size: prediction batch size.
    """

    def __init__(self, inference_model, x_train, x_test, batch_size=512):
        super().__init__()
        self.inference_model = inference_model
        self.x_train = x_train
        self.x_test = x_test
        self.batch_size = batch_size
        self.train_probabilities = []
        self.test_probabilities = []

    def _probabilities(self, x):
        outputs = []
        for start in range(0, len(x), self.batch_size):
            logits = self.inference_model(
                x[start : start + self.batch_size], training=False
            )
            outputs.append(keras.ops.convert_to_numpy(logits))
        return softmax(np.concatenate(outputs))

    def on_epoch_end(self, epoch, logs=None):
        self.train_probabilities.append(self._probabilities(self.x_train))
        self.test_probabilities.append(self._probabilities(self.x_test))


def softmax(logits):
    """Row-wise softmax of a NumPy array of logits."""
    shifted = logits - logits.max(axis=-1, keepdims=True)
    exp = np.exp(shifted)
    return exp / exp.sum(axis=-1, keepdims=True)


def accuracy_and_loss(probabilities, labels):
    """Accuracy and mean cross-entropy of class probabilities.

    Args:
        probabilities: array `(n, classes)`.
        labels: int array `(n,)`.

    Returns:
        `(accuracy, loss)` as Python floats.
    """
    accuracy = float(np.mean(probabilities.argmax(axis=-1) == labels))
    picked = probabilities[np.arange(len(labels)), labels]
    loss = float(np.mean(-np.log(np.clip(picked, 1e-7, 1.0))))
    return accuracy, loss

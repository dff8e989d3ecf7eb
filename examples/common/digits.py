"""The main job's embedded tasks: scikit-learn's 8x8 handwritten digits.

Two tasks, both offline (the data ships with scikit-learn):

* `digits`: 1,797 images of 10 classes, a stratified 60/40 train/test split.
* `digits-noisy`: the same split with 30% of the *training* labels replaced
  by a random wrong class (the test labels stay clean). A network trained
  long enough memorises the wrong labels, so the train-test generalisation
  gap, and how an algorithm regularises, decides the test accuracy.
"""

import dataclasses

import numpy as np

TASKS = ("digits", "digits-noisy")
LABEL_NOISE = {"digits": 0.0, "digits-noisy": 0.3}
TEST_FRACTION = 0.4
NUM_CLASSES = 10
IMAGE_SHAPE = (8, 8, 1)


@dataclasses.dataclass(frozen=True)
class ImageTask:
    """A small image classification task held in memory.

    Attributes:
        name: the task's name.
        x_train: float32 images of shape `(n, 8, 8, 1)` in `[0, 1]`.
        y_train: int32 labels, possibly noisy.
        x_test: float32 test images.
        y_test: int32 clean test labels.
        num_classes: the number of classes.
        label_noise: the fraction of training labels that were flipped.
    """

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    num_classes: int
    label_noise: float

    @property
    def input_shape(self):
        return tuple(self.x_train.shape[1:])


def flip_labels(labels, fraction, num_classes, seed):
    """Replaces `fraction` of `labels` by a uniformly drawn *wrong* class.

    Args:
        labels: int array of labels.
        fraction: float in `[0, 1)`, the fraction of labels to flip.
        num_classes: the number of classes.
        seed: seed of the draw, so a task is the same on every run.

    Returns:
        A new int32 array.
    """
    rng = np.random.default_rng(seed)
    labels = np.array(labels, dtype="int32")
    flipped = rng.random(len(labels)) < fraction
    offsets = rng.integers(1, num_classes, size=int(flipped.sum()))
    labels[flipped] = (labels[flipped] + offsets) % num_classes
    return labels


def load_digits_task(name, max_train=None, max_test=None):
    """Loads one of the embedded digits tasks.

    The split and the label noise are fixed (seed 0), so every algorithm and
    every training seed sees the same data.

    Args:
        name: one of `TASKS`.
        max_train: optional cap on the number of training images (for
            smoke runs).
        max_test: optional cap on the number of test images.

    Returns:
        An `ImageTask`.
    """
    if name not in TASKS:
        raise ValueError(f"`name` must be one of {TASKS}. Received: {name!r}")
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    images = (digits.images / 16.0).astype("float32")[..., None]
    labels = digits.target.astype("int32")
    x_train, x_test, y_train, y_test = train_test_split(
        images,
        labels,
        test_size=TEST_FRACTION,
        random_state=0,
        stratify=labels,
    )
    y_train = flip_labels(y_train, LABEL_NOISE[name], NUM_CLASSES, seed=0)
    return ImageTask(
        name=name,
        x_train=x_train[:max_train],
        y_train=y_train[:max_train],
        x_test=x_test[:max_test],
        y_test=y_test[:max_test],
        num_classes=NUM_CLASSES,
        label_noise=LABEL_NOISE[name],
    )

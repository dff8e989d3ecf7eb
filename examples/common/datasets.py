"""The experiments' datasets, with train, validation and test splits.

* `mnist1d`: MNIST-1D (Greydanus, 2020), generated offline by the `mnist1d`
  package's `make_dataset` with its default arguments: 4,000 training and
  1,000 test sequences of 40 values, 10 classes. The validation split is
  1,000 sequences of a second dataset drawn with the next generator seed
  (the same distribution, no sequence shared). A capacity-limited task:
  its authors report about 68% for an MLP and 94% for a CNN.
* `digits`, `digits-noisy`: scikit-learn's 1,797 8x8 handwritten digits,
  flattened, split 60/20/20 (stratified); `digits-noisy` replaces 30% of
  the training and validation labels by a wrong class (test labels clean).
* `cifar10`: CIFAR-10 from TFDS (downloaded on first use; mock data with
  `smoke`), flattened; validation is the last 10% of the training set.
"""

import dataclasses

import numpy as np

DATASETS = ("mnist1d", "digits", "digits-noisy", "cifar10")
NOISY_FRACTION = 0.3
# Published accuracies, printed beside ours (Greydanus, "Scaling down deep
# learning", 2020, Table 1; default `make_dataset` arguments).
REFERENCES = {
    "mnist1d": "published: MLP ~68%, CNN ~94% (Greydanus 2020, Table 1)",
    "cifar10": "paper Table 5 (Adam): A1 51.79, A2 52.99, A3 53.79",
}


@dataclasses.dataclass(frozen=True)
class Dataset:
    """A classification task held in memory as flat float32 vectors.

    Attributes:
        name: the dataset's name.
        x_train, y_train: training inputs and (possibly noisy) labels.
        x_val, y_val: the validation split the learning rate is chosen on.
        x_test, y_test: the test split (clean labels).
        num_classes: the number of classes.
        label_noise: the fraction of training labels replaced.
        reference: published accuracies to print beside ours, or None.
    """

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    num_classes: int
    label_noise: float = 0.0
    reference: str = None

    @property
    def input_shape(self):
        return tuple(self.x_train.shape[1:])

    def sizes(self):
        """`{"train": n, "validation": n, "test": n}`."""
        return {
            "train": len(self.x_train),
            "validation": len(self.x_val),
            "test": len(self.x_test),
        }

    def limited(self, max_train=None, max_eval=None):
        """The same task with at most `max_train` / `max_eval` examples."""
        return dataclasses.replace(
            self,
            x_train=self.x_train[:max_train],
            y_train=self.y_train[:max_train],
            x_val=self.x_val[:max_eval],
            y_val=self.y_val[:max_eval],
            x_test=self.x_test[:max_eval],
            y_test=self.y_test[:max_eval],
        )


def flip_labels(labels, fraction, num_classes, seed):
    """Replaces `fraction` of `labels` by a uniformly drawn *wrong* class."""
    rng = np.random.default_rng(seed)
    labels = np.array(labels, dtype="int32")
    flipped = rng.random(len(labels)) < fraction
    offsets = rng.integers(1, num_classes, size=int(flipped.sum()))
    labels[flipped] = (labels[flipped] + offsets) % num_classes
    return labels


def load_mnist1d(num_samples=5000, seed=42):
    """MNIST-1D generated offline (`mnist1d.data.make_dataset`).

    Args:
        num_samples: `make_dataset`'s `num_samples` (80% train, 20% test);
            the default 5,000 is the published setting.
        seed: the generator seed of the train/test dataset; validation is
            drawn with `seed + 1`.
    """
    from mnist1d.data import get_dataset_args
    from mnist1d.data import make_dataset

    def generate(generator_seed):
        args = get_dataset_args()
        args.num_samples = num_samples
        args.seed = generator_seed
        # `make_dataset` seeds NumPy's global generator: keep ours.
        state = np.random.get_state()
        try:
            return make_dataset(args)
        finally:
            np.random.set_state(state)

    data, other = generate(seed), generate(seed + 1)
    n_val = len(data["x_test"])
    return Dataset(
        name="mnist1d",
        x_train=data["x"].astype("float32"),
        y_train=data["y"].astype("int32"),
        x_val=other["x"][:n_val].astype("float32"),
        y_val=other["y"][:n_val].astype("int32"),
        x_test=data["x_test"].astype("float32"),
        y_test=data["y_test"].astype("int32"),
        num_classes=10,
        reference=REFERENCES["mnist1d"],
    )


def load_digits(noisy=False):
    """scikit-learn's digits, 60/20/20, optionally with 30% wrong labels."""
    from sklearn.datasets import load_digits as sklearn_digits
    from sklearn.model_selection import train_test_split

    digits = sklearn_digits()
    x = (digits.data / 16.0).astype("float32")
    y = digits.target.astype("int32")
    x_train, x_rest, y_train, y_rest = train_test_split(
        x, y, test_size=0.4, random_state=0, stratify=y
    )
    x_val, x_test, y_val, y_test = train_test_split(
        x_rest, y_rest, test_size=0.5, random_state=0, stratify=y_rest
    )
    noise = NOISY_FRACTION if noisy else 0.0
    return Dataset(
        name="digits-noisy" if noisy else "digits",
        x_train=x_train,
        y_train=flip_labels(y_train, noise, 10, seed=0),
        x_val=x_val,
        # Validation labels are as noisy as training labels: in practice no
        # clean labels are at hand to tune on.
        y_val=flip_labels(y_val, noise, 10, seed=1),
        x_test=x_test,
        y_test=y_test,
        num_classes=10,
        label_noise=noise,
    )


def load_cifar10(data_dir=None, smoke=False):
    """CIFAR-10 from TFDS, flattened to 3,072 floats in `[0, 1]`."""
    from examples.common import tfds_data

    def split(name):
        data = tfds_data.load_numpy(
            "cifar10", name, ("image", "label"), data_dir
        )
        x = data["image"].reshape(len(data["image"]), -1)
        return x.astype("float32") / 255.0, data["label"].astype("int32")

    with tfds_data.offline_stand_in(smoke, num_examples=256):
        x_train, y_train = split("train[:90%]")
        x_val, y_val = split("train[90%:]")
        x_test, y_test = split("test")
    splits = (x_train, y_train, x_val, y_val, x_test, y_test)
    return Dataset("cifar10", *splits, 10, reference=REFERENCES["cifar10"])


def load(name, data_dir=None, smoke=False, mnist1d_samples=5000):
    """Loads one of `DATASETS`."""
    if name == "mnist1d":
        return load_mnist1d(mnist1d_samples)
    if name in ("digits", "digits-noisy"):
        return load_digits(noisy=name == "digits-noisy")
    if name == "cifar10":
        return load_cifar10(data_dir, smoke)
    raise ValueError(f"`name` must be one of {DATASETS}. Received: {name!r}")

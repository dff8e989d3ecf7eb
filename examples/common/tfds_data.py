"""Loading TensorFlow Datasets, and their offline stand-in for smoke runs.

The experiment scripts load the paper's datasets (CIFAR-10, ImageNet, GLUE)
with `tensorflow_datasets`. Their `--smoke` runs wrap the very same loading
code in `offline_stand_in(True)`, i.e. `tfds.testing.mock_data`: random
examples with the dataset's real features, no download.
"""

import contextlib

import numpy as np


@contextlib.contextmanager
def offline_stand_in(enabled, num_examples=64):
    """Within the block, `tfds.load` returns random mock examples.

    Args:
        enabled: whether to mock (False: a no-op block).
        num_examples: examples per split when mocking.
    """
    if not enabled:
        yield
        return
    import tensorflow_datasets as tfds

    with tfds.testing.mock_data(num_examples=num_examples):
        yield


def load_dataset(name, split, data_dir=None, shuffle_files=False):
    """`tfds.load(name, split=...)` as a `tf.data.Dataset` of dicts.

    Args:
        name: a TFDS name, e.g. `"cifar10"` or `"glue/mrpc"`.
        split: a TFDS split, e.g. `"train[:90%]"`.
        data_dir: optional TFDS data directory.
        shuffle_files: whether to shuffle the files (large datasets).

    Returns:
        A `tf.data.Dataset`.
    """
    import tensorflow_datasets as tfds

    return tfds.load(
        name, split=split, data_dir=data_dir, shuffle_files=shuffle_files
    )


def load_numpy(name, split, keys, data_dir=None, max_examples=None):
    """Loads a whole split into NumPy arrays (for small datasets).

    Reads in batches (`batch_size=-1` fails on mocked datasets).

    Args:
        name: a TFDS name.
        split: a TFDS split.
        keys: the feature names to keep.
        data_dir: optional TFDS data directory.
        max_examples: optional cap on the number of examples.

    Returns:
        A dict `key -> np.ndarray`.
    """
    import tensorflow_datasets as tfds

    dataset = load_dataset(name, split, data_dir)
    if max_examples is not None:
        dataset = dataset.take(max_examples)
    columns = {key: [] for key in keys}
    for batch in tfds.as_numpy(dataset.batch(4096)):
        for key in keys:
            columns[key].append(batch[key])
    return {key: np.concatenate(values) for key, values in columns.items()}

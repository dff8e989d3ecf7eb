"""Inference cost of a deployed model: parameters and latency."""

import statistics
import time


def inference_latency_ms(model, inputs, repeats=50, warmup=5):
    """Median wall time of `model.predict_on_batch(inputs)` in milliseconds.

    `predict_on_batch` runs the backend's compiled predict function (a
    `tf.function`, a jitted JAX function, or eager PyTorch), as a served
    model would.

    Args:
        model: a built Keras model.
        inputs: one batch of inputs.
        repeats: timed calls; the median is returned.
        warmup: untimed calls first (tracing, compilation).

    Returns:
        The median latency in milliseconds.
    """
    for _ in range(warmup):
        model.predict_on_batch(inputs)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        model.predict_on_batch(inputs)
        times.append(time.perf_counter() - start)
    return 1000.0 * statistics.median(times)

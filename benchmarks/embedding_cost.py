"""One training step of an MK embedding table: gather-then-mix vs the table.

A 30k x 256 table (`expansion=3`) looked up by a batch of 32 x 128 tokens,
mean-pooled into a Dense(1) head, trained with Adam (`train_on_batch`,
compiled as Keras compiles it). "gather" is `MKEmbedding` as shipped (the
rows a batch uses are mixed: tokens x dim x e); "table" mixes the whole
table every step, as every other MK layer mixes its kernel (vocabulary x
dim x e). Each mode runs in its own process; memory is that process's
peak resident set (the model, its Adam slots and the step together).

    python -m benchmarks.embedding_cost [--backends jax tensorflow torch]
"""

import argparse
import json
import os
import resource
import subprocess
import sys
import time

from benchmarks import common

VOCABULARY, DIM, EXPANSION = 30_000, 256, 3
BATCH, LENGTH, STEPS = 32, 128, 20


def measure(mode):
    """Median step time (ms) and peak RSS (MiB) of one mode, here."""
    import keras
    import numpy as np

    from keras_mk import layers

    class WholeTable(layers.MKEmbedding):
        def _mixes_rows(self):
            return False  # the whole table mixed every step

    table = layers.MKEmbedding if mode == "gather" else WholeTable
    model = keras.Sequential(
        [
            keras.Input((LENGTH,), dtype="int32"),
            table(VOCABULARY, DIM, expansion=EXPANSION, seed=0),
            keras.layers.GlobalAveragePooling1D(),
            keras.layers.Dense(1),
        ]
    )
    model.compile(keras.optimizers.Adam(1e-3), "mse")
    rng = np.random.default_rng(0)
    x = rng.integers(0, VOCABULARY, (BATCH, LENGTH)).astype("int32")
    y = rng.normal(size=(BATCH, 1)).astype("float32")
    for _ in range(3):  # compile and warm up
        model.train_on_batch(x, y)
    times = []
    for _ in range(STEPS):
        start = time.perf_counter()
        loss = model.train_on_batch(x, y)
        float(np.asarray(loss))  # wait for the step
        times.append(time.perf_counter() - start)
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {
        "step_ms": 1000 * float(np.median(times)),
        "peak_rss_mib": peak_kib / 1024,
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backends", nargs="+", default=["jax"])
    parser.add_argument("--mode", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.mode:  # a child process
        print(json.dumps(measure(args.mode)))
        return
    for backend in args.backends:
        result = {
            "table": [VOCABULARY, DIM],
            "expansion": EXPANSION,
            "tokens": BATCH * LENGTH,
        }
        for mode in ("gather", "table"):
            out = subprocess.run(
                [sys.executable, "-m", "benchmarks.embedding_cost"]
                + ["--mode", mode],
                env={**os.environ, "KERAS_BACKEND": backend},
                capture_output=True,
                text=True,
                check=True,
            )
            result[mode] = json.loads(out.stdout.strip().splitlines()[-1])
        result["speedup"] = (
            result["table"]["step_ms"] / result["gather"]["step_ms"]
        )
        print(backend, json.dumps(result))
        common.write_json(result, common.result_path("embedding_cost", backend))


if __name__ == "__main__":
    main()

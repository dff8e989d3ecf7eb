"""What MK on LoRA adapters costs against plain LoRA: step, state, memory.

A KerasHub `GemmaCausalLM` built from its config (no preprocessor),
`backbone.enable_lora(8)` on its default targets (the attention's query
and value), trained with Adam by `train_on_batch` on token ids (a
next-token loss through the tied embedding). Three variants, each in its
own fresh process:

- `lora`: plain LoRA;
- `mk_lora`: `keras_mk.clone_model` of it (e = 3), the adapters simulated;
- `mk_lora_uniform`: the same with uniform `p`, the floor (the copies and
  their optimizer slots, no sampling).

Per variant: the median step time after warm-up, the trainable state
(the trainable variables and the optimizer's slots, bytes counted
exactly) and the process's peak resident memory, from the start through
building, conversion and training (what a user's process holds).

    python -m benchmarks.lora_cost [--backends jax] [--size small|large]

`small` is vocabulary 1,000, 2 layers, hidden 128, 4 heads (the step-time
row); `large` (vocabulary 16,000, 4 layers, hidden 1,024, ~80M frozen
parameters) makes the frozen base dominate the memory.
"""

import argparse
import json
import os
import resource
import subprocess
import sys
import time

from benchmarks import common

SIZES = {
    "small": dict(
        vocabulary_size=1000,
        num_layers=2,
        num_query_heads=4,
        num_key_value_heads=4,
        hidden_dim=128,
        intermediate_dim=256,
        head_dim=32,
    ),
    "large": dict(
        vocabulary_size=16000,
        num_layers=4,
        num_query_heads=8,
        num_key_value_heads=8,
        hidden_dim=1024,
        intermediate_dim=4096,
        head_dim=128,
    ),
}
RANK, EXPANSION, BATCH, LENGTH, STEPS = 8, 3, 4, 64, 20
VARIANTS = ("lora", "mk_lora", "mk_lora_uniform")


def _nbytes(variables):
    import numpy as np

    return int(
        sum(np.prod(v.shape) * np.dtype(v.dtype).itemsize for v in variables)
    )


def measure(variant, size):
    """One variant's step time, trainable state and peak memory, here."""
    import keras
    import keras_hub
    import numpy as np

    import keras_mk

    keras.utils.set_random_seed(0)
    backbone = keras_hub.models.GemmaBackbone(**SIZES[size])
    backbone.enable_lora(RANK)
    model = keras_hub.models.GemmaCausalLM(backbone, preprocessor=None)
    if variant != "lora":
        probabilities = "uniform" if variant.endswith("uniform") else None
        extra = {"probabilities": probabilities} if probabilities else {}
        model = keras_mk.clone_model(
            model, expansion=EXPANSION, seed=0, **extra
        )
    model.compile(
        optimizer=keras.optimizers.Adam(1e-3),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        weighted_metrics=[],
    )
    rng = np.random.default_rng(0)
    vocabulary = SIZES[size]["vocabulary_size"]
    x = {
        "token_ids": rng.integers(0, vocabulary, (BATCH, LENGTH)),
        "padding_mask": np.ones((BATCH, LENGTH), "int32"),
    }
    y = rng.integers(0, vocabulary, (BATCH, LENGTH))
    for _ in range(5):  # compile and warm up
        model.train_on_batch(x, y)
    times = []
    for _ in range(STEPS):
        start = time.perf_counter()
        float(np.asarray(model.train_on_batch(x, y)))
        times.append(time.perf_counter() - start)
    trainable = model.trainable_variables
    return {
        "step_ms": 1000 * float(np.median(times)),
        "step_ms_spread": [1000 * min(times), 1000 * max(times)],
        "trainable_bytes": _nbytes(trainable),
        "optimizer_bytes": _nbytes(model.optimizer.variables),
        "frozen_bytes": _nbytes(model.non_trainable_variables),
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        / 1024,
    }


def _child(backend, variant, size):
    command = [
        sys.executable,
        "-m",
        "benchmarks.lora_cost",
        "--variant",
        variant,
        "--size",
        size,
    ]
    output = subprocess.run(
        command,
        check=True,
        capture_output=True,
        text=True,
        env={**os.environ, "KERAS_BACKEND": backend},
    ).stdout
    return json.loads(output.strip().splitlines()[-1])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backends", nargs="+", default=["jax"])
    parser.add_argument("--size", choices=sorted(SIZES), default="small")
    parser.add_argument("--variant", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.variant:  # a child process
        print(json.dumps(measure(args.variant, args.size)))
        return
    for backend in args.backends:
        results = {"machine": common.machine(), "size": args.size}
        rows = {v: _child(backend, v, args.size) for v in VARIANTS}
        plain = rows["lora"]
        for row in rows.values():
            row["step_vs_lora"] = row["step_ms"] / plain["step_ms"]
            row["memory_vs_lora"] = row["peak_rss_mib"] / plain["peak_rss_mib"]
            state = row["trainable_bytes"] + row["optimizer_bytes"]
            row["state_vs_lora"] = state / (
                plain["trainable_bytes"] + plain["optimizer_bytes"]
            )
        results["variants"] = rows
        print(backend, json.dumps(rows, indent=1))
        common.write_json(
            results, common.result_path(f"lora_cost_{args.size}", backend)
        )


if __name__ == "__main__":
    main()

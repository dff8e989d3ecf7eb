"""Trains a small MK model on one device and on several; prints JSON.

Run as a script (by `test_mk_distribution.py`) in a fresh process: the
device count must be fixed before JAX or TensorFlow starts.

    python mk_distributed_run.py {data_parallel|model_parallel|mirrored}
"""

import json
import os
import sys

MODE = sys.argv[1]
DEVICES = 8 if MODE in ("data_parallel", "model_parallel") else 2
os.environ["XLA_FLAGS"] = (
    os.environ.get("XLA_FLAGS", "")
    + f" --xla_force_host_platform_device_count={DEVICES}"
)
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

if MODE == "mirrored":
    import tensorflow as tf

    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(
        cpu, [tf.config.LogicalDeviceConfiguration()] * DEVICES
    )

import keras  # noqa: E402
import numpy as np  # noqa: E402

import keras_mk  # noqa: E402

STEPS = 3
GLOBAL_BATCH = 32


def build():
    inputs = keras.Input((16,))
    x = keras_mk.MKDense(32, expansion=3, activation="relu", seed=1)(inputs)
    x = keras_mk.MKDense(8, expansion=3, seed=2)(x)
    model = keras.Model(inputs, x)
    # Same start everywhere: the copies start different (independent).
    rng = np.random.default_rng(0)
    for v in model.trainable_variables:
        v.assign(rng.normal(size=v.shape).astype("float32") * 0.3)
    model.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse")
    return model


def data():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(STEPS * GLOBAL_BATCH, 16)).astype("float32")
    y = rng.normal(size=(STEPS * GLOBAL_BATCH, 8)).astype("float32")
    return x, y


def train(model):
    x, y = data()
    history = model.fit(
        x, y, batch_size=GLOBAL_BATCH, epochs=1, shuffle=False, verbose=0
    )
    return {
        "weights": [
            keras.ops.convert_to_numpy(v).tolist()
            for v in model.trainable_variables
        ],
        "loss": history.history["loss"][-1],
    }


def first_layer_p(model):
    layer = model.layers[1]
    return keras.ops.convert_to_numpy(layer.sample_probabilities()).tolist()


def main():
    result = {"devices": DEVICES}
    single = build()
    result["p_single"] = first_layer_p(single)
    result["single"] = train(single)
    keras.backend.clear_session()
    if MODE == "mirrored":
        import tensorflow as tf

        strategy = tf.distribute.MirroredStrategy(
            [f"/cpu:{i}" for i in range(DEVICES)]
        )
        result["replicas"] = strategy.num_replicas_in_sync
        with strategy.scope():
            multi = build()
        result["p_multi"] = first_layer_p(multi)
        result["multi"] = train(multi)
    else:
        devices = keras.distribution.list_devices()
        if MODE == "data_parallel":
            distribution = keras.distribution.DataParallel(devices=devices)
        else:
            mesh = keras.distribution.DeviceMesh(
                (2, 4), ["batch", "model"], devices=devices
            )
            plain_map = keras.distribution.LayoutMap(mesh)
            plain_map[".*dense.*kernel"] = (None, "model")
            plain_map[".*dense.*bias"] = ("model",)
            distribution = keras.distribution.ModelParallel(
                layout_map=keras_mk.mk_layout_map(plain_map),
                batch_dim_name="batch",
            )
        result["replicas"] = len(devices)
        with distribution.scope():
            multi = build()
            result["p_multi"] = first_layer_p(multi)
            result["specs"] = {
                v.path: str(v.value.sharding.spec) for v in multi.variables
            }
            result["multi"] = train(multi)
    print("RESULT " + json.dumps(result))


if __name__ == "__main__":
    main()

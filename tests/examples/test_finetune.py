"""The fine-tuning protocol (`examples.main --finetune`): checkpoints, the
starting point of every algorithm, the LoRA algorithms, the text corpus."""

import keras
import numpy as np
import pytest

import keras_mk
from examples.common import adapters
from examples.common import algorithms
from examples.common import docstrings
from examples.common import finetune
from examples.common import text_model
from examples.common.models import TOPOLOGIES

SEED = 3
EVERY = (
    algorithms.BASELINE,
    algorithms.BASELINE_LONG,
    algorithms.MAJORITY,
    algorithms.LORA,
    algorithms.LORA_LONG,
    algorithms.LORA_WIDE,
    algorithms.MK_LORA,
)


@pytest.fixture(scope="module")
def pair():
    return finetune.load("digits-5to9")


@pytest.fixture(scope="module")
def checkpoints(pair, tmp_path_factory):
    directory = tmp_path_factory.mktemp("checkpoints")
    return finetune.Checkpoints(
        pair, TOPOLOGIES["A1"], "A1", str(directory), smoke=True
    )


def _numpy(weights):
    return [keras.ops.convert_to_numpy(w) for w in weights]


def _budget():
    return algorithms.Budget(epochs=1, batch_size=64, optimizer="adam")


def _built(algorithm, pair, checkpoints, seed=SEED):
    return algorithms._build(
        algorithm, pair.target, TOPOLOGIES["A1"], seed, _budget(), None,
        checkpoints,
    )  # fmt: skip


def test_pairs_say_what_shifts_and_keep_splits_apart(pair):
    assert pair.new_head and pair.source.num_classes == 5
    assert pair.target.num_classes == 5
    assert set(np.unique(pair.target.y_train)) == set(range(5))
    sizes = pair.target.sizes()
    assert sizes["train"] == 300 and sizes["validation"] == 300
    shifted = finetune.load("mnist1d-shift")
    assert not shifted.new_head
    assert "translation" in shifted.shift
    assert shifted.target.sizes()["train"] == 500


def test_every_algorithm_of_a_seed_starts_from_its_checkpoint(
    pair, checkpoints
):
    checkpoint = checkpoints.weights(SEED)
    start = checkpoints.start(SEED)
    inputs = pair.target.x_test[:64]
    expected = keras.ops.convert_to_numpy(start(inputs, training=False))
    hidden = _numpy(start.get_layer("dense_0").weights)
    # The hidden layer's kernel and bias are the checkpoint's, bit for bit;
    # the head is new (5 classes), from the seed.
    np.testing.assert_array_equal(hidden[0], checkpoint[0])
    np.testing.assert_array_equal(hidden[1], checkpoint[1])
    for algorithm in EVERY:
        _, evaluated, model = _built(algorithm, pair, checkpoints)
        outputs = keras.ops.convert_to_numpy(evaluated(inputs, training=False))
        # MK right after conversion, LoRA (b = 0) and the plain model all
        # predict exactly as the checkpoint.
        np.testing.assert_array_equal(outputs, expected, err_msg=algorithm)
        dense = model.get_layer("dense_0")
        np.testing.assert_array_equal(
            keras.ops.convert_to_numpy(dense.kernel), checkpoint[0]
        )
    other = checkpoints.weights(SEED + 1)
    assert not np.array_equal(other[0], checkpoint[0])


def test_checkpoints_are_deterministic_cached_and_reused(
    pair, checkpoints, tmp_path, monkeypatch
):
    first = checkpoints.weights(SEED)
    again = finetune.Checkpoints(
        pair, TOPOLOGIES["A1"], "A1", str(tmp_path), smoke=True
    )
    for mine, theirs in zip(again.weights(SEED), first):
        np.testing.assert_array_equal(mine, theirs)
    assert (
        again.summary()[0]["fingerprint"]
        == checkpoints.records[SEED]["fingerprint"]
    )

    def refuse(*args):
        raise AssertionError("pretrained again")

    monkeypatch.setattr(finetune.Checkpoints, "_pretrain", refuse)
    reused = finetune.Checkpoints(
        pair, TOPOLOGIES["A1"], "A1", str(tmp_path), smoke=True
    )
    for mine, theirs in zip(reused.weights(SEED), first):
        np.testing.assert_array_equal(mine, theirs)


def _allowed(path):
    return "lora_kernel" in path or path.endswith("bias") or "logits" in path


def test_lora_algorithms_train_only_adapters_and_the_head(pair, checkpoints):
    checkpoint = checkpoints.weights(SEED)
    for algorithm in algorithms.LORA_ALGORITHMS:
        _, evaluated, _ = _built(algorithm, pair, checkpoints)
        trainable = [w.path for w in evaluated.trainable_weights]
        assert all(_allowed(p) for p in trainable), (algorithm, trainable)
        assert any("logits" in p for p in trainable)
        assert any("lora_kernel_a" in p for p in trainable)
        copies = [p for p in trainable if "_copy_" in p]
        assert bool(copies) == (algorithm == algorithms.MK_LORA)
    run = algorithms.train(
        algorithms.MK_LORA, pair.target, TOPOLOGIES["A1"], 0.01, SEED,
        _budget(), start=checkpoints,
    )  # fmt: skip
    dense = run.deployed.get_layer("dense_0")
    # The deployed model is the collapsed LoRA model: the kernel frozen at
    # the checkpoint's, the adapters trained.
    (kernel,) = [w for w in dense.weights if w.path.endswith("/kernel")]
    assert not kernel.trainable
    np.testing.assert_array_equal(
        keras.ops.convert_to_numpy(kernel), checkpoint[0]
    )
    assert dense.lora_enabled and dense.lora_rank == 4
    assert np.any(keras.ops.convert_to_numpy(dense.lora_kernel_b) != 0)
    assert not keras_mk.training.mk_layers(run.deployed)


def test_lora_wide_has_e_times_the_rank():
    budget = algorithms.Budget(expansion=3, lora_rank=4)
    assert budget.rank_for(algorithms.LORA_WIDE) == 12
    assert budget.rank_for(algorithms.LORA) == 4
    assert budget.rank_for(algorithms.MK_LORA) == 4
    assert budget.epochs_for(algorithms.LORA_LONG) == 3 * budget.epochs
    assert budget.epochs_for(algorithms.MK_LORA) == 3 * budget.epochs
    assert budget.epochs_for(algorithms.LORA_WIDE) == budget.epochs


def test_the_text_model_trains_its_query_and_value_adapters_and_head():
    model = text_model.classifier(text_model.backbone(0), 4, seed=1)
    ids = text_model.encode(["def f(x): return x", "a" * 200])
    before = keras.ops.convert_to_numpy(model(ids))
    adapters.with_adapters(model, rank=2)
    trainable = {w.path for w in model.trainable_weights}
    assert trainable and all(_allowed(p) for p in trainable), trainable
    assert any("query/lora_kernel_a" in p for p in trainable)
    assert any("value/lora_kernel_b" in p for p in trainable)
    np.testing.assert_array_equal(
        keras.ops.convert_to_numpy(model(ids)), before
    )
    mk = keras_mk.clone_model(model, expansion=3, seed=0)
    np.testing.assert_array_equal(
        keras.ops.convert_to_numpy(mk(ids, training=False)), before
    )


def test_with_adapters_refuses_a_model_without_lora_layers():
    model = keras.Sequential(
        [keras.Input((3,)), keras.layers.Dense(2, name="logits")]
    )
    with pytest.raises(ValueError, match="No layer of model"):
        adapters.with_adapters(model, rank=2)


def test_encode_pads_and_maps_characters():
    ids = text_model.encode(["ab", "é" + "x" * 100], length=4)
    assert ids.shape == (2, 4)
    np.testing.assert_array_equal(ids[0], [ord("a") - 30, ord("b") - 30, 0, 0])
    assert ids[1, 0] == text_model.UNKNOWN


def test_docstrings_hide_the_package_names():
    cleaned = docstrings.clean(
        "Use `keras.ops` or tf.data; see NumPy and\n jnp"
    )
    assert cleaned == "Use `pkg.ops` or pkg.data; see pkg and pkg"


def test_the_corpus_refuses_other_versions_and_other_text(tmp_path):
    constraints = tmp_path / "constraints.txt"
    installed = docstrings.versions(["keras"])
    constraints.write_text("keras==0.0.1  # old\nnumpy==1\n")
    with pytest.raises(ValueError, match=r"keras .* \(pinned: 0\.0\.1\)"):
        docstrings.check({"keras": ["text"]}, str(constraints))
    constraints.write_text(f"keras=={installed['keras']}\n")
    with pytest.raises(ValueError, match=r"\['keras'\] have digests"):
        docstrings.check({"keras": ["not the recorded text"]}, str(constraints))

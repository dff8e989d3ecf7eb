"""The main job's opt-in MK variants with `p` shared per unit or layer."""

import types

import pytest

import keras_mk
from examples.common import algorithms
from keras_mk import training


@pytest.mark.parametrize(
    "algorithm, sharing",
    [
        (algorithms.MAJORITY, "element"),
        (algorithms.MAJORITY_UNIT, "unit"),
        (algorithms.MAJORITY_LAYER, "layer"),
    ],
)
def test_mk_variants_train_mk_layers_with_their_sharing(algorithm, sharing):
    data = types.SimpleNamespace(input_shape=(12,), num_classes=3)
    budget = algorithms.Budget(epochs=2, expansion=3)
    fitted, evaluated, plain = algorithms._build(
        algorithm, data, (8,), seed=0, budget=budget, teacher=None
    )
    layers = training.mk_layers(evaluated)
    assert fitted is evaluated
    assert len(layers) == 2
    assert {layer.probability_sharing for layer in layers} == {sharing}
    assert {layer.expansion for layer in layers} == {3}
    # The long budget, like MK; deployed at the plain size.
    assert budget.epochs_for(algorithm) == 6
    collapsed = keras_mk.collapse(evaluated)
    assert collapsed.count_params() == plain.count_params()

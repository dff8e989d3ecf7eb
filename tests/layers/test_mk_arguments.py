"""Bad arguments raise a ValueError naming the argument and the value."""

import keras
import pytest

from keras_mk import layers

ALL_LAYERS = [
    (layers.MKDense, {"units": 2}),
    (layers.MKEinsumDense, {"equation": "ab,bc->ac", "output_shape": 2}),
    (layers.MKConv1D, {"filters": 2, "kernel_size": 2}),
    (layers.MKConv2D, {"filters": 2, "kernel_size": 2}),
    (layers.MKConv3D, {"filters": 2, "kernel_size": 2}),
    (layers.MKDepthwiseConv1D, {"kernel_size": 2}),
    (layers.MKDepthwiseConv2D, {"kernel_size": 2}),
]
IDS = [cls.__name__ for cls, _ in ALL_LAYERS]

BAD = [
    ("expansion", 0, "Received: expansion=0"),
    ("expansion", -1, "Received: expansion=-1"),
    ("expansion", 2.5, "Received: expansion=2.5"),
    ("expansion", True, "Received: expansion=True"),
    ("expansion", "3", "Received: expansion='3'"),
    ("expansion", None, "Received: expansion=None"),
    ("concentration", 0.0, "Received: concentration=0.0"),
    ("concentration", -1.0, "Received: concentration=-1.0"),
    ("concentration", float("nan"), "Received: concentration=nan"),
    ("concentration", float("inf"), "Received: concentration=inf"),
    ("concentration", "1", "Received: concentration='1'"),
    ("probabilities", "gaussian", "Received: probabilities='gaussian'"),
    ("probabilities", None, "Received: probabilities=None"),
    ("copy_initialization", "copy", "Received: copy_initialization='copy'"),
    ("expand_bias", "yes", "Received: expand_bias='yes'"),
    ("seed", "seven", "Received: seed='seven'"),
    ("seed", 1.5, "Received: seed=1.5"),
]


@pytest.mark.parametrize("cls,kwargs", ALL_LAYERS, ids=IDS)
@pytest.mark.parametrize(
    "name,value,message", BAD, ids=[f"{n}={v!r}" for n, v, _ in BAD]
)
def test_bad_argument_raises_value_error(cls, kwargs, name, value, message):
    with pytest.raises(ValueError) as info:
        cls(**kwargs, **{name: value})
    assert message in str(info.value)
    assert f"`{name}`" in str(info.value)


@pytest.mark.parametrize("cls,kwargs", ALL_LAYERS, ids=IDS)
def test_good_arguments_are_kept(cls, kwargs):
    layer = cls(
        **kwargs,
        expansion=2,
        probabilities="uniform",
        concentration=3,
        expand_bias=True,
        copy_initialization="independent",
        seed=5,
    )
    assert isinstance(layer, keras.layers.Layer)
    assert (layer.expansion, layer.probabilities) == (2, "uniform")
    assert layer.concentration == 3.0 and layer.expand_bias
    assert layer.copy_initialization == "independent" and layer.seed == 5


def test_lora_and_quantization_are_refused_with_a_way_out():
    with pytest.raises(ValueError, match="Received: lora_rank=4"):
        layers.MKDense(2, lora_rank=4)
    layer = layers.MKDense(2)
    layer.build((None, 3))
    with pytest.raises(NotImplementedError, match="collapse"):
        layer.enable_lora(2)
    with pytest.raises(ValueError, match="collapse"):
        layer.quantize("int8")


def test_mk_layers_are_the_keras_layers_they_extend():
    assert issubclass(layers.MKDense, keras.layers.Dense)
    assert issubclass(layers.MKEinsumDense, keras.layers.EinsumDense)
    assert issubclass(layers.MKConv2D, keras.layers.Conv2D)
    assert issubclass(layers.MKDepthwiseConv2D, keras.layers.DepthwiseConv2D)
    for cls, _ in ALL_LAYERS:
        name = f"keras_mk>{cls.__name__}"
        assert keras.saving.get_registered_object(name) is cls

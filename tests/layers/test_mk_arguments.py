"""The MK arguments: validated once, by `MKConfig`, read by every route.

One table of bad values per argument checks `MKConfig`; then each MK layer
class, `keras_mk.clone_model` and `keras_mk.clone_function` are shown to
route their arguments through it (the same `ValueError`, naming the
argument and the value).
"""

import re

import keras
import layer_specs
import numpy as np
import pytest

import keras_mk
from keras_mk import layers
from keras_mk.layers import MKConfig

# Every registered MK class (a class without a spec fails here).
ALL_LAYERS = [(c, layer_specs.spec(c).kwargs) for c in layer_specs.MK_CLASSES]
IDS = layer_specs.IDS

# Per argument: bad values. The message is "... Received: name=repr(value)".
BAD = {
    "expansion": [0, -1, 2.5, True, "3", None],
    "probabilities": ["gaussian", None],
    "concentration": [0.0, -1.0, float("nan"), float("inf"), "1", False],
    "expand_bias": ["yes", 1, None],
    "copy_initialization": ["copy", None],
    "probability_sharing": ["row", None],
    "seed": ["seven", 1.5, True],
}
BAD_ROWS = [(name, value) for name, values in BAD.items() for value in values]
# One bad value per argument, for the routing checks.
FIRST_BAD = [(name, values[0]) for name, values in BAD.items()]
GOOD = dict(
    expansion=np.int64(2),
    probabilities="uniform",
    concentration=3,
    expand_bias=True,
    copy_initialization="independent",
    probability_sharing="unit",
    seed=5,
)


def numpy(x):
    return keras.ops.convert_to_numpy(x)


def _message(name, value):
    return re.escape(f"Received: {name}={value!r}")


def test_every_argument_has_a_table_of_bad_values():
    assert tuple(BAD) == MKConfig.names()
    assert set(GOOD) == set(MKConfig.names())


@pytest.mark.parametrize(
    "name,value", BAD_ROWS, ids=[f"{n}={v!r}" for n, v in BAD_ROWS]
)
def test_config_rejects_a_bad_value_naming_argument_and_value(name, value):
    with pytest.raises(ValueError, match=f"`{name}`.*{_message(name, value)}"):
        MKConfig(**{name: value})


def test_config_normalises_good_values_and_round_trips():
    config = MKConfig(**GOOD)
    assert type(config.expansion) is int and config.expansion == 2
    assert type(config.concentration) is float and config.concentration == 3
    assert list(config.to_dict()) == list(MKConfig.names())
    assert MKConfig(**config.to_dict()) == config
    assert config.replace(seed=6).seed == 6 and config.seed == 5
    with pytest.raises(ValueError, match="Received: expansion=0"):
        config.replace(expansion=0)
    with pytest.raises(AttributeError):
        config.expansion = 4  # frozen
    defaults = MKConfig()
    assert (defaults.expansion, defaults.probabilities) == (3, "exponential")
    generator = keras.random.SeedGenerator(9)
    assert MKConfig(seed=generator).seed is generator


@pytest.mark.parametrize("cls,kwargs", ALL_LAYERS, ids=IDS)
def test_each_layer_validates_through_the_config(cls, kwargs):
    for name, value in FIRST_BAD:
        with pytest.raises(ValueError, match=_message(name, value)):
            cls(**kwargs, **{name: value})
    layer = cls(**kwargs, **GOOD)
    assert layer.mk_config == MKConfig(**GOOD)
    assert layer.mk_arguments() == MKConfig(**GOOD).to_dict()
    for name, value in MKConfig(**GOOD).to_dict().items():
        assert getattr(layer, name) == value
        assert layer.get_config()[name] == value
    restored = cls.from_config(layer.get_config())
    assert restored.get_config() == layer.get_config()


@pytest.mark.parametrize("route", ["clone_model", "clone_function"])
def test_conversion_validates_through_the_config(route):
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])

    def convert(**kwargs):
        if route == "clone_model":
            return keras_mk.clone_model(model, **kwargs)
        return keras.models.clone_model(
            model, clone_function=keras_mk.clone_function(**kwargs)
        )

    for name, value in FIRST_BAD:
        if name == "copy_initialization":
            continue  # refused whatever its value, below
        with pytest.raises(ValueError, match=_message(name, value)):
            convert(**{name: value})
    with pytest.raises(ValueError, match="always replicates"):
        convert(copy_initialization="replicate")
    with pytest.raises(ValueError, match="Unknown MK layer arguments"):
        convert(kernel_size=3)
    # Layer `i` gets `seed + i`; a generator cannot be shared that way.
    with pytest.raises(ValueError, match="layer `i` gets `seed \\+ i`"):
        convert(seed=keras.random.SeedGenerator(1))
    good = {k: v for k, v in GOOD.items() if k != "copy_initialization"}
    (mk,) = [layer for layer in convert(**good).layers]
    assert mk.mk_config == MKConfig(**GOOD).replace(
        copy_initialization="replicate"
    )


def test_mk_arguments_are_keyword_only_in_the_conversion():
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    with pytest.raises(TypeError):
        keras_mk.clone_model(model, 3)
    with pytest.raises(TypeError, match="keyword-only"):
        keras_mk.clone_function(3)


def test_quantization_is_refused_with_a_way_out():
    layer = layers.MKDense(2)
    layer.build((None, 3))
    with pytest.raises(ValueError, match="collapse"):
        layer.quantize("int8")


@pytest.mark.parametrize("cls,kwargs", ALL_LAYERS, ids=IDS)
def test_a_quantized_dtype_policy_is_refused_naming_it(cls, kwargs):
    # Found by Keras's own Embedding tests: the layer was built with int8
    # weights it never trained, and loading their scales dropped them.
    for dtype in ("int8_from_float32", "int4_from_mixed_bfloat16"):
        with pytest.raises(ValueError, match=f"Received: dtype='{dtype}'"):
            cls(**kwargs, dtype=dtype)
    cls(**kwargs, dtype="mixed_bfloat16")  # float policies are welcome


@pytest.mark.parametrize(
    "make",
    [
        lambda dtype: layers.MKEmbedding(4, 3, dtype=dtype),
        lambda dtype: layers.MKReversibleEmbedding(4, 3, dtype=dtype),
        lambda dtype: layers.MKLSTM(4, dtype=dtype),
        lambda dtype: layers.MKGRUCell(4, dtype=dtype),
    ],
    ids=["embedding", "reversible_embedding", "lstm", "gru_cell"],
)
def test_tables_and_recurrent_layers_refuse_a_quantized_dtype_policy(make):
    with pytest.raises(ValueError, match="Received: dtype='int8_from_float32'"):
        make("int8_from_float32")


@pytest.mark.parametrize("cls,kwargs", ALL_LAYERS, ids=IDS)
def test_each_layer_is_registered_under_the_package_name(cls, kwargs):
    name = f"keras_mk>{cls.__name__}"
    assert keras.saving.get_registered_object(name) is cls
    serialized = keras.saving.serialize_keras_object(cls(**kwargs))
    assert serialized["registered_name"] == name
    restored = keras.saving.deserialize_keras_object(serialized)
    assert type(restored) is cls


def test_reseeded_draws_other_values_only_where_the_seed_repeats():
    from keras_mk.layers.weight_copies import reseeded

    seeded = keras.initializers.GlorotUniform(seed=5)
    unseeded = keras.initializers.GlorotUniform()
    generator = keras.initializers.GlorotUniform(
        seed=keras.random.SeedGenerator(1)
    )
    for initializer in (seeded, unseeded):
        same = [numpy(initializer((4, 4))) for _ in range(2)]
        np.testing.assert_array_equal(same[0], same[1])  # why it is needed
        other = numpy(reseeded(initializer, 1)((4, 4)))
        assert not np.allclose(other, same[0])
    assert reseeded(generator, 1) is generator  # already draws anew
    zeros = keras.initializers.Zeros()
    assert reseeded(zeros, 1) is zeros  # not random


# `fixed_probabilities` must not broadcast from any shape that fits
# (`(5,)`, `(3,)`, `(4,)` for a `(3, 8, 4)` kernel), nor fail deep inside.
@pytest.mark.parametrize(
    "shape",
    [(5,), (3,), (4,), (2,), (3, 8), (2, 8, 4), (3, 8, 5), (3, 1, 8, 4)],
)
def test_fixed_probabilities_of_a_wrong_shape_name_the_expected_one(shape):
    layer = keras_mk.layers.MKDense(4, expansion=3)
    x = np.ones((2, 8), "float32")
    layer(x)
    p = np.full(shape, 1 / 3, "float32")
    with pytest.raises(ValueError, match=r"fixed_probabilities.*\(3, 8, 4\)"):
        layer(x, training=True, fixed_probabilities=p)


@pytest.mark.parametrize("shape", [(3, 8, 4), (3, 1, 4), (3, 8, 1), (3, 1, 1)])
def test_fixed_probabilities_broadcast_on_axes_after_the_first(shape):
    layer = keras_mk.layers.MKDense(4, expansion=3)
    x = np.ones((2, 8), "float32")
    layer(x)
    p = np.zeros(shape, "float32")
    p[1] = 1.0  # copy 1 alone
    got = layer(x, training=True, fixed_probabilities=p)
    expected = x @ keras.ops.convert_to_numpy(layer.kernel_copies[1].value)
    expected = expected + keras.ops.convert_to_numpy(layer.bias)
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(got), expected, rtol=1e-5, atol=1e-6
    )


@pytest.mark.parametrize(
    "value, message",
    [(np.nan, "not finite"), (-1.0, "non-negative"), (0.5, "sum to 1")],
)
def test_fixed_probabilities_off_the_simplex_are_refused(value, message):
    layer = keras_mk.layers.MKDense(4, expansion=3)
    x = np.ones((2, 8), "float32")
    layer(x)
    p = np.full((3, 8, 4), 1 / 3)
    p[0, 0, 0] = value
    if value == -1.0:
        p[1, 0, 0] = 2 / 3 + 1.0  # still sums to 1
    with pytest.raises(ValueError, match=message):
        layer(x, training=True, fixed_probabilities=p)
    # Ignored at inference: the mean of the copies.
    layer(x, training=False, fixed_probabilities=p)


def test_probabilities_scope_checks_fixed_probabilities_on_entry():
    from keras_mk.training import probabilities_scope

    layer = keras_mk.layers.MKDense(4, expansion=3)
    layer(np.ones((2, 8), "float32"))
    with pytest.raises(ValueError, match=r"\(3, 8, 4\)"):
        with probabilities_scope({layer: np.full((3,), 1 / 3)}):
            pass
    with pytest.raises(ValueError, match="sum to 1"):
        with probabilities_scope({layer: np.full((3, 8, 4), 0.5)}):
            pass

"""The Majority Kernels arguments, in one place: `MKConfig`.

Every MK layer (`__init__`, `get_config`, `mk_arguments`), the conversion
(`keras_mk.clone_model`, `keras_mk.clone_function`), `keras_mk.collapse` (which
drops these arguments from a config) and the documentation read the
arguments from the fields of `MKConfig`. Adding an argument touches this file
only: one field, with its default, its documentation and its validator.
"""

import dataclasses
import numbers
import textwrap

import keras
import numpy as np

from keras_mk import sampling

COPY_INITIALIZATIONS = ("replicate", "independent")
# What one draw of `p` is shared by. "element" is the paper's algorithm.
PROBABILITY_SHARING = ("element", "unit", "layer")


def _received(name, value):
    return f"Received: {name}={value!r}"


def _expansion(name, value):
    if (
        isinstance(value, bool)
        or not isinstance(value, numbers.Integral)
        or value < 1
    ):
        raise ValueError(
            f"`{name}` must be an integer >= 1 (the number of kernel "
            f"copies). {_received(name, value)}"
        )
    return int(value)


def _positive_finite(name, value):
    if (
        isinstance(value, bool)
        or not isinstance(value, numbers.Real)
        or not np.isfinite(value)
        or value <= 0
    ):
        raise ValueError(
            f"`{name}` must be a finite number > 0. {_received(name, value)}"
        )
    return float(value)


def _one_of(choices):
    def validate(name, value):
        if value not in choices:
            raise ValueError(
                f"`{name}` must be one of {choices}. {_received(name, value)}"
            )
        return value

    return validate


def _bool(name, value):
    if not isinstance(value, bool):
        raise ValueError(f"`{name}` must be a bool. {_received(name, value)}")
    return value


def _seed(name, value):
    if value is None or isinstance(value, keras.random.SeedGenerator):
        return value
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        return int(value)
    raise ValueError(
        f"`{name}` must be an int, None or a keras.random.SeedGenerator. "
        f"{_received(name, value)}"
    )


def _argument(default, validate, doc):
    return dataclasses.field(
        default=default, metadata={"validate": validate, "doc": doc}
    )


@dataclasses.dataclass(frozen=True)
class MKConfig:
    expansion: int = _argument(
        3,
        _expansion,
        """int >= 1, the number of kernel copies `e`.
    Default 3. `expansion=1` is exactly the plain Keras layer.""",
    )
    probabilities: str = _argument(
        "exponential",
        _one_of(sampling.PROBABILITIES),
        """`"exponential"` (default): every training call draws
    per-element probabilities `p` (iid Exponential(1) normalised over
    the copies, Eq. 2.2 of the paper) and uses `sum_k W_k p_k` as the
    kernel. `"uniform"`: always the mean of the copies (the ablation
    of Lemma B.2: with SGD, plain training at learning rate `lr / e`).""",
    )
    concentration: float = _argument(
        1.0,
        _positive_finite,
        """float > 0, default 1.0. `p` is Dirichlet(concentration)
    per element; 1.0 is exactly the paper's normalised exponentials
    (sampled as uniform spacings), larger values mean less noise.""",
    )
    expand_bias: bool = _argument(
        False,
        _bool,
        """bool, default False (as in the paper). If True the bias
    is expanded and mixed like the kernel.""",
    )
    copy_initialization: str = _argument(
        "replicate",
        _one_of(COPY_INITIALIZATIONS),
        """`"replicate"` (default): one draw of the kernel
    initializer copied into every copy. `"independent"`: one draw
    per copy. Measured in `docs/layers.md`.""",
    )
    probability_sharing: str = _argument(
        "element",
        _one_of(PROBABILITY_SHARING),
        """what one draw of `p` is shared by.
    `"element"` (default, the paper's algorithm): a fresh `p` for
    every kernel element. `"unit"`: one `p` per output unit (per
    output column of a `Dense` kernel, per filter of a conv), the
    same for all its inputs. `"layer"`: one `p` for the whole
    kernel. Fewer random numbers per step (faster where drawing
    them dominates, see `docs/performance.md`), less noise: not the
    paper's algorithm.""",
    )
    seed: object = _argument(
        None,
        _seed,
        """int, None or a `keras.random.SeedGenerator`: the source of
    every random draw of this layer.""",
    )

    def __post_init__(self):
        for field in dataclasses.fields(self):
            value = field.metadata["validate"](
                field.name, getattr(self, field.name)
            )
            object.__setattr__(self, field.name, value)

    @classmethod
    def names(cls):
        """The argument names, in order (the fields of `MKConfig`)."""
        return tuple(field.name for field in dataclasses.fields(cls))

    @classmethod
    def pop_from(cls, kwargs):
        """Takes the MK arguments out of `kwargs` (in place) as an `MKConfig`.

        Args:
            kwargs: a dict of keyword arguments; the MK ones are removed.

        Returns:
            The validated `MKConfig`, defaults for the arguments not given.
        """
        return cls(**{n: kwargs.pop(n) for n in cls.names() if n in kwargs})

    @classmethod
    def names_doc(cls, exclude=(), indent=8):
        """The argument names as a docstring line: "`expansion`, ...".

        Args:
            exclude: names to leave out.
            indent: the indentation of the lines, in spaces.
        """
        names = [f"`{n}`" for n in cls.names() if n not in exclude]
        return textwrap.fill(
            ", ".join(names) + ".",
            width=76,
            initial_indent=" " * indent,
            subsequent_indent=" " * indent,
        )

    def to_dict(self):
        """The arguments as a dict `name -> value`, in field order."""
        return {name: getattr(self, name) for name in self.names()}

    def replace(self, **changes):
        """A copy with some arguments changed, validated again."""
        return dataclasses.replace(self, **changes)


def arguments_doc(indent=8):
    """The `Args:` entries of the MK arguments, for layer docstrings."""
    pad = " " * indent
    lines = []
    for field in dataclasses.fields(MKConfig):
        text = field.metadata["doc"].replace("\n    ", f"\n{pad}    ")
        lines.append(f"{pad}{field.name}: {text}")
    return "\n".join(lines)


MKConfig.__doc__ = f"""The Majority Kernels arguments of a layer, validated.

    A frozen dataclass: every MK layer builds one from its keyword
    arguments (`layer.mk_config`), `keras_mk.clone_model` builds one for all
    the layers it converts. Bad values raise a `ValueError` naming the
    argument and the value, as Keras layers do.

    Args:
{arguments_doc()}

    Example:

    >>> config = keras_mk.layers.MKConfig(expansion=4, seed=0)
    >>> config.to_dict()["expansion"]
    4
    >>> config.replace(expansion=0)
    Traceback (most recent call last):
        ...
    ValueError: `expansion` must be an integer >= 1 ... Received: expansion=0
    """

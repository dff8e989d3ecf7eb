"""LoRA on MK layers: the adapters are what is simulated.

Keras gives `Dense`, `EinsumDense`, `Conv1D/2D/3D`, `Embedding` and the
reversible embeddings LoRA (`enable_lora(rank)`): the kernel `W` is frozen
and the layer computes with `W + (lora_alpha / rank) * a @ b`, training the
factors `a` and `b` alone. On an MK layer with LoRA enabled the factors are
the simulated weights: each has `expansion` copies, and every training step
mixes each factor's copies with its own draw of `p`, exactly as a kernel's.
Inference uses the mean of each factor's copies, so the deployed layer is
the Keras layer with LoRA, its factors those means (`keras_mk.collapse`).

The kernel stays one frozen variable (an MK layer's copies are averaged
into it first, which is what its inference used), in whatever form it has:
a float kernel, or the int8 or int4 kernel and scale of `Model.quantize`.
The bias stays as it was (expanded only with `expand_bias=True`).
"""

import warnings

from keras import initializers

from keras_mk import _keras_private
from keras_mk import sampling


def _no_lora(cls):
    return (
        f"{cls.__name__} has no LoRA: Keras gives LoRA to `Dense`, "
        "`EinsumDense`, `Conv1D/2D/3D` and the embeddings."
    )


def check_supported(cls, rank):
    """Raises unless `cls` (an MK class) can take `lora_rank=rank`."""
    if not cls.lora_factors:
        raise ValueError(f"{_no_lora(cls)} Received: lora_rank={rank!r}")


def factor_specs(layer):
    """The `mk_weights` of `layer` once LoRA is enabled: its factors."""
    regularizer = type(layer).mk_weights[0][2]
    a, b = type(layer).lora_factors
    return (
        (a, "lora_a_initializer", regularizer),
        (b, "lora_b_initializer", regularizer),
    )


def simulate_factors(layer, a_initializer="he_uniform", b_initializer="zeros"):
    """Makes the LoRA factors of `layer` its simulated weights.

    Sets, on the instance, the `mk_weights` the copies are made for (and
    the initializers an independent copy draws from).
    """
    with _keras_private.unlocked_state(layer):
        layer.lora_a_initializer = initializers.get(a_initializer)
        layer.lora_b_initializer = initializers.get(b_initializer)
    layer.__dict__["mk_weights"] = factor_specs(layer)


# The quantization modes Keras gives LoRA on (not float8, not GPTQ).
QUANTIZATION = ("int8", "int4")


def frozen(layer):
    """A quantized layer without LoRA (yet): its kernel does not train, so
    its MK layer simulates nothing until `enable_lora`."""
    mode = getattr(layer, "quantization_mode", None)
    return mode is not None and not getattr(layer, "lora_enabled", False)


def can_enable(layer):
    """Keras would give `layer` LoRA (its class and quantization allow)."""
    mode = getattr(layer, "quantization_mode", None)
    return hasattr(layer, "enable_lora") and mode in (None,) + QUANTIZATION


def warn_frozen(model_name, converted):
    """Warns about converted quantized layers that simulate nothing yet.

    Args:
        model_name: the model's name.
        converted: the converted layers' survey items (`path`, `layer`).
    """
    frozen_paths = [item.path for item in converted if frozen(item.layer)]
    if frozen_paths:
        warnings.warn(
            f"{len(frozen_paths)} converted layers of model '{model_name}' "
            f"are quantized without LoRA ({', '.join(frozen_paths)}): their "
            "kernels do not train, so they simulate nothing until "
            "`enable_lora` (then their adapters are simulated, as when LoRA "
            "is enabled before conversion).",
            UserWarning,
            stacklevel=3,
        )


def simulate_nothing(layer):
    """A quantized layer without LoRA: its kernel does not train, so there
    is nothing to simulate until `enable_lora` (then its factors)."""
    layer.__dict__["mk_weights"] = ()


def enable(layer, keras_enable, rank, lora_alpha, a_initializer, b_initializer):
    """`enable_lora` of an MK layer (see `MKLayer.enable_lora`).

    The kernel (or table) becomes one frozen variable: the mean of its
    copies, which is what inference used. Each factor gets `expansion`
    copies (replicas of its initial value when the layer was built before,
    as a converted layer's kernel), mixed every training step with its own
    `p`. See `docs/lora.md`.

    Args:
        layer: the MK layer.
        keras_enable: its Keras layer's `enable_lora`, bound.
        rank, lora_alpha, a_initializer, b_initializer: as for Keras.
    """
    cls = type(layer)
    if not cls.lora_factors:
        raise NotImplementedError(_no_lora(cls))
    if lora_alpha is None:  # Keras's `build` passes none: keep the layer's
        lora_alpha = getattr(layer, "lora_alpha", None)
    # Converted (or built) before: copies exist, or nothing was simulated
    # (a quantized kernel).
    built_copies = bool(layer.__dict__.get("_copies")) or (
        layer.__dict__.get("mk_weights") == ()
    )
    kernel = cls.mk_weights[0][0]
    if kernel in layer.__dict__.get("_copies", {}):
        if not getattr(layer, "lora_enabled", False):
            _freeze_mean(layer, kernel)
    keras_enable(
        rank,
        lora_alpha=lora_alpha,
        a_initializer=a_initializer,
        b_initializer=b_initializer,
    )
    simulate_factors(layer, a_initializer, b_initializer)
    if built_copies:
        # Replicas of the factors' initial values, as a converted layer's:
        # enabling before or after conversion gives the same layer.
        layer._add_copies("replicate", names=cls.lora_factors)


def _freeze_mean(layer, name):
    """Averages the copies of weight `name` into copy 0 and drops the
    others: the kernel LoRA freezes is the one inference used."""
    copies = layer._copies.pop(name)
    if len(copies) > 1:
        copies[0].assign(sampling.exact_mean([v.value for v in copies]))
        _keras_private.untrack(layer, copies[1:])

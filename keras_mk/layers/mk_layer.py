"""The Majority Kernels mechanism shared by every MK layer.

`MKLayer` is a mixin placed before a Keras layer in the bases of an MK layer
(`class MKDense(MKLayer, keras.layers.Dense)`). The Keras layer builds its
weights as usual; each weight the MK class names in `mk_weights` (the
kernel; a separable conv's depthwise and pointwise kernels; a recurrent
cell's kernel and recurrent kernel) becomes copy 0, and `expansion - 1`
more copies of the same shape are added next to it (one variable per copy:
faster than slicing one stacked variable on every backend, see
`docs/performance.md`). The Keras layer's `call` reads those weights as
attributes (`self.kernel`); inside `mixed_weights` they return the mix
`sum_k W_k p_k` (training) or the mean of the copies (inference), so the
Keras layer's own computation runs unchanged.
"""

import contextlib

import keras
from keras import ops

from keras_mk import _keras_private
from keras_mk import sampling
from keras_mk.layers import fixed_probabilities as fixed
from keras_mk.layers import lora
from keras_mk.layers import variable_store
from keras_mk.layers.config import MKConfig
from keras_mk.layers.weight_copies import MixedWeight
from keras_mk.layers.weight_copies import WeightCopies


def _not_quantizable(layer, what, received=""):
    """The error for quantizing an MK layer (by `quantize` or a policy)."""
    return ValueError(
        f"Layer '{layer.name}' ({type(layer).__name__}) cannot {what}: an "
        "MK layer trains `expansion` float copies. Collapse the model "
        "first, then quantize the plain model: "
        f"`keras_mk.collapse(model).quantize(mode)`.{received}"
    )


def refuse_quantized_policy(layer):
    """Raises if `layer` has a quantized dtype policy (e.g. `"int8"`).

    Keras would build quantized weights that an MK layer never trains.
    """
    if getattr(layer.dtype_policy, "quantization_mode", None):
        raise _not_quantizable(
            layer,
            "take a quantized dtype policy",
            f" Received: dtype={layer.dtype_policy.name!r}",
        )


class MKLayer(WeightCopies):
    """Mixin turning a Keras layer into a Majority Kernels layer.

    Takes the MK arguments (the fields of `keras_mk.layers.MKConfig`:
    `expansion`, `probabilities`, ...) as keyword arguments and passes every
    other argument to the Keras layer. The validated arguments are
    `layer.mk_config`, and each one is also an attribute
    (`layer.expansion`).

    Subclasses set `mk_weights`: for each weight simulated, in the order the
    Keras layer builds them, `(attribute, initializer attribute,
    regularizer attribute)`. The first is "the kernel" (`kernel_copies`,
    `expanded_kernel`). The bias is expanded with `expand_bias=True`.
    """

    mk_weights = (("kernel", "kernel_initializer", "kernel_regularizer"),)
    #: The Keras layer's LoRA factors `(a, b)` (none: no LoRA in Keras),
    #: simulated once LoRA is enabled (`lora.py`).
    lora_factors = ()

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        names = [spec[0] for spec in cls.mk_weights] + ["bias"]
        for name in names + list(cls.lora_factors):
            if not isinstance(cls.__dict__.get(name), MixedWeight):
                setattr(cls, name, MixedWeight(name))

    def __init__(self, *args, **kwargs):
        # Validate before the Keras layer is constructed: nothing half-made.
        config = MKConfig.pop_from(kwargs)
        if kwargs.get("lora_rank"):
            lora.check_supported(type(self), kwargs["lora_rank"])
        super().__init__(*args, **kwargs)
        refuse_quantized_policy(self)
        self._mk_configure(config)

    def _mk_configure(self, config):
        generator = config.seed
        if isinstance(generator, keras.random.SeedGenerator):
            config = config.replace(seed=generator.get_config()["seed"])
        #: The layer's `MKConfig` (its seed an int or None).
        self.mk_config = config
        for name, value in config.to_dict().items():
            setattr(self, name, value)
        # A deterministic layer (one copy, or uniform p) owns no random
        # state: it is exactly its Keras layer.
        if not self._is_stochastic():
            self.seed_generator = None
        elif isinstance(generator, keras.random.SeedGenerator):
            self.seed_generator = generator
        else:
            self.seed_generator = keras.random.SeedGenerator(config.seed)
        self._copies = {}
        self._sampled_mixes = {}
        # Per call, untracked: what `mixed_weights` set, and what
        # `probabilities_scope` forces.
        self.__dict__["_active"] = None
        self.__dict__["_forced"] = None

    # -- State ------------------------------------------------------------

    def build(self, input_shape):
        super().build(input_shape)
        self._add_copies(self.copy_initialization)

    def _weight_names(self):
        names = [spec[0] for spec in self.mk_weights]
        bias = self.__dict__.get("_bias")
        return names + (["bias"] if bias is not None else [])

    # -- Probabilities and the forward pass -------------------------------

    def _is_stochastic(self):
        return self.expansion > 1 and self.probabilities == "exponential"

    def sample_probabilities(self, name=None):
        """Draws the `p` the next training call would use for a weight.

        Args:
            name: the weight (default: the kernel, `mk_weights[0]`).

        Returns:
            A float32 tensor of shape `(expansion,) + weight_shape`,
            non-negative and summing to 1 over the leading axis. It
            consumes the layer's seed generator exactly like a training
            call does.
        """
        self._require_built("sample_probabilities")
        name = name or self.mk_weights[0][0]
        shape = tuple(self._copies[name][0].shape)
        full = (self.expansion,) + shape
        if not self._is_stochastic():
            return ops.full(full, 1.0 / self.expansion)
        p_shape = self._p_shape(shape, name)
        if self.concentration == 1.0:
            s = sampling.sample_spacings(
                p_shape,
                self.expansion,
                self.seed_generator,
                hashed=sampling.training_uses_hash(p_shape, self.expansion),
            )
            p = sampling.spacings_to_probabilities(s)
        else:
            p = sampling.sample_dirichlet(
                p_shape, self.expansion, self.concentration, self.seed_generator
            )
        return ops.broadcast_to(p, full)

    def _output_unit_axes(self, ndim, name="kernel"):
        """The axes of weight `name` that index output units."""
        return (ndim - 1,)

    def unit_shape(self, shape, name=None):
        """The shape of one `p` per output unit of a weight of `shape`.

        `shape` with 1 on the axes that do not index the layer's output
        units (the inputs of a `Dense` kernel, the window of a conv; the
        rank of a LoRA factor `a`, the outputs of `b`: their last axis).
        """
        name = name or self.mk_weights[0][0]
        if name in self.lora_factors:
            axes = (len(shape) - 1,)
        else:
            axes = self._output_unit_axes(len(shape), name)
        return tuple(d if i in axes else 1 for i, d in enumerate(shape))

    def _p_shape(self, shape, name):
        """The shape of one draw of `p` for weight `name` of `shape`.

        "element": the full shape. "unit": the output-unit axes of a
        kernel, 1 elsewhere (a bias is all output units). "layer": all 1.
        """
        if self.probability_sharing == "element" or (
            name == "bias" and self.probability_sharing == "unit"
        ):
            return shape
        if self.probability_sharing == "layer":
            return (1,) * len(shape)
        return self.unit_shape(shape, name)

    def _regularize(self, weights):
        """Adds each Keras regularizer's penalty of the weight used."""
        if _keras_private.in_symbolic_scope():
            return
        specs = list(self.mk_weights)
        if self.expand_bias:
            specs.append(("bias", None, "bias_regularizer"))
        for name, _, regularizer_attr in specs:
            regularizer = getattr(self, regularizer_attr, None)
            if regularizer is not None and name in weights:
                self.add_loss(regularizer(weights[name]))

    def __call__(self, *args, **kwargs):
        # Host arrays are checked here, before Keras turns them into
        # backend tensors (which `call` does not check, see there).
        p = args[2] if len(args) > 2 else kwargs.get("fixed_probabilities")
        training = args[1] if len(args) > 1 else kwargs.get("training")
        if training and p is not None:
            self._check_probability_arguments(p)
        return super().__call__(*args, **kwargs)

    def _check_probability_arguments(self, p):
        """The checks of `fixed_probabilities` that cost nothing per step:
        its shapes (once built) and, for host arrays, their values."""
        fixed.check(self, p, check_shape=self.built)

    def _mix(self, name, copies, training, fixed_p=None):
        if len(copies) == 1:
            return copies[0]
        if fixed_p is not None:
            return sampling.weighted_sum(
                copies, ops.cast(fixed_p, copies[0].dtype)
            )
        if not training:
            return sampling.exact_mean(copies)
        if not self._is_stochastic():
            return sampling.mean(copies)
        p_shape = self._p_shape(tuple(copies[0].shape), name)
        if self.concentration == 1.0:
            # One per shape, shared by the weights of that shape.
            if p_shape not in self._sampled_mixes:
                self._sampled_mixes[p_shape] = sampling.sampled_mix_for(
                    p_shape, self.expansion
                )
            return self._sampled_mixes[p_shape](copies, self.seed_generator)
        p = sampling.sample_dirichlet(
            p_shape, self.expansion, self.concentration, self.seed_generator
        )
        return sampling.weighted_sum(copies, ops.cast(p, copies[0].dtype))

    @contextlib.contextmanager
    def mixed_weights(self, training=None, fixed_probabilities=None):
        """While open, the simulated weights are the ones of one MK call.

        Training: one draw of `p` (or `fixed_probabilities`) mixes every
        weight; otherwise the mean of the copies. Every call of the Keras
        layer inside the scope uses them: a recurrent cell's time steps
        share one draw. A scope inside another reuses the outer one.

        Args:
            training: whether to draw fresh probabilities.
            fixed_probabilities: optional fixed `p` (see `call`).
        """
        if self._active is not None:
            yield
            return
        if self._forced is not None:  # `probabilities_scope`
            forced = self._forced
            training = True
            fixed_probabilities = forced(self) if callable(forced) else forced
        # The copies are mixed in their own dtype (float32 under a mixed
        # precision policy) and the result cast once to the compute dtype:
        # `p` keeps its full precision and the inference mean equals the
        # collapsed layer's kernel exactly.
        with _keras_private.no_autocast():
            values = {
                name: [v.value for v in copies]
                for name, copies in self._copies.items()
            }
        fixed_p = fixed.per_weight(
            self, fixed_probabilities if training else None
        )
        for name, p in fixed_p.items():
            fixed.check_shape_of(self, name, p)
        mixed = {
            name: self._mix(name, copies, training, fixed_p.get(name))
            for name, copies in values.items()
        }
        self._regularize(mixed)
        # LoRA factors stay in their own dtype (float32): the Keras
        # layer's LoRA reads them as variables, which autocast (or not)
        # where they are read (`_read_weight`).
        self.__dict__["_active"] = {
            name: value
            if name in self.lora_factors
            else ops.cast(value, self.compute_dtype)
            for name, value in mixed.items()
        }
        try:
            yield
        finally:
            self.__dict__["_active"] = None

    def quantized_call(self, inputs, training=None, fixed_probabilities=None):
        """The Keras layer's quantized call (a LoRA base), mixed factors."""
        with self.mixed_weights(training, fixed_probabilities):
            return super().quantized_call(inputs, training=training)

    def call(self, inputs, training=None, fixed_probabilities=None):
        """Runs the Keras layer with the mixed (training) or mean weights.

        Args:
            inputs: the input tensor.
            training: whether to draw fresh probabilities (True) or use the
                mean of the copies (False or None).
            fixed_probabilities: optional fixed `p` for the kernel, used
                instead of a random draw when `training` is true and
                ignored otherwise (inference uses the mean of the copies).
                Shape `(expansion,) + kernel_shape`, or 1 on any axis
                after the first (`(expansion,) + unit shape`: one `p` per
                output unit, as ADV-MK's per-unit sharing passes); any
                other shape raises a `ValueError` naming the expected one.
                A layer with several simulated weights takes a dict
                `{weight name: p}` (a weight left out draws its own `p`).
                A NumPy array or Python list must be finite, non-negative
                and sum to 1 over its first axis (checked on the host when
                the layer is called). A backend tensor is not, on purpose:
                ADV-MK passes computed tensors inside compiled steps, where
                a check would cost a device synchronisation every step.
                (Not the `probabilities` argument of the layer, which names
                the distribution `p` is drawn from.)
        """
        with self.mixed_weights(training, fixed_probabilities):
            return super().call(inputs)

    # -- Serialization ------------------------------------------------------

    def mk_arguments(self):
        """The MK arguments of this layer, as `keras_mk.clone_model` takes.

        Returns:
            A dict with one entry per field of `keras_mk.layers.MKConfig`
            (`expansion`, `probabilities`, ...), the seed an int or None.
        """
        return self.mk_config.to_dict()

    def save_own_variables(self, store):
        """Saves every copy, the seed state and the MK arguments."""
        variable_store.save(self, store)

    def load_own_variables(self, store):
        """Loads MK variables, or a plain layer's into every copy."""
        variable_store.load(self, store)

    def get_config(self):
        config = super().get_config()
        config.update(self.mk_arguments())
        return config

    # -- Conversion ---------------------------------------------------------

    def _finish_conversion(self, config):
        """Makes this layer, whose class was just swapped, an MK layer.

        Its built weights become copy 0; `expansion - 1` exact replicas are
        added next to them, so the outputs are unchanged.

        Args:
            config: the layer's `MKConfig`.
        """
        with _keras_private.unlocked_state(self):  # it may add a seed state
            self._mk_configure(config)
        if getattr(self, "lora_enabled", False):
            lora.simulate_factors(self)
        elif lora.frozen(self):
            lora.simulate_nothing(self)
        self._add_copies("replicate")

    def enable_lora(
        self,
        rank,
        lora_alpha=None,
        a_initializer="he_uniform",
        b_initializer="zeros",
    ):
        """Enables LoRA as the Keras layer does; the factors become the
        simulated weights, the kernel one frozen variable (`lora.enable`).

        Args:
            rank: int, the rank of the factors.
            lora_alpha: the scale is `lora_alpha / rank` (default `rank`).
            a_initializer: the initializer of factor `a`.
            b_initializer: the initializer of factor `b`.
        """
        lora.enable(
            self,
            getattr(super(), "enable_lora", None),
            rank,
            lora_alpha,
            a_initializer,
            b_initializer,
        )

    def quantize(self, *args, **kwargs):
        # Not NotImplementedError: `Model.quantize` would warn and go on.
        raise _not_quantizable(self, "be quantized")

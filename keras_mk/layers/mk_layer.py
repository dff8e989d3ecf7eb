"""The Majority Kernels mechanism shared by every MK layer.

`MKLayer` is a mixin placed before a Keras kernel layer in the bases of an MK
layer (`class MKDense(MKLayer, keras.layers.Dense)`). The Keras layer builds
its kernel as usual; that variable becomes copy 0, and `expansion - 1` more
copies of the same shape are added next to it (one variable per copy: faster
than slicing one stacked variable on every backend, see
`docs/performance.md`). The Keras layer's `call` reads `self.kernel`; during
an MK call that property returns the mixed kernel `sum_k W_k p_k` (training)
or the mean of the copies (inference), so the Keras layer's own computation
runs unchanged.
"""

import contextlib
import json
import threading

import keras
import numpy as np
from keras import ops

from keras_mk import _keras_private
from keras_mk.layers import probabilities as probs
from keras_mk.layers.config import MKConfig


def reseeded(initializer, offset):
    """The same initializer drawing other values, so copies are independent.

    A Keras initializer seeded with an integer, or unseeded, returns the same
    values on every call: rebuild it with a shifted (or a fresh default) seed.
    One seeded with a `SeedGenerator` already draws new values each call.
    """
    config = initializer.get_config()
    if "seed" not in config or isinstance(config["seed"], dict):
        return initializer
    if config["seed"] is not None:
        config["seed"] = int(config["seed"]) + 1000003 * offset
    return initializer.__class__.from_config(config)


MK_RECORD_KEY = "keras_mk"
_FULL_SAVE = threading.local()


@contextlib.contextmanager
def full_save_allowed():
    """Marks a full-model save written by `keras_mk.save_model`."""
    previous = getattr(_FULL_SAVE, "allowed", False)
    _FULL_SAVE.allowed = True
    try:
        yield
    finally:
        _FULL_SAVE.allowed = previous


def encode_record(class_name, arguments):
    """An MK layer's class and arguments as a uint8 array (weight stores)."""
    text = json.dumps({"class_name": class_name, "arguments": arguments})
    return np.frombuffer(text.encode("utf-8"), dtype=np.uint8)


class MKLayer:
    """Mixin turning a Keras kernel layer into a Majority Kernels layer.

    Takes the MK arguments (the fields of `keras_mk.layers.MKConfig`:
    `expansion`, `probabilities`, ...) as keyword arguments and passes every
    other argument to the Keras layer. The validated arguments are
    `layer.mk_config`, and each one is also an attribute
    (`layer.expansion`).

    Subclasses set `_kernel_initializer_attr` and `_kernel_regularizer_attr`
    to the names of the attributes holding the kernel initializer and
    regularizer of the Keras layer they extend.
    """

    _kernel_initializer_attr = "kernel_initializer"
    _kernel_regularizer_attr = "kernel_regularizer"

    def __init__(self, *args, **kwargs):
        # Validate before the Keras layer is constructed: nothing half-made.
        config = MKConfig.pop_from(kwargs)
        if kwargs.get("lora_rank"):
            raise ValueError(
                "MK layers do not support LoRA. "
                f"Received: lora_rank={kwargs['lora_rank']!r}"
            )
        super().__init__(*args, **kwargs)
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
        self._kernel_copies = []
        self._bias_copies = []
        self._active = None
        self._sampled_mixes = {}

    # -- State ------------------------------------------------------------

    def build(self, input_shape):
        super().build(input_shape)
        self._add_copies(self.copy_initialization)

    def _add_copies(self, copy_initialization):
        """Adds copies 1..e-1 next to the built kernel (and bias).

        No copy carries the Keras layer's kernel (or bias) regularizer: it
        applies once, to the kernel a call uses (`_regularize`), not `e`
        times.
        """
        kernel = self._kernel
        kernel.regularizer = None
        bias = getattr(self, "_bias", None)
        if bias is not None and self.expand_bias:
            bias.regularizer = None
        initializer = getattr(self, self._kernel_initializer_attr)
        self._kernel_copies = [kernel] + [
            self._add_copy(
                kernel, "kernel", k, initializer, copy_initialization
            )
            for k in range(1, self.expansion)
        ]
        bias = getattr(self, "_bias", None)
        if self.expand_bias and bias is not None:
            self._bias_copies = [bias] + [
                self._add_copy(
                    bias, "bias", k, self.bias_initializer, copy_initialization
                )
                for k in range(1, self.expansion)
            ]
        else:
            self._bias_copies = [] if bias is None else [bias]

    def _add_copy(self, source, name, k, initializer, copy_initialization):
        replicate = copy_initialization == "replicate"
        with _keras_private.unlocked_state(self):
            copy = self.add_weight(
                name=f"{name}_copy_{k}",
                shape=tuple(source.shape),
                initializer="zeros" if replicate else reseeded(initializer, k),
                constraint=getattr(source, "constraint", None),
                dtype=source.dtype,
                trainable=source.trainable,
            )
        if replicate:
            # A real copy: JAX refuses two variables sharing one buffer.
            copy.assign(ops.copy(source.value))
        return copy

    @property
    def kernel_copies(self):
        """The kernel copies, a list of `expansion` variables."""
        return list(self._kernel_copies)

    @property
    def bias_copies(self):
        """The bias copies (`expansion` of them if `expand_bias`)."""
        return list(self._bias_copies)

    @property
    def expanded_kernel(self):
        """The kernel copies stacked: shape `(expansion,) + kernel_shape`."""
        self._require_built("expanded_kernel")
        return ops.stack([v.value for v in self._kernel_copies])

    def set_expanded_kernel(self, value):
        """Assigns the copies from an array of shape `(expansion,) + shape`."""
        self._set_copies(self._kernel_copies, value, "set_expanded_kernel")

    @property
    def expanded_bias(self):
        """The bias copies stacked, or None without a bias."""
        self._require_built("expanded_bias")
        if not self._bias_copies:
            return None
        return ops.stack([v.value for v in self._bias_copies])

    def set_expanded_bias(self, value):
        """Assigns the bias copies (shape `(expansion,) + bias_shape`)."""
        if not self.expand_bias:
            raise ValueError(
                f"Layer '{self.name}' was created with expand_bias=False; "
                "assign its single bias with `layer.bias.assign(...)`."
            )
        self._set_copies(self._bias_copies, value, "set_expanded_bias")

    def _set_copies(self, copies, value, what):
        self._require_built(what)
        value = ops.convert_to_numpy(value)
        expected = (len(copies),) + tuple(copies[0].shape)
        if tuple(value.shape) != expected:
            raise ValueError(
                f"`{what}` of layer '{self.name}' expects an array of shape "
                f"{expected} (copies first). Received: shape={value.shape}"
            )
        for copy, v in zip(copies, value):
            copy.assign(v)

    def _require_built(self, what, error=ValueError):
        # Not AttributeError by default: on PyTorch a property raising it
        # falls back to `nn.Module.__getattr__`, which hides this message.
        if not self.built:
            raise error(
                f"Layer '{self.name}' must be built before using `{what}`."
            )

    # `kernel` and `bias` are what the Keras layer's `call` reads. Outside an
    # MK call they are the inference parameters (the mean of the copies).

    @property
    def kernel(self):
        if self._active is not None:
            return self._active[0]
        # AttributeError, as Keras layers do: `hasattr(layer, "kernel")`.
        self._require_built("kernel", AttributeError)
        return probs.mean(self._kernel_copies)

    @kernel.setter
    def kernel(self, value):
        self._kernel = value

    @property
    def bias(self):
        if self._active is not None:
            return self._active[1]
        copies = getattr(self, "_bias_copies", None)
        if self.built and copies and len(copies) > 1:
            return probs.mean(copies)
        return getattr(self, "_bias", None)

    @bias.setter
    def bias(self, value):
        self._bias = value

    # -- Probabilities and the forward pass -------------------------------

    def _is_stochastic(self):
        return self.expansion > 1 and self.probabilities == "exponential"

    def sample_probabilities(self):
        """Draws the `p` the next training call would use for the kernel.

        Returns a float32 tensor of shape `(expansion,) + kernel_shape`,
        non-negative and summing to 1 over the leading axis. It consumes the
        layer's seed generator exactly like a training call does.
        """
        self._require_built("sample_probabilities")
        shape = tuple(self._kernel_copies[0].shape)
        full = (self.expansion,) + shape
        if not self._is_stochastic():
            return ops.full(full, 1.0 / self.expansion)
        p_shape = self._p_shape(shape, kernel=True)
        if self.concentration == 1.0:
            s = probs.sample_spacings(
                p_shape,
                self.expansion,
                self.seed_generator,
                hashed=probs.training_uses_hash(p_shape, self.expansion),
            )
            p = probs.spacings_to_probabilities(s)
        else:
            p = probs.sample_dirichlet(
                p_shape, self.expansion, self.concentration, self.seed_generator
            )
        return ops.broadcast_to(p, full)

    def _output_unit_axes(self, ndim):
        """The kernel axes that index output units (shared `p` is not)."""
        return (ndim - 1,)

    def _p_shape(self, shape, kernel):
        """The shape of one draw of `p` for a kernel (or bias) of `shape`.

        "element": the full shape. "unit": the output-unit axes of the
        kernel, 1 elsewhere (a bias is all output units). "layer": all 1.
        """
        if self.probability_sharing == "element":
            return shape
        if self.probability_sharing == "layer":
            return (1,) * len(shape)
        if not kernel:
            return shape
        return unit_shape(self, shape)

    def _regularize(self, kernel, bias):
        """Adds the kernel (and expanded bias) penalty of the used kernel."""
        if _keras_private.in_symbolic_scope():
            return
        pairs = [(getattr(self, self._kernel_regularizer_attr, None), kernel)]
        if self.expand_bias and bias is not None:
            pairs.append((getattr(self, "bias_regularizer", None), bias))
        for regularizer, value in pairs:
            if regularizer is not None:
                self.add_loss(regularizer(value))

    def _check_fixed_probabilities(self, p):
        """Validates `fixed_probabilities` (see `call`)."""
        kernel_shape = tuple(self._kernel_copies[0].shape)
        expected = (self.expansion,) + kernel_shape
        shape = tuple(getattr(p, "shape", None) or np.shape(p))
        fits = (
            len(shape) == len(expected)
            and shape[0] == self.expansion
            and all(d in (1, k, None) for d, k in zip(shape[1:], kernel_shape))
        )
        if not fits:
            per_unit = (self.expansion,) + unit_shape(self, kernel_shape)
            raise ValueError(
                f"`fixed_probabilities` of MK layer '{self.name}' must have "
                f"shape {expected} (`(expansion,) + kernel_shape`), or 1 "
                f"on axes after the first, e.g. {per_unit} for one `p` per "
                f"output unit. Received: fixed_probabilities.shape={shape}"
            )

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
        its shape (once built) and, for a host array, its values."""
        if self.built:
            self._check_fixed_probabilities(p)
        if isinstance(p, (np.ndarray, list, tuple)):
            self._check_probability_values(p)

    def _check_probability_values(self, p):
        """Refuses a host `fixed_probabilities` off the simplex."""
        values = np.asarray(p, dtype="float64")
        if not np.all(np.isfinite(values)):
            raise ValueError(
                f"`fixed_probabilities` of MK layer '{self.name}' has "
                "values that are not finite (NaN or inf). Received: "
                f"fixed_probabilities with {np.sum(~np.isfinite(values))} "
                "such values"
            )
        sums = values.sum(axis=0)
        if np.any(values < 0) or not np.allclose(sums, 1.0, atol=1e-5):
            raise ValueError(
                f"`fixed_probabilities` of MK layer '{self.name}' must be "
                "non-negative and sum to 1 over its first axis (the "
                "copies). Received: min value "
                f"{values.min():.3g}, sums from {sums.min():.6g} to "
                f"{sums.max():.6g}"
            )

    def _mix(self, copies, training, fixed_p=None, kernel=True):
        if len(copies) == 1:
            return copies[0]
        if fixed_p is not None:
            p = ops.cast(fixed_p, copies[0].dtype)
            return probs.weighted_sum(copies, p)
        if not training or not self._is_stochastic():
            return probs.mean(copies)
        p_shape = self._p_shape(tuple(copies[0].shape), kernel)
        if self.concentration == 1.0:
            # One per shape: the kernel's, and the bias's if expanded.
            if p_shape not in self._sampled_mixes:
                self._sampled_mixes[p_shape] = probs.sampled_mix_for(
                    p_shape, self.expansion
                )
            return self._sampled_mixes[p_shape](copies, self.seed_generator)
        p = probs.sample_dirichlet(
            p_shape, self.expansion, self.concentration, self.seed_generator
        )
        return probs.weighted_sum(copies, ops.cast(p, copies[0].dtype))

    def call(self, inputs, training=None, fixed_probabilities=None):
        """Runs the Keras layer with the mixed (training) or mean kernel.

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
                A NumPy array or Python list must be finite, non-negative
                and sum to 1 over its first axis (checked on the host when
                the layer is called). A backend tensor is not, on purpose:
                ADV-MK passes computed tensors inside compiled steps, where
                a check would cost a device synchronisation every step.
                (Not the `probabilities` argument of the layer, which names
                the distribution `p` is drawn from.)
        """
        # The copies are mixed in their own dtype (float32 under a mixed
        # precision policy) and the result cast once to the compute dtype:
        # `p` keeps its full precision and the inference mean equals the
        # collapsed layer's kernel exactly.
        with _keras_private.no_autocast():
            kernels = [v.value for v in self._kernel_copies]
            biases = [v.value for v in self._bias_copies]
        fixed_p = fixed_probabilities if training else None
        if fixed_p is not None:
            self._check_fixed_probabilities(fixed_p)
        kernel = self._mix(kernels, training, fixed_p)
        bias = self._mix(biases, training, kernel=False) if biases else None
        self._regularize(kernel, bias)
        kernel = ops.cast(kernel, self.compute_dtype)
        if bias is not None:
            bias = ops.cast(bias, self.compute_dtype)
        previous = self._active
        self._active = (kernel, bias)
        try:
            return super().call(inputs)
        finally:
            self._active = previous

    # -- Serialization ------------------------------------------------------

    def _mk_variables(self):
        variables = list(self._kernel_copies) + list(self._bias_copies)
        if self.seed_generator is not None:
            variables.append(self.seed_generator.state)
        return variables

    def mk_arguments(self):
        """The MK arguments of this layer, as `keras_mk.clone_model` takes.

        Returns:
            A dict with one entry per field of `keras_mk.layers.MKConfig`
            (`expansion`, `probabilities`, ...), the seed an int or None.
        """
        return self.mk_config.to_dict()

    def save_own_variables(self, store):
        """Saves every copy, the seed state and the MK arguments.

        The arguments (`MK_RECORD_KEY`) let `keras_mk.load_model` turn the
        plain layer that a parent's `__init__` rebuilds back into this MK
        layer before loading its variables.
        """
        if not self.built:
            return
        if (
            needs_save_model(self)
            and not getattr(_FULL_SAVE, "allowed", False)
            and _keras_private.in_config_writing_save()
        ):
            raise ValueError(
                f"MK layer '{self.name}' lives inside a layer whose config "
                "does not describe it (a KerasHub backbone, "
                "`MultiHeadAttention`, ...): a `.keras` file written by "
                "`model.save` would not load. Save the model with "
                "`keras_mk.save_model(model, path)` (load it with "
                "`keras_mk.load_model`), or deploy "
                "`keras_mk.collapse(model)`. Weights-only files "
                "(`save_weights`, `ModelCheckpoint(save_weights_only=True)`, "
                "`BackupAndRestore`) work as they are."
            )
        for i, v in enumerate(self._mk_variables()):
            store[str(i)] = v
        store[MK_RECORD_KEY] = encode_record(
            type(self).__name__, self.mk_arguments()
        )

    def load_own_variables(self, store):
        """Loads MK variables, or a plain layer's into every copy.

        A plain Keras layer's weights (kernel, bias) start MK training from
        a plain checkpoint: the kernel is replicated into every copy (and
        the bias into every bias copy), the seed state is left as it is.
        """
        if not self.built:
            return
        keys = [k for k in store.keys() if k != MK_RECORD_KEY]
        variables = self._mk_variables()
        plain = [self._kernel_copies[0]] + self._bias_copies[:1]
        recorded = MK_RECORD_KEY in store.keys()
        if not recorded and len(keys) == len(plain):
            # A plain layer's store: (kernel, bias). With one copy and no
            # random state it is also this layer's own layout.
            self._kernel_copies[0].assign(store["0"])
            for copy in self._kernel_copies[1:]:
                copy.assign(ops.copy(self._kernel_copies[0].value))
            for copy in self._bias_copies if len(plain) == 2 else ():
                copy.assign(store["1"])
            return
        if not recorded and len(keys) == len(variables) + 1:
            keys = keys[:-1]  # keras_mk 0.1 saved a seed state for all layers
        if not keys:
            raise ValueError(
                f"The weights file has no variables for MK layer "
                f"'{self.name}'. Keras addresses the layers of a Sequential "
                "or Functional model by class name (`dense` in a plain "
                "model's file, `mk_dense` in an MK model's), so a plain "
                "checkpoint of such a model does not load into its MK "
                "version. Load it into the plain model, then convert: "
                "`plain.load_weights(path)`, then "
                "`keras_mk.clone_model(plain)`."
            )
        if len(keys) != len(variables):
            raise ValueError(
                f"Layer '{self.name}' expected {len(variables)} variables "
                f"(expansion={self.expansion}, expand_bias="
                f"{self.expand_bias}) or a plain layer's {len(plain)}, but "
                f"the saved state has {len(keys)}. Was it saved with another "
                "expansion?"
            )
        for i, v in enumerate(variables):
            v.assign(store[str(i)])

    def get_config(self):
        config = super().get_config()
        config.update(self.mk_arguments())
        return config

    # -- Unsupported Keras features ---------------------------------------

    def enable_lora(self, *args, **kwargs):
        raise NotImplementedError(
            f"{type(self).__name__} does not support LoRA: collapse the MK "
            "model first (`keras_mk.collapse`), then enable LoRA."
        )

    def quantize(self, *args, **kwargs):
        # Not NotImplementedError: `Model.quantize` turns that into a
        # warning and leaves the model as it was, silently.
        raise ValueError(
            f"Layer '{self.name}' ({type(self).__name__}) cannot be "
            "quantized: an MK layer trains `expansion` float copies. "
            "Collapse the model first, then quantize the plain model: "
            "`keras_mk.collapse(model).quantize(mode)`."
        )


def unit_shape(layer, shape):
    """The shape of one `p` per output unit of a kernel of `shape`.

    `shape` with 1 on the axes that do not index the layer's output units
    (the inputs of a `Dense` kernel, the window of a conv).
    """
    axes = layer._output_unit_axes(len(shape))
    return tuple(d if i in axes else 1 for i, d in enumerate(shape))


# -- Module-level hooks for the conversion (keras_mk.conversion) -----------


def finish_conversion(layer, config):
    """Makes a built layer whose class was just swapped an MK layer.

    The layer's built kernel (and bias) become copy 0; `expansion - 1`
    exact replicas are added next to them, so the outputs are unchanged.

    Args:
        layer: a built layer, now of an MK class, holding the plain
            layer's variables.
        config: the layer's `MKConfig`.
    """
    with _keras_private.unlocked_state(layer):  # it may add a seed state
        layer._mk_configure(config)
    layer._add_copies("replicate")


def plain_state(layer):
    """What an MK layer keeps when it becomes its plain Keras layer.

    Returns:
        `(kernel, bias, dropped)`: copy 0 of the kernel and of the bias
        (None without one), given back the Keras layer's regularizers, and
        the objects the plain layer no longer tracks (the other copies and
        the seed generator).
    """
    kernel = layer._kernel_copies[0]
    bias = layer._bias_copies[0] if layer._bias_copies else None
    dropped = layer._kernel_copies[1:] + layer._bias_copies[1:]
    if layer.seed_generator is not None:
        dropped.append(layer.seed_generator)
    kernel.regularizer = getattr(layer, layer._kernel_regularizer_attr, None)
    if bias is not None:
        bias.regularizer = getattr(layer, "bias_regularizer", None)
    return kernel, bias, dropped


def mark_needs_save_model(layer):
    """Marks an MK layer that only `keras_mk.save_model` can save whole."""
    layer._mk_needs_save_model = True


def needs_save_model(layer):
    """Whether `mark_needs_save_model` marked this layer."""
    return getattr(layer, "_mk_needs_save_model", False)

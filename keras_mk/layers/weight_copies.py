"""The copies of an MK layer's weights, and how its Keras layer reads them.

`WeightCopies` is the part of the `MKLayer` mixin that owns the variables:
copy 0 of each simulated weight is the variable the Keras layer built, the
others are added next to it; `MixedWeight` is the attribute the Keras
layer's `call` reads (`self.kernel`).
"""

from keras import ops

from keras_mk import _keras_private
from keras_mk import sampling
from keras_mk.fresh_copy import fresh_copy


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


def _keras_property(layer, name):
    """What the Keras layer's own property `name` returns for `layer`."""
    for cls in type(layer).__mro__:
        attribute = cls.__dict__.get(name)
        if isinstance(attribute, property):
            return attribute.fget(layer)
    return layer.__dict__.get("_" + name)


class MixedWeight:
    """A weight as the Keras layer's `call` reads it (a data descriptor).

    Inside `MKLayer.mixed_weights` it is the mix (training) or the mean;
    outside, the mean of the copies (copy 0 before they exist). The Keras
    layer's `build` assigns the variable, which is kept as `_<name>`.
    """

    def __init__(self, name):
        self.name = name

    def __get__(self, layer, owner=None):
        if layer is None:
            return self
        return layer._read_weight(self.name)

    def __set__(self, layer, value):
        layer.__dict__["_" + self.name] = value


class WeightCopies:
    """Mixin: the copies of the weights named in `mk_weights` (and the
    bias), their stacked views, and the value the Keras layer reads."""

    def _add_copies(self, copy_initialization, names=None):
        """Adds copies 1..e-1 next to each built weight (and the bias).

        No copy carries the Keras layer's regularizer: it applies once, to
        the weight a call uses (`_regularize`), not `e` times.

        Args:
            copy_initialization: `"replicate"` or `"independent"`.
            names: only these weights (default: every simulated weight
                and the bias).
        """
        specs = list(self.mk_weights)
        bias = self.__dict__.get("_bias")
        if bias is not None:
            specs.append(("bias", "bias_initializer", "bias_regularizer"))
        if names is not None:
            specs = [spec for spec in specs if spec[0] in names]
        for name, initializer_attr, _ in specs:
            source = self.__dict__["_" + name]
            if name == "bias" and not self.expand_bias:
                self._copies[name] = [source]
                continue
            source.regularizer = None
            initializer = getattr(self, initializer_attr)
            self._copies[name] = [source] + [
                self._add_copy(
                    source, name, k, initializer, copy_initialization
                )
                for k in range(1, self.expansion)
            ]

    def _add_copy(self, source, name, k, initializer, copy_initialization):
        if copy_initialization == "replicate":
            # A real copy (JAX refuses two variables sharing one buffer),
            # in the source's memory layout: on PyTorch a Keras initializer
            # may leave a weight transposed in memory (`orthogonal`), and a
            # matmul rounds differently on the other layout, so a copy laid
            # out afresh would make the mean's layout, and the converted
            # model's output, differ from the original's in the last ulp.
            def initializer(shape, dtype=None):
                return fresh_copy(source.value)

        else:
            initializer = reseeded(initializer, k)
        with _keras_private.unlocked_state(self):
            return self.add_weight(
                name=f"{name}_copy_{k}",
                shape=tuple(source.shape),
                initializer=initializer,
                constraint=getattr(source, "constraint", None),
                dtype=source.dtype,
                trainable=source.trainable,
            )

    @property
    def weight_copies(self):
        """Dict `name -> list of copies` for every simulated weight (and
        the bias: `expansion` copies with `expand_bias`, else one)."""
        return {name: list(copies) for name, copies in self._copies.items()}

    @property
    def kernel_copies(self):
        """The kernel copies, a list of `expansion` variables."""
        return list(self._copies.get(self.mk_weights[0][0], []))

    @property
    def bias_copies(self):
        """The bias copies (`expansion` of them if `expand_bias`)."""
        return list(self._copies.get("bias", []))

    @property
    def expanded_kernel(self):
        """The kernel copies stacked: shape `(expansion,) + kernel_shape`."""
        self._require_built("expanded_kernel")
        return ops.stack([v.value for v in self.kernel_copies])

    def set_expanded_kernel(self, value):
        """Assigns the copies from an array of shape `(expansion,) + shape`."""
        self._set_copies(self.kernel_copies, value, "set_expanded_kernel")

    @property
    def expanded_bias(self):
        """The bias copies stacked, or None without a bias."""
        self._require_built("expanded_bias")
        if not self.bias_copies:
            return None
        return ops.stack([v.value for v in self.bias_copies])

    def set_expanded_bias(self, value):
        """Assigns the bias copies (shape `(expansion,) + bias_shape`)."""
        if not self.expand_bias:
            raise ValueError(
                f"Layer '{self.name}' was created with expand_bias=False; "
                "assign its single bias with `layer.bias.assign(...)`."
            )
        self._set_copies(self.bias_copies, value, "set_expanded_bias")

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

    def _read_weight(self, name):
        """What `MixedWeight` returns for `name` (see there)."""
        active = self.__dict__.get("_active")
        factor = name in self.lora_factors
        if active is not None and name in active:
            if factor:
                return _keras_private.autocast_as_a_variable(active[name])
            return active[name]
        copies = self.__dict__.get("_copies", {}).get(name)
        if copies:
            mean = sampling.exact_mean(copies)
            return (
                _keras_private.autocast_as_a_variable(mean) if factor else mean
            )
        frozen = self.__dict__.get("lora_enabled") or getattr(
            self, "quantization_mode", None
        )
        if frozen and name == self._base_name():
            # LoRA: the Keras layer's kernel, frozen, plus its factors'
            # product (the factors read here as their mix or mean); a
            # quantized kernel: Keras's reading of it (int4 unpacked).
            return _keras_property(self, name)
        value = self.__dict__.get("_" + name)
        if value is None and name != "bias":
            # AttributeError, as Keras layers do: `hasattr(layer, "kernel")`.
            self._require_built(name, AttributeError)
        return value

    def _frozen_base(self):
        """The variables LoRA or quantization froze (the kernel; its
        quantized form and scale), in the layer's order. Empty for a float
        layer without LoRA."""
        if not (
            self.__dict__.get("lora_enabled")
            or getattr(self, "quantization_mode", None)
        ):
            return []
        simulated = {id(v) for copies in self._copies.values() for v in copies}
        seed = getattr(self, "seed_generator", None)
        if seed is not None:
            simulated.add(id(seed.state))
        return [v for v in self.variables if id(v) not in simulated]

    def _base_name(self):
        """The weight LoRA freezes: the Keras layer's kernel (or table)."""
        return type(self).mk_weights[0][0]

    def _plain_state(self):
        """What this layer keeps when it becomes its plain Keras layer.

        Returns:
            `(weights, dropped)`: dict `name -> copy 0` (the bias None
            without one), given back the Keras layer's regularizers, and the
            objects the plain layer no longer tracks (the other copies and
            the seed generator).
        """
        weights, dropped = {}, []
        specs = list(self.mk_weights) + [("bias", None, "bias_regularizer")]
        for name, _, regularizer_attr in specs:
            copies = self._copies.get(name)
            if not copies:
                weights[name] = None
                continue
            copies[0].regularizer = getattr(self, regularizer_attr, None)
            weights[name] = copies[0]
            dropped += copies[1:]
        if self.seed_generator is not None:
            dropped.append(self.seed_generator)
        return weights, dropped

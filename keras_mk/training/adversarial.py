"""ADV-MK: adversarial probabilities (Algorithms D.1 and D.2 of the paper).

Every training step first takes the gradient of the loss with respect to the
probabilities `p` of every MK layer at the uniform point `p = 1/e`, moves `p`
one step uphill and projects it back onto the probability simplex. The raw
step of the paper, `p + epsilon * grad_p`, barely moves `p`: `grad_p` scales
with the weights times their gradients (measured: mean `|p_adv - 1/e|` of
7.6e-6 at `epsilon = 0.1` on an MLP), so by default the step is scale-free:
`epsilon` is the root-mean-square displacement of `p` per layer before the
projection. Algorithm D.1 trains the weights at that adversarial
`p`; Algorithm D.2 (ADV-MAJORITY KERNELS) first mixes it with a fresh random
`p`, `u * p_adv + (1 - u) * p_random` with `u = KL(p_adv || uniform) / log e`
per kernel element, so that when the copies are equal (and the adversary has
nothing to push against) training falls back to plain MK.

Each step costs two forward and backward passes: about twice an MK step.
"""

import math
import numbers
import warnings

import keras
import numpy as np
from keras import ops

from keras_mk.layers.walk import mk_layers
from keras_mk.sampling.simplex import adversarial_mixing_weight
from keras_mk.sampling.simplex import project_to_simplex
from keras_mk.training import probability_gradients
from keras_mk.training.probability_scope import probabilities_scope

STEPS = ("scaled", "raw")
SHARINGS = ("element", "unit")


@keras.saving.register_keras_serializable(package="keras_mk")
class AdversarialMK(keras.Model):
    """Trains an MK model with adversarial probabilities (ADV-MK).

    Wraps a model containing MK layers; `compile` and `fit` it like any Keras
    model. Each training step:

    1. `grad_p`: gradient of the loss on the batch with respect to the
       probabilities of every MK layer, at the uniform `p = 1/e`, with the
       weights fixed (this pass has no side effects: moving statistics,
       metrics and seeds are left as they were);
    2. `p_adv = project_to_simplex(1/e + epsilon * d)` with `d = grad_p`
       (`step="raw"`, the paper's formula) or, by default
       (`step="scaled"`), `d` the part of `grad_p` along the simplex
       (`grad_p` minus its mean over the copies) divided by its
       root-mean-square over the layer, so that `epsilon` is a displacement
       of `p` whatever the scale of the loss and the weights;
    3. Algorithm D.2 (default): `p = u * p_adv + (1 - u) * p_random` with
       `u = KL(p_adv || uniform) / log e` per kernel element and `p_random`
       the layer's own draw; Algorithm D.1 (`adversarial_only=True`):
       `p = p_adv`;
    4. the usual Keras train step with every MK layer using that `p`.

    Only kernels are adversarial; expanded biases (`expand_bias=True`) keep
    their layer's own mixing. Evaluation and prediction call the wrapped
    model unchanged (the mean kernels). The wrapped model, with its trained
    weights, is `adversarial.model`.

    A step costs two gradient computations: about twice an MK step (see
    `docs/systems.md`).

    Algorithm D.1 needs copies that differ: from replicated copies
    (`copy_initialization="replicate"`, what `clone_model` of a trained
    model gives) the gradient is the same for every copy, `p_adv` stays
    uniform and the copies never separate. Build models trained from
    scratch with `copy_initialization="independent"` for D.1 (a warning
    says so otherwise). `probability_statistics` measures how far `p_adv`
    moved.

    Args:
        model: a Keras model with MK layers (`expansion > 1`).
        epsilon: float >= 0, the step size of the gradient ascent on `p`:
            with `step="scaled"` the root-mean-square displacement of `p`
            per layer (before the projection); with `step="raw"` the
            multiplier of `grad_p`, whose scale depends on the weights and
            the loss (tune it over powers of 10). `epsilon=0` with
            `adversarial_only=True` trains at the uniform `p`, like
            `probabilities="uniform"` (Lemma B.2). Default 0.25.
        adversarial_only: bool. False (default): Algorithm D.2, the
            ADV-MAJORITY KERNELS of Table 4.3. True: Algorithm D.1.
        step: `"scaled"` (default) or `"raw"`, see above.
        probability_sharing: `"element"` (default): one adversarial `p` per
            kernel element and copy. `"unit"`: one per output unit and copy
            (the paper's `p <- 1/e^{m x e}` read literally), the gradient
            summed over each unit's inputs.
        **kwargs: passed to `keras.Model` (e.g. `name`).

    Example:

    ```python
    model = keras.Sequential([
        keras.Input((64,)),
        keras_mk.layers.MKDense(128, activation="relu"),
        keras_mk.layers.MKDense(10),
    ])
    adversarial = keras_mk.training.AdversarialMK(model, epsilon=0.25)
    adversarial.compile("adam", keras.losses.SparseCategoricalCrossentropy(
        from_logits=True))
    adversarial.fit(x, y, epochs=10)
    model.save("mk.keras")  # the trained MK model
    ```

    References:
        Mazzawi et al., "Majority Kernels: An Approach to Leverage Big Model
        Dynamics for Efficient Small Model Training", 2024, Appendix D.
    """

    def __init__(
        self,
        model,
        epsilon=0.25,
        adversarial_only=False,
        step="scaled",
        probability_sharing="element",
        **kwargs,
    ):
        if (
            isinstance(epsilon, bool)
            or not isinstance(epsilon, numbers.Real)
            or not math.isfinite(epsilon)
            or epsilon < 0
        ):
            raise ValueError(
                "`epsilon` must be a finite number >= 0. "
                f"Received: epsilon={epsilon!r}"
            )
        if not isinstance(adversarial_only, bool):
            raise ValueError(
                "`adversarial_only` must be a bool. "
                f"Received: adversarial_only={adversarial_only!r}"
            )
        if step not in STEPS:
            raise ValueError(
                f"`step` must be one of {STEPS}. Received: step={step!r}"
            )
        if probability_sharing not in SHARINGS:
            raise ValueError(
                f"`probability_sharing` must be one of {SHARINGS}. "
                f"Received: probability_sharing={probability_sharing!r}"
            )
        if not mk_layers(model):
            raise ValueError(
                "`model` has no MK layer with expansion > 1: there are no "
                f"probabilities to make adversarial. Received: model={model!r}"
            )
        if adversarial_only and model.built and _has_equal_copies(model):
            warnings.warn(
                "Algorithm D.1 (`adversarial_only=True`) on an MK layer whose "
                "copies are equal: the adversarial p stays uniform and the "
                "copies never separate. Build the MK layers with "
                "copy_initialization='independent'.",
                stacklevel=2,
            )
        super().__init__(**kwargs)
        self.model = model
        self.epsilon = float(epsilon)
        self.adversarial_only = adversarial_only
        self.step = step
        self.probability_sharing = probability_sharing
        if model.built:
            self.built = True

    @property
    def mk_layers(self):
        """The MK layers (expansion > 1) whose probabilities are trained."""
        return mk_layers(self.model)

    def call(self, inputs, training=None):
        return self.model(inputs, training=training)

    def compute_output_spec(self, inputs, training=None):
        return self.model.compute_output_spec(inputs)

    # -- The adversarial probabilities --------------------------------------

    def _p_shape(self, layer):
        shape = tuple(layer.kernel_copies[0].shape)
        if self.probability_sharing == "element":
            return shape
        return layer.unit_shape(shape)

    def _uniform_probabilities(self):
        return [
            ops.full(
                (layer.expansion,) + self._p_shape(layer),
                1.0 / layer.expansion,
            )
            for layer in self.mk_layers
        ]

    def _direction(self, g):
        if self.step == "raw":
            return g
        # Only the part along the simplex moves p (the projection removes
        # the rest); its RMS over the layer sets the scale.
        g = ops.subtract(g, ops.mean(g, axis=0, keepdims=True))
        rms = ops.sqrt(ops.mean(ops.square(g)))
        return ops.divide(g, ops.maximum(rms, 1e-30))

    def _ascend(self, p0, grads):
        """Step 2 of the algorithm: uphill from `p0`, back to the simplex."""
        return [
            ops.stop_gradient(
                project_to_simplex(
                    ops.add(
                        p,
                        ops.multiply(
                            self.epsilon,
                            self._direction(ops.cast(g, p.dtype)),
                        ),
                    )
                )
            )
            for p, g in zip(p0, grads)
        ]

    def probability_statistics(self, x, y=None, sample_weight=None):
        """How far the adversary moves `p` on one batch.

        Args:
            x: a batch of inputs.
            y: the targets.
            sample_weight: optional sample weights.

        Returns:
            A dict: `"mean_abs_deviation"`, the mean of `|p_adv - 1/e|` over
            every copy and element of every MK layer, and `"mean_u"`, the
            mean of Algorithm D.2's mixing weight `u` (0 when `p_adv` is
            uniform, so that D.2 is plain MK).
        """
        deviations, weights = [], []
        for p in self.adversarial_probabilities(x, y, sample_weight):
            p = ops.convert_to_numpy(p)
            deviations.append(np.abs(p - 1.0 / p.shape[0]).ravel())
            weights.append(
                ops.convert_to_numpy(adversarial_mixing_weight(p)).ravel()
            )
        return {
            "mean_abs_deviation": float(np.concatenate(deviations).mean()),
            "mean_u": float(np.concatenate(weights).mean()),
        }

    def _assignments(self, p_adv):
        layers = self.mk_layers
        if self.adversarial_only:
            return list(zip(layers, p_adv))

        def mixed(p):
            u = adversarial_mixing_weight(p)

            def draw(layer):
                random_p = ops.cast(layer.sample_probabilities(), p.dtype)
                return ops.add(
                    ops.multiply(u, p), ops.multiply(1.0 - u, random_p)
                )

            return draw

        return [(layer, mixed(p)) for layer, p in zip(layers, p_adv)]

    def adversarial_probabilities(self, x, y=None, sample_weight=None):
        """Steps 1-2 on one batch, eagerly: the adversarial `p` per layer.

        The model must be compiled (the loss is the compiled loss).

        Args:
            x: a batch of inputs.
            y: the targets.
            sample_weight: optional sample weights.

        Returns:
            A list with one tensor per layer of `mk_layers`, of shape
            `(expansion,) + kernel_shape` (1 on the input axes with
            `probability_sharing="unit"`), on the simplex over axis 0.
        """
        p0 = self._uniform_probabilities()
        if keras.backend.backend() == "jax":
            optimizer = self.optimizer
            state = (
                [v.value for v in self.trainable_variables],
                [v.value for v in self.non_trainable_variables],
                None
                if optimizer is None
                else [v.value for v in optimizer.variables],
                [v.value for v in self.metrics_variables],
            )
            import jax

            # One compiled function rather than dozens of eager ops.
            if getattr(self, "_jitted_gradients", None) is None:
                self._jitted_gradients = jax.jit(self._gradients)
            grads = self._jitted_gradients(p0, state, x, y, sample_weight)
        else:
            grads = self._gradients(p0, None, x, y, sample_weight)
        return self._ascend(p0, grads)

    def _gradients(self, p0, state, x, y, sample_weight):
        """`grad_p` at `p0`: from `state` on JAX, statefully elsewhere."""
        if state is not None:
            return probability_gradients.jax_gradients(
                self, self.mk_layers, p0, state, x, y, sample_weight
            )
        return probability_gradients.stateful_gradients(
            self, self.mk_layers, p0, x, y, sample_weight
        )

    def train_step(self, *args):
        """Steps 1-4 on one batch: `(data)`, or `(state, data)` on JAX."""
        state, data = (None, args[0]) if len(args) == 1 else args
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        p0 = self._uniform_probabilities()
        p_adv = self._ascend(
            p0, self._gradients(p0, state, x, y, sample_weight)
        )
        with probabilities_scope(self._assignments(p_adv)):
            return super().train_step(*args)

    # -- Serialization -------------------------------------------------------

    def get_config(self):
        return {
            "name": self.name,
            "model": keras.saving.serialize_keras_object(self.model),
            "epsilon": self.epsilon,
            "adversarial_only": self.adversarial_only,
            "step": self.step,
            "probability_sharing": self.probability_sharing,
        }

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["model"] = keras.saving.deserialize_keras_object(config["model"])
        return cls(**config)


def _has_equal_copies(model):
    for layer in mk_layers(model):
        copies = [ops.convert_to_numpy(v) for v in layer.kernel_copies]
        if all((c == copies[0]).all() for c in copies[1:]):
            return True
    return False

"""ADV-MK: adversarial probabilities (Algorithms D.1 and D.2 of the paper).

Every training step first takes the gradient of the loss with respect to the
probabilities `p` of every MK layer at the uniform point `p = 1/e`, moves `p`
one step uphill (`p + epsilon * grad_p`) and projects it back onto the
probability simplex. Algorithm D.1 trains the weights at that adversarial
`p`; Algorithm D.2 (ADV-MAJORITY KERNELS) first mixes it with a fresh random
`p`, `u * p_adv + (1 - u) * p_random` with `u = KL(p_adv || uniform) / log e`
per kernel element, so that when the copies are equal (and the adversary has
nothing to push against) training falls back to plain MK.

Each step costs two forward and backward passes: about twice an MK step.
"""

import math
import numbers

import keras
from keras import ops

from keras_mk.training.probability_scope import mk_layers
from keras_mk.training.probability_scope import probabilities_scope

_BACKEND = keras.backend.backend()


def _sort_descending(v):
    """Sorts over axis 0; min/max networks for the usual small `e`.

    XLA's CPU sort is slow for many tiny sorts; 2 or 3 values need only
    1 or 3 compare-exchanges.
    """
    e = v.shape[0]
    if e == 2:
        return ops.stack([ops.maximum(v[0], v[1]), ops.minimum(v[0], v[1])])
    if e == 3:
        a, b, c = v[0], v[1], v[2]
        hi_ab, lo_ab = ops.maximum(a, b), ops.minimum(a, b)
        return ops.stack(
            [
                ops.maximum(hi_ab, c),
                ops.maximum(lo_ab, ops.minimum(hi_ab, c)),
                ops.minimum(lo_ab, c),
            ]
        )
    return ops.flip(ops.sort(v, axis=0), axis=0)


def project_to_simplex(v):
    """Euclidean projection onto the probability simplex over axis 0.

    For every element the vector `v[:, ...]` is mapped to the closest point
    `p` with `p >= 0` and `sum(p) = 1` (the sort-based algorithm of Duchi et
    al., 2008, vectorised over all elements).

    Args:
        v: a float tensor of shape `(e,) + shape`.

    Returns:
        A tensor of the same shape and dtype, on the simplex along axis 0.
    """
    v = ops.convert_to_tensor(v)
    e = v.shape[0]
    u = _sort_descending(v)
    css = ops.subtract(ops.cumsum(u, axis=0), 1.0)
    k = ops.reshape(
        ops.arange(1, e + 1, dtype=v.dtype), (e,) + (1,) * (len(v.shape) - 1)
    )
    # The condition holds on a prefix 1..rho of the sorted entries (always
    # for k = 1), so rho is the count of true entries.
    positive = ops.greater(ops.subtract(u, ops.divide(css, k)), 0.0)
    rho = ops.sum(ops.cast(positive, v.dtype), axis=0, keepdims=True)
    theta = ops.sum(
        ops.where(ops.equal(k, rho), ops.divide(css, k), 0.0),
        axis=0,
        keepdims=True,
    )
    return ops.maximum(ops.subtract(v, theta), 0.0)


def adversarial_mixing_weight(p):
    """`u = KL(p || uniform) / log e` per element, in `[0, 1]` (Alg. D.2).

    Args:
        p: probabilities of shape `(e,) + shape`, on the simplex over axis 0.

    Returns:
        A tensor of shape `shape`: 0 where `p` is uniform, 1 where `p` is a
        vertex of the simplex (one copy takes all the weight).
    """
    p = ops.convert_to_tensor(p)
    e = p.shape[0]
    # 0 * log(0) = 0: the clamp only guards the logarithm.
    log_ep = ops.log(ops.maximum(ops.multiply(p, float(e)), 1e-30))
    kl = ops.sum(ops.multiply(p, log_ep), axis=0)
    return ops.clip(ops.divide(kl, math.log(e)), 0.0, 1.0)


@keras.saving.register_keras_serializable(package="keras_mk")
class AdversarialMK(keras.Model):
    """Trains an MK model with adversarial probabilities (ADV-MK).

    Wraps a model containing MK layers; `compile` and `fit` it like any Keras
    model. Each training step:

    1. `grad_p`: gradient of the loss on the batch with respect to the
       probabilities of every MK layer, at the uniform `p = 1/e`, with the
       weights fixed (this pass has no side effects: moving statistics,
       metrics and seeds are left as they were);
    2. `p_adv = project_to_simplex(1/e + epsilon * grad_p)`;
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

    Args:
        model: a Keras model with MK layers (`expansion > 1`).
        epsilon: float >= 0, the step size of the gradient ascent on `p`.
            The gradient's scale depends on the weights and the loss, so tune
            it (e.g. over powers of 10). `epsilon=0` with
            `adversarial_only=True` trains at the uniform `p`, like
            `probabilities="uniform"` (Lemma B.2). Default 0.1.
        adversarial_only: bool. False (default): Algorithm D.2, the
            ADV-MAJORITY KERNELS of Table 4.3. True: Algorithm D.1.
        **kwargs: passed to `keras.Model` (e.g. `name`).

    Example:

    ```python
    model = keras.Sequential([
        keras.Input((64,)),
        keras_mk.layers.MKDense(128, activation="relu"),
        keras_mk.layers.MKDense(10),
    ])
    adversarial = keras_mk.training.AdversarialMK(model, epsilon=0.1)
    adversarial.compile("adam", keras.losses.SparseCategoricalCrossentropy(
        from_logits=True))
    adversarial.fit(x, y, epochs=10)
    model.save("mk.keras")  # the trained MK model
    ```

    References:
        Mazzawi et al., "Majority Kernels: An Approach to Leverage Big Model
        Dynamics for Efficient Small Model Training", 2024, Appendix D.
    """

    def __init__(self, model, epsilon=0.1, adversarial_only=False, **kwargs):
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
        if not mk_layers(model):
            raise ValueError(
                "`model` has no MK layer with expansion > 1: there are no "
                f"probabilities to make adversarial. Received: model={model!r}"
            )
        super().__init__(**kwargs)
        self.model = model
        self.epsilon = float(epsilon)
        self.adversarial_only = adversarial_only
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

    def _uniform_probabilities(self):
        return [
            ops.full(
                (layer.expansion,) + tuple(layer.kernel_copies[0].shape),
                1.0 / layer.expansion,
            )
            for layer in self.mk_layers
        ]

    def _ascend(self, p0, grads):
        """Step 2 of the algorithm: uphill from `p0`, back to the simplex."""
        return [
            ops.stop_gradient(
                project_to_simplex(
                    ops.add(p, ops.multiply(self.epsilon, ops.cast(g, p.dtype)))
                )
            )
            for p, g in zip(p0, grads)
        ]

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

    def _stateful_probability_gradients(self, p0, x, y, sample_weight):
        """`grad_p` on TensorFlow and PyTorch, leaving the state untouched."""
        state = list(self.non_trainable_variables) + list(
            self.metrics_variables
        )
        saved = [ops.copy(v.value) for v in state]
        if _BACKEND == "tensorflow":
            import tensorflow as tf

            with tf.GradientTape() as tape:
                tape.watch(p0)
                loss = self._loss_at(p0, x, y, sample_weight)
            grads = tape.gradient(loss, p0)
        elif _BACKEND == "torch":
            import torch

            p0 = [p.detach().requires_grad_(True) for p in p0]
            with torch.enable_grad():
                loss = self._loss_at(p0, x, y, sample_weight)
                grads = torch.autograd.grad(loss, p0, allow_unused=True)
        else:
            raise NotImplementedError(
                f"AdversarialMK does not support the {_BACKEND} backend."
            )
        for v, value in zip(state, saved):
            v.assign(value)
        return [
            ops.zeros_like(p) if g is None else g for p, g in zip(p0, grads)
        ]

    def _loss_at(self, p, x, y, sample_weight):
        with probabilities_scope(list(zip(self.mk_layers, p))):
            y_pred = self(x, training=True)
        return self._compute_loss(
            x=x, y=y, y_pred=y_pred, sample_weight=sample_weight, training=True
        )

    def _jax_probability_gradients(
        self,
        p0,
        trainable_variables,
        non_trainable_variables,
        optimizer_variables,
        metrics_variables,
        x,
        y,
        sample_weight,
    ):
        import jax

        def loss_at(p):
            with probabilities_scope(list(zip(self.mk_layers, p))):
                _, aux = self.compute_loss_and_updates(
                    trainable_variables,
                    non_trainable_variables,
                    metrics_variables,
                    x,
                    y,
                    sample_weight,
                    training=True,
                    optimizer_variables=optimizer_variables,
                )
            # aux[0] is the loss before any loss scaling.
            return aux[0]

        return jax.grad(loss_at)(p0)

    def adversarial_probabilities(self, x, y=None, sample_weight=None):
        """Steps 1-2 on one batch, eagerly: the adversarial `p` per layer.

        The model must be compiled (the loss is the compiled loss).

        Args:
            x: a batch of inputs.
            y: the targets.
            sample_weight: optional sample weights.

        Returns:
            A list with one tensor per layer of `mk_layers`, of shape
            `(expansion,) + kernel_shape`, on the simplex over axis 0.
        """
        p0 = self._uniform_probabilities()
        if _BACKEND == "jax":
            optimizer_variables = None
            if self.optimizer is not None:
                optimizer_variables = [
                    v.value for v in self.optimizer.variables
                ]
            import jax

            # One compiled function rather than dozens of eager ops.
            if getattr(self, "_jitted_gradients", None) is None:
                self._jitted_gradients = jax.jit(
                    self._jax_probability_gradients
                )
            grads = self._jitted_gradients(
                p0,
                [v.value for v in self.trainable_variables],
                [v.value for v in self.non_trainable_variables],
                optimizer_variables,
                [v.value for v in self.metrics_variables],
                x,
                y,
                sample_weight,
            )
        else:
            grads = self._stateful_probability_gradients(
                p0, x, y, sample_weight
            )
        return self._ascend(p0, grads)

    # -- The train step, per backend ----------------------------------------

    if _BACKEND == "jax":

        def train_step(self, state, data):
            trainable, non_trainable, optimizer_vars, metrics_vars = state
            x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
            p0 = self._uniform_probabilities()
            grads = self._jax_probability_gradients(
                p0,
                trainable,
                non_trainable,
                optimizer_vars,
                metrics_vars,
                x,
                y,
                sample_weight,
            )
            p_adv = self._ascend(p0, grads)
            with probabilities_scope(self._assignments(p_adv)):
                return super().train_step(state, data)

    else:

        def train_step(self, data):
            x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
            p0 = self._uniform_probabilities()
            grads = self._stateful_probability_gradients(
                p0, x, y, sample_weight
            )
            p_adv = self._ascend(p0, grads)
            with probabilities_scope(self._assignments(p_adv)):
                return super().train_step(data)

    # -- Serialization -------------------------------------------------------

    def get_config(self):
        return {
            "name": self.name,
            "model": keras.saving.serialize_keras_object(self.model),
            "epsilon": self.epsilon,
            "adversarial_only": self.adversarial_only,
        }

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["model"] = keras.saving.deserialize_keras_object(config["model"])
        return cls(**config)

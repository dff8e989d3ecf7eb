"""The gradient of a model's loss with respect to its MK layers' `p`.

ADV-MK's first pass (Algorithm D.1, step 1), one function per kind of
backend: JAX differentiates a pure function of the variables' values;
TensorFlow and PyTorch record a tape on a stateful call and restore what
that call changed (moving statistics, metrics, seed states).
"""

import keras
from keras import ops

from keras_mk import _keras_private
from keras_mk.fresh_copy import fresh_copy
from keras_mk.training.probability_scope import probabilities_scope


def _loss_at(model, layers, p, x, y, sample_weight):
    with probabilities_scope(list(zip(layers, p))):
        y_pred = model(x, training=True)
    return model.compute_loss(
        x=x, y=y, y_pred=y_pred, sample_weight=sample_weight, training=True
    )


def stateful_gradients(model, layers, p0, x, y, sample_weight):
    """`grad_p` on TensorFlow and PyTorch, leaving the model's state as it
    was.

    Args:
        model: the compiled model whose loss is differentiated.
        layers: its MK layers, one per tensor of `p0`.
        p0: the probabilities at which the gradient is taken.
        x, y, sample_weight: one batch.

    Returns:
        A list of tensors shaped like `p0` (zeros for a layer the loss does
        not reach).
    """
    state = list(model.non_trainable_variables) + list(model.metrics_variables)
    saved = [fresh_copy(v.value) for v in state]
    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        with tf.GradientTape() as tape:
            tape.watch(p0)
            loss = _loss_at(model, layers, p0, x, y, sample_weight)
        grads = tape.gradient(loss, p0)
    elif backend == "torch":
        import torch

        p0 = [p.detach().requires_grad_(True) for p in p0]
        with torch.enable_grad():
            loss = _loss_at(model, layers, p0, x, y, sample_weight)
            grads = torch.autograd.grad(loss, p0, allow_unused=True)
    else:
        raise NotImplementedError(
            f"stateful_gradients does not support the {backend} backend."
        )
    for v, value in zip(state, saved):
        v.assign(value)
    return [ops.zeros_like(p) if g is None else g for p, g in zip(p0, grads)]


def jax_gradients(model, layers, p0, state, x, y, sample_weight):
    """`grad_p` on JAX, a pure function of the variables' values.

    Args:
        model: the compiled model whose loss is differentiated.
        layers: its MK layers, one per tensor of `p0`.
        p0: the probabilities at which the gradient is taken.
        state: `(trainable, non_trainable, optimizer, metrics)` variable
            values, as Keras's JAX `train_step` receives them (optimizer
            values may be None).
        x, y, sample_weight: one batch.
    """
    import jax

    trainable, non_trainable, optimizer_variables, metrics_variables = state

    def loss_at(p):
        with probabilities_scope(list(zip(layers, p))):
            return _keras_private.jax_loss(
                model,
                trainable,
                non_trainable,
                metrics_variables,
                optimizer_variables,
                x,
                y,
                sample_weight,
            )

    return jax.grad(loss_at)(p0)

"""MODEL SOUPS: averaging fine-tuned copies of one pretrained model.

Wortsman et al. (2022) average, in parameter space, several models fine-tuned
from the same pretrained weights; the paper compares MK with their uniform
and greedy soups on GLUE (Table 4).
"""

import keras
import numpy as np


def _weights(model):
    return [np.asarray(w) for w in model.get_weights()]


def _check_compatible(models):
    if not isinstance(models, (list, tuple)) or not models:
        raise ValueError(
            "`models` must be a non-empty list of Keras models. "
            f"Received: models={models!r}"
        )
    shapes = [w.shape for w in _weights(models[0])]
    for i, model in enumerate(models[1:], start=1):
        other = [w.shape for w in _weights(model)]
        if other != shapes:
            raise ValueError(
                "Every ingredient of a soup must have the same weights as the "
                f"first. Received: model {i} with weight shapes {other}, "
                f"expected {shapes}"
            )


def _average(weight_lists):
    averaged = []
    for ws in zip(*weight_lists):
        if np.issubdtype(ws[0].dtype, np.floating):
            mean = np.mean(np.stack(ws).astype("float64"), axis=0)
            averaged.append(mean.astype(ws[0].dtype))
        else:
            # Integer state (seeds, counters) cannot be averaged.
            averaged.append(ws[0])
    return averaged


def _soup_model(template, weights):
    soup = keras.models.clone_model(template)
    soup.set_weights(weights)
    return soup


def uniform_soup(models):
    """The uniform soup: every floating weight averaged over the models.

    Args:
        models: a list of models of the same architecture, usually fine-tuned
            from the same pretrained weights.

    Returns:
        A new (uncompiled) model, a clone of `models[0]` holding the mean
        weights. Integer variables (e.g. seed states) are the first model's.

    Example:

    >>> soup = keras_mk.baselines.uniform_soup([model_a, model_b, model_c])

    References:
        Wortsman et al., "Model soups: averaging weights of multiple
        fine-tuned models improves accuracy without increasing inference
        time", 2022; Mazzawi et al., "Majority Kernels", 2024, Table 4.
    """
    _check_compatible(models)
    return _soup_model(models[0], _average([_weights(m) for m in models]))


def greedy_soup(models, score_fn):
    """The greedy soup of Wortsman et al. (2022), Recipe 1.

    Sorts the ingredients by `score_fn` (higher is better, on held-out
    data), starts the soup with the best one and adds each next ingredient
    only if the averaged model scores at least as well as the soup so far.
    The result never scores below the best single ingredient.

    Args:
        models: a list of models of the same architecture.
        score_fn: callable `score_fn(model) -> float`, higher is better,
            evaluated on held-out data (e.g. validation accuracy).

    Returns:
        `(soup, indices)`: a new model holding the soup's weights and the
        list of the indices (into `models`) of the ingredients used.

    Example:

    ```python
    def score(model):
        logits = model.predict(x_val, verbose=0)
        return float(np.mean(logits.argmax(-1) == y_val))

    soup, used = keras_mk.baselines.greedy_soup(models, score)
    ```

    References:
        Wortsman et al., "Model soups", 2022, Recipe 1; Mazzawi et al.,
        "Majority Kernels", 2024, Table 4.
    """
    _check_compatible(models)
    if not callable(score_fn):
        raise ValueError(
            f"`score_fn` must be callable. Received: score_fn={score_fn!r}"
        )
    scores = [float(score_fn(m)) for m in models]
    order = sorted(range(len(models)), key=lambda i: -scores[i])
    used = [order[0]]
    best = scores[order[0]]
    candidate = _soup_model(models[0], _weights(models[order[0]]))
    for i in order[1:]:
        weights = _average([_weights(models[j]) for j in used + [i]])
        candidate.set_weights(weights)
        score = float(score_fn(candidate))
        if score >= best:
            used.append(i)
            best = score
    soup = _soup_model(models[0], _average([_weights(models[j]) for j in used]))
    return soup, used

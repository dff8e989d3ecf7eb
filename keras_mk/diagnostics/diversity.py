"""Copy diversity: have the kernel copies collapsed to equal?"""

import keras
import numpy as np

from keras_mk.conversion import class_map
from keras_mk.layers.walk import mk_layers


def copy_diversity(model):
    """The spread of every MK layer's kernel copies around their mean.

    For a layer with copies `W_1..W_e` and mean `W_bar`, the diversity is
    `sqrt(mean_elements(var_k W_k)) / sqrt(mean_elements(W_bar ** 2))`: the
    RMS distance of the copies from their mean relative to the RMS of the
    mean kernel. It is 0 when the copies are equal (replicated copies, or
    training with `probabilities="uniform"`, Lemma B.2) and scale free.
    The paper traces the overfitting of adversarial-only training
    (Algorithm D.1) to copies becoming equal.

    Args:
        model: a Keras model or layer containing MK layers.

    Returns:
        A dict `{layer path: diversity}` over the MK layers with
        `expansion > 1`. The path joins layer names from the model down
        (`"transformer_layer_0/self_attention/query_projector"`): unique
        even where nested layers share a name, as in KerasHub backbones.

    Example:

    >>> mk_model = keras_mk.clone_model(model, seed=0)  # replicated copies
    >>> keras_mk.diagnostics.copy_diversity(mk_model)
    {'dense': 0.0, 'dense_1': 0.0}
    """
    paths = {id(layer): path for path, layer in class_map.iter_layers(model)}
    result = {}
    for layer in mk_layers(model):
        copies = np.stack(
            [keras.ops.convert_to_numpy(v.value) for v in layer.kernel_copies]
        ).astype("float64")
        mean = copies.mean(axis=0)
        spread = np.sqrt(np.mean(copies.var(axis=0)))
        scale = np.sqrt(np.mean(np.square(mean)))
        path = paths.get(id(layer), layer.name)
        result[path] = float(spread / scale) if scale > 0 else 0.0
    return result


class CopyDiversity(keras.callbacks.Callback):
    """Logs how far the kernel copies have drifted apart, every epoch.

    Adds `logs["copy_diversity"]` (the mean of `copy_diversity(model)` over
    the MK layers) and, with `per_layer=True`,
    `logs["copy_diversity/<layer path>"]` at the end of every epoch, so the
    values appear in the `History` and in progress bars. The values are also
    kept in `callback.history` (with the value before training at index 0).
    A diversity that decays to 0 means the copies have collapsed to equal
    kernels: training has fallen back to the small model (at learning rate
    `lr / e` with SGD or momentum, Lemma B.2; at about `lr` with Adam,
    which is nearly invariant to the gradient's scale).

    Args:
        per_layer: whether to log each layer's value too. Default False.

    Example:

    ```python
    diversity = keras_mk.diagnostics.CopyDiversity()
    history = model.fit(x, y, epochs=10, callbacks=[diversity])
    history.history["copy_diversity"]
    ```

    References:
        Mazzawi et al., "Majority Kernels", 2024, Appendix D.
    """

    def __init__(self, per_layer=False):
        super().__init__()
        self.per_layer = per_layer
        self.history = {}

    def _measure(self):
        values = copy_diversity(self.model)
        logs = {}
        if values:
            logs["copy_diversity"] = float(np.mean(list(values.values())))
        if self.per_layer:
            for name, value in values.items():
                logs[f"copy_diversity/{name}"] = value
        return logs

    def _record(self, logs):
        for key, value in logs.items():
            self.history.setdefault(key, []).append(value)

    def on_train_begin(self, logs=None):
        self.history = {}
        self._record(self._measure())

    def on_epoch_end(self, epoch, logs=None):
        values = self._measure()
        self._record(values)
        if logs is not None:
            logs.update(values)

    def get_config(self):
        return {"per_layer": self.per_layer}

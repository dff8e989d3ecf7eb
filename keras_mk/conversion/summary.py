"""A printable record of what a conversion did and what it costs."""

import dataclasses
import math

from keras_mk.conversion import model_checks
from keras_mk.conversion import registry


@dataclasses.dataclass(frozen=True)
class ConvertedLayer:
    """One MK layer of a model."""

    path: str
    class_name: str
    expansion: int
    training_params: int
    inference_params: int


@dataclasses.dataclass(frozen=True)
class ConversionSummary:
    """What `keras_mk.clone_model` converted, and the parameter counts.

    `training_params` counts every weight of the MK model (all copies);
    `inference_params` is what `keras_mk.collapse` leaves: the original
    model's size. `left_plain` lists the layers holding a kernel that are
    not MK layers, as `(path, class_name, reason)`. `print(summary)` shows
    a table.
    """

    model_name: str
    layers: tuple
    training_params: int
    inference_params: int
    left_plain: tuple = ()

    def __str__(self):
        rows = [("Layer (path)", "Class", "e", "Training", "Inference")]
        for layer in self.layers:
            rows.append(
                (
                    layer.path,
                    layer.class_name,
                    str(layer.expansion),
                    f"{layer.training_params:,}",
                    f"{layer.inference_params:,}",
                )
            )
        widths = [max(len(r[i]) for r in rows) for i in range(5)]

        def line(row):
            cells = [row[0].ljust(widths[0]), row[1].ljust(widths[1])]
            cells += [c.rjust(w) for c, w in zip(row[2:], widths[2:])]
            return "  ".join(cells)

        rule = "-" * len(line(rows[0]))
        lines = [f'MK conversion of "{self.model_name}"', rule, line(rows[0])]
        lines += [rule] + [line(r) for r in rows[1:]] + [rule]
        lines += [
            f"MK layers: {len(self.layers)}",
            f"Training params:  {self.training_params:,}",
            f"Inference params: {self.inference_params:,} "
            "(after keras_mk.collapse)",
        ]
        if self.left_plain:
            lines.append(f"Kernel layers left plain: {len(self.left_plain)}")
            lines += [f"  {p} ({n}): {r}" for p, n, r in self.left_plain]
        return "\n".join(lines)


def _size(variable):
    return math.prod(variable.shape)


def conversion_summary(model):
    """Summarizes the MK layers of a model and its parameter counts.

    Args:
        model: a built `keras.Model`.

    Returns:
        A `ConversionSummary`; print it for a table with one row per MK
        layer (path, class, expansion, training and inference parameters)
        and the model's training and inference parameter counts.

    Raises:
        TypeError: if `model` is not a `keras.Model`.
        ValueError: if the model is not built.

    Example:

    >>> print(keras_mk.conversion_summary(mk_model))
    """
    model_checks.check_model(model, "conversion_summary")
    rows, extra = [], 0
    for path, layer in registry.mk_layers_of(model):
        weights = layer.weight_copies.values()  # kernels and the bias
        training = sum(_size(v) for copies in weights for v in copies)
        inference = sum(_size(copies[0]) for copies in weights if copies)
        extra += training - inference
        rows.append(
            ConvertedLayer(
                path, type(layer).__name__, layer.expansion, training, inference
            )
        )
    training_params = model.count_params()
    return ConversionSummary(
        model.name,
        tuple(rows),
        training_params,
        training_params - extra,
        tuple(registry.left_plain(model)),
    )

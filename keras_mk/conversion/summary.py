"""A printable record of what a conversion did and what it costs."""

import dataclasses
import math

from keras_mk.conversion import class_map


@dataclasses.dataclass(frozen=True)
class ConvertedLayer:
    """One MK layer of a model."""

    path: str
    class_name: str
    expansion: int
    training_params: int
    inference_params: int


@dataclasses.dataclass(frozen=True)
class KindShare:
    """The trainable parameters of one layer kind (its Keras class name),
    at inference size, and how many of them are simulated."""

    kind: str
    simulated_params: int
    trainable_params: int

    @property
    def share(self):
        return self.simulated_params / max(self.trainable_params, 1)


@dataclasses.dataclass(frozen=True)
class ConversionSummary:
    """What `keras_mk.clone_model` converted, and the parameter counts.

    `training_params` counts every weight of the MK model (all copies);
    `inference_params` is what `keras_mk.collapse` leaves: the original
    model's size. `left_plain` lists the layers holding a kernel that are
    not MK layers, as `(path, class_name, reason)`. `print(summary)` shows
    a table.

    The shares count the trainable parameters of the deployed model (one
    copy of each weight): `simulated_share` is the share in simulated
    weights, `matrix_share` the same share among matrix-shaped weights only
    (kernels and tables: two axes or more; biases, per-head ones included,
    and norm scales left out), and `kinds` a `KindShare` per layer kind
    (Keras class name), largest first.
    """

    model_name: str
    layers: tuple
    training_params: int
    inference_params: int
    left_plain: tuple = ()
    simulated_share: float = 0.0
    matrix_share: float = 0.0
    kinds: tuple = ()

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
        lines.append(
            f"Simulated: {self.simulated_share:.1%} of trainable params, "
            f"{self.matrix_share:.1%} of matrix-shaped ones (kernels, tables)"
        )
        lines += [
            f"  {k.kind}: {k.share:.1%} of {k.trainable_params:,}"
            for k in self.kinds
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
    class_map.check_model(model, "conversion_summary")
    rows, extra = [], 0
    for path, layer in class_map.mk_layers_of(model):
        groups = [c for c in layer.weight_copies.values() if c]
        training = sum(_size(v) for copies in groups for v in copies)
        inference = sum(_size(copies[0]) for copies in groups)
        extra += training - inference
        rows.append(
            ConvertedLayer(
                path, type(layer).__name__, layer.expansion, training, inference
            )
        )
    training_params = model.count_params()
    total, matrix, kinds = _shares(model)
    return ConversionSummary(
        model.name,
        tuple(rows),
        training_params,
        training_params - extra,
        tuple(class_map.left_plain(model)),
        simulated_share=total[0] / max(total[1], 1),
        matrix_share=matrix[0] / max(matrix[1], 1),
        kinds=tuple(
            KindShare(kind, simulated, trainable)
            for kind, (simulated, trainable) in sorted(
                kinds.items(), key=lambda item: -item[1][1]
            )
        ),
    )


def _is_matrix(weight):
    """A kernel or a table: two axes or more, and not a bias (an attention
    layer's bias has one axis per head and one per unit)."""
    return len(weight.shape) > 1 and "bias" not in weight.name


def _shares(model):
    """`(simulated, trainable)` parameter counts at inference size: of the
    model, of its matrix-shaped weights, and per layer kind (a dict)."""
    trainable = {id(w) for w in model.trainable_weights}
    seen = set()
    total, matrix, kinds = [0, 0], [0, 0], {}
    for _, layer in class_map.iter_layers(model):
        simulated, extra = set(), set()
        if class_map.is_mk_layer(layer):
            for name, copies in layer.weight_copies.items():
                extra.update(id(v) for v in copies[1:])
                if name != "bias" or layer.expand_bias:
                    simulated.add(id(copies[0]))
        plain = class_map.plain_class_for(layer) or type(layer)
        counts = kinds.setdefault(plain.__name__, [0, 0])
        for w in class_map.own_weights(layer):
            if id(w) in seen or id(w) in extra or id(w) not in trainable:
                continue
            seen.add(id(w))
            size, used = _size(w), int(id(w) in simulated)
            targets = [total, counts] + ([matrix] if _is_matrix(w) else [])
            for target in targets:
                target[0] += used * size
                target[1] += size
    kinds = {k: tuple(v) for k, v in kinds.items() if v[1]}
    return total, matrix, kinds

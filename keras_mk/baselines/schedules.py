"""BASELINE and BASELINE-LONG: plain training with the paper's step schedule."""

import keras

# ResNet-50 on ImageNet (Section 4.1): BASELINE trains 90 epochs with the
# learning rate divided by 10 at epochs 30 and 60; BASELINE-LONG trains 330
# epochs with drops at 90, 180 and 240, as long as MK trains.
BASELINE_EPOCHS = 90
BASELINE_DROPS = (30, 60)
BASELINE_LONG_EPOCHS = 330
BASELINE_LONG_DROPS = (90, 180, 240)


def baseline_schedule(
    learning_rate, steps_per_epoch, epochs=BASELINE_EPOCHS, long=False
):
    """The step learning-rate schedule of BASELINE or BASELINE-LONG.

    The paper's schedules are scaled to any length: `epochs` is the length
    of BASELINE; BASELINE-LONG trains `330 / 90` times longer. The learning
    rate is divided by 10 at the same fractions of training as in the paper.

    Args:
        learning_rate: float > 0, the initial learning rate.
        steps_per_epoch: integer >= 1, optimizer steps per epoch.
        epochs: integer >= 1, the length of BASELINE in epochs. Default 90.
        long: False for BASELINE (drops at 1/3 and 2/3 of training), True
            for BASELINE-LONG (drops at 90, 180 and 240 of 330 epochs).

    Returns:
        `(schedule, epochs)`: a
        `keras.optimizers.schedules.PiecewiseConstantDecay` to pass as the
        optimizer's learning rate, and the number of epochs to train.

    Example:

    >>> schedule, epochs = baseline_schedule(0.1, 100, epochs=9, long=True)
    >>> epochs
    33
    >>> optimizer = keras.optimizers.SGD(schedule, momentum=0.9)

    References:
        Mazzawi et al., "Majority Kernels", 2024, Section 4.1.
    """
    if not isinstance(learning_rate, (int, float)) or learning_rate <= 0:
        raise ValueError(
            "`learning_rate` must be a number > 0. "
            f"Received: learning_rate={learning_rate!r}"
        )
    for name, value in (
        ("steps_per_epoch", steps_per_epoch),
        ("epochs", epochs),
    ):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(
                f"`{name}` must be an integer >= 1. Received: {name}={value!r}"
            )
    if long:
        total = round(epochs * BASELINE_LONG_EPOCHS / BASELINE_EPOCHS)
        drops = [d / BASELINE_LONG_EPOCHS for d in BASELINE_LONG_DROPS]
    else:
        total = epochs
        drops = [d / BASELINE_EPOCHS for d in BASELINE_DROPS]
    boundaries = [round(f * total * steps_per_epoch) for f in drops]
    values = [learning_rate * 0.1**i for i in range(len(boundaries) + 1)]
    schedule = keras.optimizers.schedules.PiecewiseConstantDecay(
        boundaries, values
    )
    return schedule, total

"""Diagnostics of MK training: stochastic sharpness and copy diversity."""

from keras_mk.diagnostics.diversity import CopyDiversity
from keras_mk.diagnostics.diversity import copy_diversity
from keras_mk.diagnostics.sharpness import stochastic_sharpness

__all__ = [
    "CopyDiversity",
    "copy_diversity",
    "stochastic_sharpness",
]

"""Training variants of MK: adversarial probabilities (Appendix D)."""

from keras_mk.layers.walk import mk_layers
from keras_mk.sampling.simplex import adversarial_mixing_weight
from keras_mk.sampling.simplex import project_to_simplex
from keras_mk.training.adversarial import AdversarialMK
from keras_mk.training.probability_scope import probabilities_scope

__all__ = [
    "AdversarialMK",
    "adversarial_mixing_weight",
    "project_to_simplex",
    "mk_layers",
    "probabilities_scope",
]

"""Sampling MK's probabilities `p` and mixing kernel copies with them.

`simplex`: the maths (backend-agnostic `keras.ops`). `counter_hash`: uniform
numbers hashed from the element index. `mixing`: the draw and the mix, with
the per-backend fast paths of `jax_backend`, `tensorflow_backend` and
`torch_backend`.
"""

from keras_mk.sampling.counter_hash import hashed_uniforms
from keras_mk.sampling.mixing import mix_with_spacings
from keras_mk.sampling.mixing import sample_spacings
from keras_mk.sampling.mixing import sampled_mix
from keras_mk.sampling.mixing import sampled_mix_for
from keras_mk.sampling.mixing import training_uses_hash
from keras_mk.sampling.mixing import uniforms
from keras_mk.sampling.simplex import PROBABILITIES
from keras_mk.sampling.simplex import adversarial_mixing_weight
from keras_mk.sampling.simplex import exact_mean
from keras_mk.sampling.simplex import mean
from keras_mk.sampling.simplex import project_to_simplex
from keras_mk.sampling.simplex import sample_dirichlet
from keras_mk.sampling.simplex import spacings_to_probabilities
from keras_mk.sampling.simplex import weighted_sum

__all__ = [
    "PROBABILITIES",
    "adversarial_mixing_weight",
    "exact_mean",
    "hashed_uniforms",
    "mean",
    "mix_with_spacings",
    "project_to_simplex",
    "sample_dirichlet",
    "sample_spacings",
    "sampled_mix",
    "sampled_mix_for",
    "spacings_to_probabilities",
    "training_uses_hash",
    "uniforms",
    "weighted_sum",
]

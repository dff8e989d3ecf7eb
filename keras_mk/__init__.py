"""keras_mk: Majority Kernels for Keras 3 (TensorFlow, JAX, PyTorch).

Train a model whose kernels are stored as `e` copies mixed with random
per-element probabilities; deploy the mean: the original size and cost.
"""

from keras_mk import layers
from keras_mk.layers import MKConv1D
from keras_mk.layers import MKConv2D
from keras_mk.layers import MKConv3D
from keras_mk.layers import MKDense
from keras_mk.layers import MKDepthwiseConv1D
from keras_mk.layers import MKDepthwiseConv2D
from keras_mk.layers import MKEinsumDense
from keras_mk.layers import MKLayer

__version__ = "0.1.0"

"""Majority Kernels layers: drop-in supersets of the Keras kernel layers."""

from keras_mk.layers.config import MKConfig
from keras_mk.layers.mk_conv import MKConv1D
from keras_mk.layers.mk_conv import MKConv1DTranspose
from keras_mk.layers.mk_conv import MKConv2D
from keras_mk.layers.mk_conv import MKConv2DTranspose
from keras_mk.layers.mk_conv import MKConv3D
from keras_mk.layers.mk_conv import MKConv3DTranspose
from keras_mk.layers.mk_dense import MKDense
from keras_mk.layers.mk_depthwise_conv import MKDepthwiseConv1D
from keras_mk.layers.mk_depthwise_conv import MKDepthwiseConv2D
from keras_mk.layers.mk_einsum_dense import MKEinsumDense
from keras_mk.layers.mk_embedding import MKEmbedding
from keras_mk.layers.mk_layer import MKLayer

try:  # Keras >= 3.13
    from keras_mk.layers.mk_embedding import MKReversibleEmbedding
except ImportError:
    pass

__all__ = [
    "MKConfig",
    "MKConv1D",
    "MKConv1DTranspose",
    "MKConv2D",
    "MKConv2DTranspose",
    "MKConv3D",
    "MKConv3DTranspose",
    "MKDense",
    "MKDepthwiseConv1D",
    "MKDepthwiseConv2D",
    "MKEinsumDense",
    "MKEmbedding",
    "MKLayer",
]
if "MKReversibleEmbedding" in globals():
    __all__.append("MKReversibleEmbedding")

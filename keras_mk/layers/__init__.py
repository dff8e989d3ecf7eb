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
from keras_mk.layers.mk_embedding import MKReversibleEmbedding
from keras_mk.layers.mk_layer import MKLayer
from keras_mk.layers.mk_recurrent import MKGRU
from keras_mk.layers.mk_recurrent import MKLSTM
from keras_mk.layers.mk_recurrent import MKConvLSTM1D
from keras_mk.layers.mk_recurrent import MKConvLSTM2D
from keras_mk.layers.mk_recurrent import MKConvLSTM3D
from keras_mk.layers.mk_recurrent import MKConvLSTMCell
from keras_mk.layers.mk_recurrent import MKGRUCell
from keras_mk.layers.mk_recurrent import MKLSTMCell
from keras_mk.layers.mk_recurrent import MKSimpleRNN
from keras_mk.layers.mk_recurrent import MKSimpleRNNCell
from keras_mk.layers.mk_separable_conv import MKSeparableConv1D
from keras_mk.layers.mk_separable_conv import MKSeparableConv2D

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
    "MKGRU",
    "MKConvLSTM1D",
    "MKConvLSTM2D",
    "MKConvLSTM3D",
    "MKConvLSTMCell",
    "MKGRUCell",
    "MKLSTM",
    "MKLSTMCell",
    "MKEmbedding",
    "MKReversibleEmbedding",
    "MKLayer",
    "MKSeparableConv1D",
    "MKSeparableConv2D",
    "MKSimpleRNN",
    "MKSimpleRNNCell",
]

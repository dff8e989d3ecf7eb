"""keras_mk: Majority Kernels for Keras 3 (TensorFlow, JAX, PyTorch).

Train a model whose kernels are stored as `e` copies mixed with random
per-element probabilities; deploy the mean: the original size and cost.
"""

from keras_mk import _keras_private
from keras_mk import baselines
from keras_mk import conversion
from keras_mk import diagnostics
from keras_mk import distribution
from keras_mk import layers
from keras_mk import training
from keras_mk.conversion import ConversionSummary
from keras_mk.conversion import clone_function
from keras_mk.conversion import clone_model
from keras_mk.conversion import collapse
from keras_mk.conversion import conversion_summary
from keras_mk.conversion import export_litert
from keras_mk.conversion import load_model
from keras_mk.conversion import save_model
from keras_mk.distribution import mk_layout_map
from keras_mk.layers import MKGRU
from keras_mk.layers import MKLSTM
from keras_mk.layers import MKConfig
from keras_mk.layers import MKConv1D
from keras_mk.layers import MKConv1DTranspose
from keras_mk.layers import MKConv2D
from keras_mk.layers import MKConv2DTranspose
from keras_mk.layers import MKConv3D
from keras_mk.layers import MKConv3DTranspose
from keras_mk.layers import MKConvLSTM1D
from keras_mk.layers import MKConvLSTM2D
from keras_mk.layers import MKConvLSTM3D
from keras_mk.layers import MKConvLSTMCell
from keras_mk.layers import MKDense
from keras_mk.layers import MKDepthwiseConv1D
from keras_mk.layers import MKDepthwiseConv2D
from keras_mk.layers import MKEinsumDense
from keras_mk.layers import MKEmbedding
from keras_mk.layers import MKGRUCell
from keras_mk.layers import MKLayer
from keras_mk.layers import MKLSTMCell
from keras_mk.layers import MKReversibleEmbedding
from keras_mk.layers import MKSeparableConv1D
from keras_mk.layers import MKSeparableConv2D
from keras_mk.layers import MKSimpleRNN
from keras_mk.layers import MKSimpleRNNCell
from keras_mk.training import AdversarialMK
from keras_mk.version import __version__

__all__ = [
    "AdversarialMK",
    "ConversionSummary",
    "MKConfig",
    "MKConv1D",
    "MKConv1DTranspose",
    "MKConv2D",
    "MKConv2DTranspose",
    "MKConv3D",
    "MKConv3DTranspose",
    "MKConvLSTM1D",
    "MKConvLSTM2D",
    "MKConvLSTM3D",
    "MKConvLSTMCell",
    "MKDense",
    "MKDepthwiseConv1D",
    "MKDepthwiseConv2D",
    "MKEinsumDense",
    "MKEmbedding",
    "MKGRU",
    "MKGRUCell",
    "MKLSTM",
    "MKLSTMCell",
    "MKLayer",
    "MKReversibleEmbedding",
    "MKSeparableConv1D",
    "MKSeparableConv2D",
    "MKSimpleRNN",
    "MKSimpleRNNCell",
    "__version__",
    "baselines",
    "clone_function",
    "clone_model",
    "collapse",
    "conversion",
    "conversion_summary",
    "diagnostics",
    "distribution",
    "export_litert",
    "layers",
    "load_model",
    "mk_layout_map",
    "save_model",
    "training",
]

_keras_private.serialize_without_importing_tensorflow()

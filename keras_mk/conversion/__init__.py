"""Converting Keras models to Majority Kernels and back for deployment."""

from keras_mk.conversion.clone import clone_function
from keras_mk.conversion.clone import clone_model
from keras_mk.conversion.collapsing import collapse
from keras_mk.conversion.export import export_litert
from keras_mk.conversion.saving import load_model
from keras_mk.conversion.saving import save_model
from keras_mk.conversion.summary import ConversionSummary
from keras_mk.conversion.summary import conversion_summary

__all__ = [
    "ConversionSummary",
    "clone_function",
    "clone_model",
    "collapse",
    "conversion_summary",
    "export_litert",
    "load_model",
    "save_model",
]

"""Converting Keras models to Majority Kernels and back for deployment.

The route of a model through conversion, in the order data flows:
`clone` plans and converts (`clone_model`, `clone_function`), `copying`
copies a model with everything its config does not record, `class_map`
says which Keras class becomes which MK class, `collapsing` turns an MK
model back into its plain model, `saving` writes, loads and exports, and
`summary` counts what a conversion changed.
"""

from keras_mk.conversion.clone import clone_model
from keras_mk.conversion.collapsing import collapse
from keras_mk.conversion.keras_clone import clone_function
from keras_mk.conversion.saving import export_litert
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

"""Checks that a model converts exactly: for users and the project's tests.

`check_model` runs the conversion-coverage checks on one model (convert,
compare, one `fit` step, collapse, reload in a fresh process);
`build_application` and `build_hub` make the `keras.applications` and tiny
KerasHub models they were run on.
"""

from keras_mk.testing.coverage import APPLICATIONS
from keras_mk.testing.coverage import FAMILIES
from keras_mk.testing.coverage import TOLERANCE
from keras_mk.testing.coverage import build_application
from keras_mk.testing.coverage import check_model
from keras_mk.testing.coverage import inputs_for
from keras_mk.testing.coverage import relative_error
from keras_mk.testing.hub_models import HUB_MODELS
from keras_mk.testing.hub_models import build_hub

__all__ = [
    "APPLICATIONS",
    "FAMILIES",
    "HUB_MODELS",
    "TOLERANCE",
    "build_application",
    "build_hub",
    "check_model",
    "inputs_for",
    "relative_error",
]

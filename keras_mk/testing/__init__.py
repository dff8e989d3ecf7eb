"""Checks that a model converts exactly: for users and the project's tests.

`check_model` runs the conversion-coverage checks on one model (convert,
compare, one `fit` step, collapse, reload in a fresh process);
`build_application` makes the `keras.applications` models they were run on.
"""

from keras_mk.testing.coverage import APPLICATIONS
from keras_mk.testing.coverage import FAMILIES
from keras_mk.testing.coverage import TOLERANCE
from keras_mk.testing.coverage import build_application
from keras_mk.testing.coverage import check_model
from keras_mk.testing.coverage import inputs_for
from keras_mk.testing.coverage import relative_error

__all__ = [
    "APPLICATIONS",
    "FAMILIES",
    "TOLERANCE",
    "build_application",
    "check_model",
    "inputs_for",
    "relative_error",
]

"""Saving, loading and exporting MK models, atomically."""

from keras_mk.conversion.saving.archive import save_model
from keras_mk.conversion.saving.export import export_litert
from keras_mk.conversion.saving.loading import load_model

__all__ = ["export_litert", "load_model", "save_model"]

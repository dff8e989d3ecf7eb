"""Fixtures of the conversion tests (their models: `models.py`)."""

import models
import pytest


@pytest.fixture(scope="session")
def t5(tmp_path_factory):
    """A T5Backbone loaded from a local preset (`save_to_preset`)."""
    import keras_hub

    directory = str(tmp_path_factory.mktemp("t5_preset"))
    models.t5_backbone().save_to_preset(directory)
    return keras_hub.models.Backbone.from_preset(directory)


@pytest.fixture(scope="session")
def mk_t5(t5):
    import keras_mk

    return keras_mk.clone_model(t5, seed=0)

"""The public surface: what `keras_mk` and its subpackages export."""

import importlib

import pytest

import keras_mk

SUBPACKAGES = (
    "baselines",
    "conversion",
    "diagnostics",
    "layers",
    "sampling",
    "testing",
    "training",
)


@pytest.mark.parametrize("name", ("",) + SUBPACKAGES)
def test_every_public_package_lists_what_it_exports(name):
    module = importlib.import_module(f"keras_mk.{name}" if name else "keras_mk")
    assert len(set(module.__all__)) == len(module.__all__)  # no repeats
    for exported in module.__all__:
        assert hasattr(module, exported), exported
        private = exported.startswith("_") and exported != "__version__"
        assert not private, exported


def test_the_top_level_exports_the_subpackages_and_the_workflow():
    for name in SUBPACKAGES[:3] + ("distribution", "layers", "training"):
        assert name in keras_mk.__all__
    for name in ("clone_model", "collapse", "save_model", "load_model"):
        assert name in keras_mk.__all__
    assert "_keras_private" not in keras_mk.__all__

"""The guides list every MK argument: the fields of `MKConfig`."""

import pathlib
import re

import pytest

import keras_mk
from keras_mk.layers import MKConfig

DOCS = pathlib.Path(__file__).parents[2] / "docs"


def _section(page, heading):
    text = (DOCS / page).read_text()
    match = re.search(
        rf"^#+ {re.escape(heading)}\n(.*?)(?=^#)", text, re.S | re.M
    )
    assert match, f"{page} has no section '{heading}'"
    return match.group(1)


@pytest.mark.parametrize(
    "page,heading,leave_out",
    [
        ("layers.md", "Arguments added to the Keras layer", ()),
        ("conversion.md", "MK arguments", ()),
    ],
)
def test_guide_lists_every_mk_argument(page, heading, leave_out):
    section = _section(page, heading)
    missing = [
        name
        for name in MKConfig.names()
        if name not in leave_out and f"`{name}`" not in section
    ]
    assert not missing, f"{page} '{heading}' does not list {missing}"


def test_docstrings_list_every_mk_argument():
    for doc in (keras_mk.MKDense.__doc__, keras_mk.MKConfig.__doc__):
        for name in MKConfig.names():
            assert f"{name}: " in doc
    for name in MKConfig.names():
        if name != "copy_initialization":
            assert f"`{name}`" in keras_mk.clone_model.__doc__

"""Griffe extension: renders Keras-style `Example:` sections as examples.

keras_mk's docstrings follow Keras (`Example:`, singular); Griffe's Google
parser knows only `Examples:` as the section whose `>>>` lines are code, and
would show `Example:` as a plain admonition.
"""

import re

import griffe

_EXAMPLE = re.compile(r"^(\s*)Example:\s*$", re.MULTILINE)


class KerasExampleSections(griffe.Extension):
    def on_object(self, *, obj, **kwargs):
        if obj.docstring is not None:
            obj.docstring.value = _EXAMPLE.sub(
                r"\1Examples:", obj.docstring.value
            )

"""Every `Example:` in a public docstring of keras_mk runs, on every backend.

The examples are doctests. They share a few names, defined here as a
reader would have them (`model`, a plain Keras model; `mk_model`, its MK
conversion; `x`, `y`, ...). An example line without shown output only has
to run (a `fit` progress bar or a printed table is not compared); an
example that shows output is compared with it.
"""

import doctest
import importlib
import pkgutil

import keras
import numpy as np
import pytest

import keras_mk

BACKEND = keras.backend.backend()
# Examples that need more than the current backend offers.
NEEDS = {
    # `keras.distribution` runs on JAX.
    "keras_mk.distribution.mk_layout_map": ("jax", "keras_hub"),
    "keras_mk.conversion.saving.archive.save_model": ("keras_hub",),
}


class _RunsOrMatches(doctest.OutputChecker):
    def check_output(self, want, got, optionflags):
        if not want:
            return True
        return super().check_output(want, got, optionflags)


def _docstring_tests():
    finder = doctest.DocTestFinder(exclude_empty=True)
    modules = [keras_mk] + [
        importlib.import_module(info.name)
        for info in pkgutil.walk_packages(keras_mk.__path__, "keras_mk.")
    ]
    tests = {}
    for module in modules:
        for test in finder.find(module):
            if test.examples and test.name not in tests:
                tests[test.name] = test
    return [tests[name] for name in sorted(tests)]


def _globs(test):
    docstring = test.docstring
    rng = np.random.default_rng(0)
    globs = dict(test.globs)  # the module's names, as doctest gives them
    globs.update(keras=keras, np=np, keras_mk=keras_mk)
    globs["x"] = rng.normal(size=(256, 8)).astype("float32")
    globs["y"] = rng.normal(size=(256, 4)).astype("float32")

    def plain():
        return keras.Sequential(
            [
                keras.Input((8,)),
                keras.layers.Dense(16, activation="relu", name="dense"),
                keras.layers.Dense(4, name="dense_1"),
            ]
        )

    globs["model"] = globs["plain_model"] = plain()
    globs["mk_model"] = keras_mk.clone_model(globs["model"], seed=0)
    for name in ("model_a", "model_b", "model_c"):
        globs[name] = plain()
    if "keras_hub" in docstring or "mk_backbone" in docstring:
        import keras_hub

        globs["keras_hub"] = keras_hub
        backbone = keras_mk.testing.build_hub("T5")
        globs["mk_backbone"] = keras_mk.clone_model(backbone, seed=0)
    return globs


DOCTESTS = _docstring_tests()


def test_every_public_module_has_examples():
    names = {test.name for test in DOCTESTS}
    assert "keras_mk.conversion.clone.clone_model" in names
    assert len(DOCTESTS) >= 15


@pytest.mark.parametrize("test", DOCTESTS, ids=lambda t: t.name)
def test_docstring_example(test, tmp_path, monkeypatch):
    for need in NEEDS.get(test.name, ()):
        if need in ("jax", "tensorflow", "torch"):
            if BACKEND != need:
                pytest.skip(f"the example runs on {need}")
        else:
            pytest.importorskip(need)
    monkeypatch.chdir(tmp_path)  # examples write files
    test.globs = _globs(test)
    if "load_model(" in test.docstring and "save_model(" not in test.docstring:
        # The file the example loads, as its reader would have it.
        keras_mk.save_model(test.globs["mk_model"], "mk_model.keras")
    runner = doctest.DocTestRunner(
        checker=_RunsOrMatches(),
        optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE,
    )
    output = []
    runner.run(test, out=output.append, clear_globs=False)
    assert runner.failures == 0, "".join(output)

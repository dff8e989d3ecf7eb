"""The quick-start notebook runs top to bottom (on JAX: once is enough).

Its first cell, the `pip install` line for Colab, is tagged
`skip-execution`: the package under test is already installed.
"""

import os
import pathlib

import keras
import pytest

ROOT = pathlib.Path(__file__).parents[2]
NOTEBOOK = ROOT / "examples/notebooks/quickstart.ipynb"


def test_notebook_is_stored_without_outputs():
    nbformat = pytest.importorskip("nbformat")
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    nbformat.validate(notebook)
    first = notebook.cells[0]
    assert first.source.startswith("!pip install")
    assert "skip-execution" in first.metadata["tags"]
    for cell in notebook.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None


@pytest.mark.skipif(keras.backend.backend() != "jax", reason="run once, on JAX")
def test_notebook_runs(tmp_path, monkeypatch):
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    client = nbclient.NotebookClient(
        notebook,
        timeout=300,
        kernel_name="python3",
        resources={"metadata": {"path": str(tmp_path)}},
    )
    # The kernel imports this checkout's keras_mk, whatever is installed.
    path = os.environ.get("PYTHONPATH")
    monkeypatch.setenv(
        "PYTHONPATH", os.pathsep.join(filter(None, [str(ROOT), path]))
    )
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "2")
    client.execute()  # raises CellExecutionError on the first failing cell
    assert any(
        "LiteRT vs Keras" in output.get("text", "")
        for cell in notebook.cells
        if cell.cell_type == "code"
        for output in cell.outputs
    )

"""One model per `keras.applications` family converts exactly (issue 10).

The full table (every constructor, KerasHub models, three backends) is
`benchmarks/conversion_coverage.py`, written to `docs/coverage.md`; this
runs the same checks on one model per family in the suite.
"""

import pytest

from benchmarks import conversion_coverage as coverage


@pytest.mark.slow
@pytest.mark.parametrize("name", coverage.FAMILIES)
def test_application_family_converts_trains_collapses_and_reloads(name):
    model = coverage.build_application(name)
    result = coverage.check_model(model, jit_compile=False)
    result.pop("traceback", None)
    assert result["status"] == "pass", result
    assert result["convert_error"] <= coverage.TOLERANCE
    assert result["collapse_error"] <= coverage.TOLERANCE
    assert result["reload_error"] <= coverage.TOLERANCE


@pytest.mark.slow
@pytest.mark.parametrize("name", ["Bert", "Gemma", "ViT", "Whisper"])
def test_keras_hub_models_convert_trains_collapses_and_reloads(name):
    pytest.importorskip("keras_hub")
    result = coverage.check_model(coverage.build_hub(name), jit_compile=False)
    result.pop("traceback", None)
    assert result["status"] == "pass", result

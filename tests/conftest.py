import os

import keras
import pytest

BACKEND = keras.backend.backend()


def pytest_report_header(config):
    return f"keras {keras.__version__}, KERAS_BACKEND={BACKEND}"


def pytest_addoption(parser):
    parser.addoption(
        "--run-large",
        action="store_true",
        default=False,
        help="run tests marked `large` (beyond the CI budget)",
    )
    parser.addoption(
        "--all-families",
        action="store_true",
        default=False,
        help="run the per-family tests that CI runs on one backend only "
        "(KerasHub tasks) on this backend too",
    )


def pytest_collection_modifyitems(config, items):
    if config.getoption("--run-large"):
        return
    skip = pytest.mark.skip(reason="large test: pass --run-large to run it")
    for item in items:
        if "large" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(autouse=True)
def _float32_policy():
    # Cheap per-test isolation; `clear_session` (a full gc) costs ~0.5 s.
    keras.config.set_dtype_policy("float32")
    yield
    keras.config.set_dtype_policy("float32")


os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

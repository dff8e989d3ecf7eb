"""The README and every docs page stay short enough to read."""

import glob
import os

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(__file__)))
PAGES = sorted(glob.glob(os.path.join(ROOT, "docs", "*.md")))
LIMITS = {"README.md": 150}


def _lines(path):
    with open(path) as f:
        return len(f.read().splitlines())


def test_the_readme_is_at_most_150_lines():
    assert _lines(os.path.join(ROOT, "README.md")) <= LIMITS["README.md"]


@pytest.mark.parametrize("page", PAGES, ids=os.path.basename)
def test_every_docs_page_is_at_most_500_lines(page):
    assert _lines(page) <= 500

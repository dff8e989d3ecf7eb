"""The README's links into the repository resolve: files and anchors.

`mkdocs build --strict` checks the links between docs pages (anchors
included, `validation` in `mkdocs.yml`); the README is outside the site,
so its links are checked here, with the site's own heading slugs.
"""

import os
import re

from markdown.extensions.toc import slugify

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(__file__)))
LINK = re.compile(r"\]\(([^)\s]+)\)")


def _anchors(path):
    with open(path) as f:
        headings = [
            line.lstrip("#").strip() for line in f if re.match(r"#{1,6} ", line)
        ]
    return {slugify(h.replace("`", ""), "-") for h in headings}


def test_every_readme_link_into_the_repository_resolves():
    with open(os.path.join(ROOT, "README.md")) as f:
        readme = f.read()
    links = [t for t in LINK.findall(readme) if "://" not in t]
    assert links, "the README links into the docs"
    for target in links:
        path, _, anchor = target.partition("#")
        full = os.path.join(ROOT, path)
        assert os.path.exists(full), target
        if anchor:
            assert anchor in _anchors(full), target


def test_the_anchor_check_sees_headings():
    anchors = _anchors(os.path.join(ROOT, "docs", "performance.md"))
    assert "time-to-first-step" in anchors
    assert "options-that-trade-fidelity-for-speed" in anchors

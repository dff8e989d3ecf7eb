"""Tracked files describe the library as it is, not how it was made.

No tracked file names the rounds of work that built it: the noun they were
named by, ordinals with it, this project's tracker numbers, and the like.
References to other projects' trackers name the project (TensorFlow's
tracker by "TensorFlow" before the number); API names of other tools
(pytest's fixture scope, Keras's `clear_session`) are allowed. This file
assembles the words it bans, so it is scanned too.
"""

import os
import re
import subprocess

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(__file__)))
# The banned words, assembled so that this file does not spell them.
NOUN = "sess" + "ion"
ROUND = "ro" + "und"
ISSUE = "iss" + "ue"
ORDINALS = (
    "first|second|third|fourth|fifth|sixth|seventh|eighth|ninth|tenth|"
    "eleventh|twelfth"
)
PATTERNS = (
    re.compile(rf"(?<![\w]){NOUN}s?(?![\w(])", re.IGNORECASE),
    re.compile(rf"\b({ORDINALS})[ -]({ROUND}|{NOUN})s?\b", re.IGNORECASE),
    re.compile(
        rf"\b(this|previous|last|next|earlier) {ROUND}\b", re.IGNORECASE
    ),
    re.compile(rf"\b{ISSUE}s? #?\d+", re.IGNORECASE),
    re.compile("auth" + "ors' decision", re.IGNORECASE),
)
# Other projects whose tracker a file may cite ("pip issues 12361").
PROJECTS = {
    "tensorflow", "keras", "pip", "jax", "pytorch", "kerashub", "keras-hub",
    "torch", "flax", "litert", "mkdocs", "pytest", "xla", "numpy", "tfds",
}  # fmt: skip
ALLOWED_LINES = re.compile(
    rf"scope=[\"']{NOUN}[\"']|clear_{NOUN}|{NOUN.title()}\(|"
    rf"Interactive{NOUN.title()}"
)
BINARY = (".png", ".h5", ".keras", ".tflite", ".jsonl", ".npz", ".gz")


def _tracked():
    listed = subprocess.run(
        ["git", "ls-files"], cwd=ROOT, capture_output=True, text=True
    )
    if listed.returncode != 0:
        pytest.skip("not a git checkout")
    return [f for f in listed.stdout.split() if not f.endswith(BINARY)]


def _hits(line):
    if ALLOWED_LINES.search(line):
        return []
    found = []
    for pattern in PATTERNS:
        for match in pattern.finditer(line):
            before = line[: match.start()].split()
            if pattern is PATTERNS[3] and before:
                if before[-1].strip("(`'\"").lower() in PROJECTS:
                    continue
            found.append(match.group(0))
    return found


def test_no_tracked_file_names_the_rounds_of_work():
    offending = []
    for name in _tracked():
        path = os.path.join(ROOT, name)
        try:
            with open(path, encoding="utf-8") as f:
                lines = f.read().splitlines()
        except (UnicodeDecodeError, FileNotFoundError, IsADirectoryError):
            continue
        for number, line in enumerate(lines, 1):
            for hit in _hits(line):
                offending.append(f"{name}:{number}: {hit!r}")
    assert not offending, "\n".join(offending[:50])


@pytest.mark.parametrize(
    "line",
    [
        f"as measured in the fourth {NOUN}",
        f"Before this {ROUND}'s changes",
        f"fixed in {ISSUE} 24",
        f"see {ISSUE} #7",
        "the auth" + "ors' decision",
    ],
)
def test_the_patterns_catch_history(line):
    assert _hits(line)


@pytest.mark.parametrize(
    "line",
    [
        '@pytest.fixture(scope="session")',
        "keras.backend.clear_session()",
        "TensorFlow issue 48851",
        "pip issues 12361, 8168",
        "three rounds of three runs each",
    ],
)
def test_the_patterns_spare_other_projects_and_apis(line):
    assert not _hits(line)

"""Real text available offline: docstrings of the installed, pinned packages.

The fine-tuning job's text pair needs real text and no download. The Python
packages this project installs carry tens of thousands of docstrings:
`corpus` reads them from the packages' source files with `ast` (nothing is
imported), in sorted file order, so the same package versions give the same
text on every machine. `constraints.txt` pins those versions; `check`
compares the installed versions with the pins and the corpus's SHA-256 with
the one recorded in `DOCSTRINGS_SHA256`, and refuses a different corpus.

What gives a docstring's package away by name is removed: every package
name and import alias (`keras`, `tf`, `np`, `jnp`, `torch`, ...) becomes
`pkg`, so a classifier must read style and vocabulary, not a name.
"""

import ast
import hashlib
import importlib.metadata
import importlib.util
import os
import re

# Pretraining text (causal language modelling) and the target task's
# packages (classify which package a docstring comes from): disjoint.
SOURCE_PACKAGES = ("keras_hub",)
TARGET_PACKAGES = ("keras", "torch", "jax", "numpy")
# Distribution names, for the version check against constraints.txt.
DISTRIBUTIONS = {
    "keras_hub": "keras-hub",
    "keras": "keras",
    "torch": "torch",
    "jax": "jax",
    "numpy": "numpy",
}
# Every name that would give a package away, replaced by `pkg`.
GIVEAWAYS = re.compile(
    r"\b(keras_hub|keras_nlp|keras|tensorflow|tf|torch|pytorch|jax|jnp|lax|"
    r"numpy|np|xla|flax|optax|tpu)\b",
    re.IGNORECASE,
)
MIN_CHARACTERS = 80
# Tests and vendored code are not the package's own documentation.
SKIPPED_DIRECTORIES = {"tests", "test", "testing", "_vendor", "third_party"}
# Each package's docstrings at the pinned versions (`constraints.txt`):
# the first 16 hex digits of the SHA-256 of `digest`.
DOCSTRINGS_SHA256 = {
    "jax": "2e05dffff8f23efe",
    "keras": "f4e554578128afb1",
    "keras_hub": "e9cd5592268ff190",
    "numpy": "fc25514eee28111c",
    "torch": "0953344be8eaeab6",
}


def _sources(package):
    """The `.py` files of an installed package, sorted (none imported)."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise ValueError(f"Package {package!r} is not installed.")
    root = list(spec.submodule_search_locations)[0]
    found = []
    for directory, subdirectories, files in os.walk(root):
        subdirectories[:] = sorted(
            d for d in subdirectories if d not in SKIPPED_DIRECTORIES
        )
        found += [
            os.path.join(directory, f)
            for f in sorted(files)
            if f.endswith(".py")
        ]
    return found


def clean(text):
    """One line of normalized text with every package name replaced."""
    text = GIVEAWAYS.sub("pkg", text)
    return " ".join(text.split())


def docstrings(package):
    """The cleaned docstrings (modules, classes, functions) of `package`,
    at least `MIN_CHARACTERS` long, each once, in file order."""
    seen, found = set(), []
    for path in _sources(package):
        try:
            with open(path, encoding="utf-8") as f:
                tree = ast.parse(f.read())
        except (SyntaxError, UnicodeDecodeError, ValueError):
            continue
        nodes = [tree] + [
            node
            for node in ast.walk(tree)
            if isinstance(
                node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)
            )
        ]
        for node in nodes:
            text = ast.get_docstring(node)
            if not text:
                continue
            text = clean(text)
            if len(text) >= MIN_CHARACTERS and text not in seen:
                seen.add(text)
                found.append(text)
    return found


def corpus(packages):
    """`{package: [docstring, ...]}` for `packages`."""
    return {package: docstrings(package) for package in packages}


def digest(texts):
    """`{package: the first 16 hex digits of the SHA-256 of its texts}`."""
    found = {}
    for package in sorted(texts):
        sha = hashlib.sha256(package.encode())
        for text in texts[package]:
            sha.update(b"\n" + text.encode())
        found[package] = sha.hexdigest()[:16]
    return found


def pinned_versions(constraints):
    """`{distribution: version}` of the `name==version` lines of a file."""
    pins = {}
    with open(constraints) as f:
        for line in f:
            line = line.split("#")[0].strip()
            if "==" in line:
                name, version = line.split("==", 1)
                pins[name.strip().lower()] = version.strip()
    return pins


def _public(version):
    """`2.13.0` of `2.13.0+cpu`: a local build of the pinned release."""
    return version.split("+")[0]


def versions(packages):
    """`{distribution: installed version}` of `packages`."""
    return {
        DISTRIBUTIONS[p]: importlib.metadata.version(DISTRIBUTIONS[p])
        for p in packages
    }


def check(texts, constraints):
    """Refuses a corpus that is not the recorded one.

    Args:
        texts: `corpus(...)` of some of `SOURCE_PACKAGES +
            TARGET_PACKAGES`.
        constraints: the path of `constraints.txt`.

    Returns:
        `{"sha256": ..., "versions": {...}}` for the results.

    Raises:
        ValueError: when an installed version differs from its pin (naming
            both), or when the text's digest differs from
            `DOCSTRINGS_SHA256` at the pinned versions.
    """
    installed = versions(texts)
    pins = pinned_versions(constraints)
    differ = {
        name: (version, pins.get(name))
        for name, version in installed.items()
        if pins.get(name) != _public(version)
    }
    if differ:
        listed = ", ".join(
            f"{n} {v} (pinned: {p})" for n, (v, p) in sorted(differ.items())
        )
        raise ValueError(
            "The docstring corpus is defined by the versions constraints.txt "
            f"pins; installed: {listed}. Install with `make install`."
        )
    found = digest(texts)
    differ = {
        package: value
        for package, value in found.items()
        if DOCSTRINGS_SHA256.get(package) != value
    }
    if differ:
        raise ValueError(
            f"The docstrings of {sorted(differ)} have digests {differ}, not "
            f"the recorded {DOCSTRINGS_SHA256}, at the pinned versions "
            f"{installed}."
        )
    return {"sha256": found, "versions": installed}

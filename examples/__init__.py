"""Experiments with keras_mk: the main job and the paper's experiments.

Run them as modules from the repository root, e.g. `python -m examples.main`.
"""

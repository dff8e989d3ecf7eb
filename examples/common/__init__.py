"""Shared pieces of the experiment scripts (one concept per module).

Nothing here imports Keras at import time except the modules that need it,
so a script can choose the backend before the first Keras import.
"""

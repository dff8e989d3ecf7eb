"""What a model's config and variables do not record: assets, preprocessors.

Conversion and collapse copy a model from its config, then its variables.
Some layers keep state in neither: Keras saves it as *assets*
(`save_assets(dir)` / `load_assets(dir)`), e.g. a KerasHub tokenizer's
vocabulary, byte-pair merges or SentencePiece proto, or an adapted
`StringLookup`'s vocabulary. The copy gets them the way a `.keras` file
does: each such layer writes its assets and its copy reads them.

A KerasHub task's preprocessor (tokenizer, packers, image or audio
converter) has no weights to convert, and its config does not record all
of it either (some preprocessors drop their sequence lengths). The copy of
a task therefore uses the original's preprocessor object, as layers shared
between models are used in Keras.
"""

import tempfile

import keras

from keras_mk.conversion import registry


def _keeps_assets(obj):
    # What Keras's own saving asks (`saving_lib._save_state`).
    return hasattr(obj, "save_assets") and hasattr(obj, "load_assets")


def _with_assets(model):
    """`(path, object)` for `model` and its layers that keep assets."""
    found = [("", model)] if _keeps_assets(model) else []
    found += [(p, layer) for p, layer in registry.iter_layers(model)]
    return [(p, obj) for p, obj in found if _keeps_assets(obj)]


def copy_assets(source, target):
    """Copies the assets of `source`'s layers into `target`'s, by path.

    Args:
        source: a built layer or model.
        target: its copy, rebuilt from `source`'s config (same layer
            paths).

    Raises:
        ValueError: when a layer cannot save its assets (e.g. a tokenizer
            without a vocabulary), or `target` has no layer at its path.
            The message names the layer.
    """
    targets = dict(_with_assets(target))
    for path, layer in _with_assets(source):
        where = f"layer '{path}'" if path else f"model '{source.name}'"
        copy = targets.get(path)
        if copy is layer:
            continue  # shared (a task's preprocessor)
        if copy is None:
            raise ValueError(
                f"Cannot copy the assets of {where} "
                f"({type(layer).__name__}): its copy rebuilt from the "
                "config has no layer there."
            )
        with tempfile.TemporaryDirectory() as directory:
            try:
                layer.save_assets(directory)
            except Exception as e:
                raise ValueError(
                    f"Cannot copy {where} ({type(layer).__name__}): it "
                    "keeps state as assets (a vocabulary, merges, a "
                    f"proto...) that it could not write: {e!r}. Set them "
                    "(e.g. its vocabulary) before converting."
                ) from e
            copy.load_assets(directory)


def _preprocessor(model):
    preprocessor = getattr(model, "preprocessor", None)
    return preprocessor if isinstance(preprocessor, keras.Layer) else None


def without_preprocessor(model, config):
    """`model`'s serialized config, less the preprocessor it will share.

    Args:
        model: the model being copied.
        config: its serialized config (`serialize_keras_object`).

    Returns:
        The config, with `preprocessor: None` for a KerasHub task (so that
        the copy does not build a preprocessor of its own).
    """
    inner = config.get("config")
    if _preprocessor(model) is not None and isinstance(inner, dict):
        if "preprocessor" in inner:
            config = dict(config, config=dict(inner, preprocessor=None))
    return config


def keep_unrecorded_state(source, target):
    """Gives `target`, a copy of `source` from its config and variables,
    what those do not record: `source`'s preprocessor (shared) and the
    assets of every other layer (copied)."""
    preprocessor = _preprocessor(source)
    if preprocessor is not None and _preprocessor(target) is None:
        target.preprocessor = preprocessor
    copy_assets(source, target)

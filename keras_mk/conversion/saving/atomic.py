"""Atomic file writes: a save that fails leaves the previous file intact.

Keras's savers open the target path and write in place, so a save that
fails or is killed part-way destroys the previous checkpoint. Every save
that keras_mk makes writes the new file in a hidden temporary folder next
to the target (same file system), flushes it to disk, then renames it over
the target with `os.replace`, which is atomic on POSIX and Windows: at any
moment the path holds the old file or the new one, never neither.

The temporary folder is named `.<file name>.<random>.keras_mk-partial`: a
hidden folder whose name matches no checkpoint pattern (`*.keras`,
`*.weights.h5`), removed when the save ends, whether it succeeded or not.
Only a process killed mid-save can leave one behind; it never replaces
the checkpoint.
"""

import contextlib
import os
import shutil
import tempfile

from keras_mk import _keras_private

PARTIAL_SUFFIX = ".keras_mk-partial"


def _fsync_file(path):
    with open(path, "rb") as f:
        os.fsync(f.fileno())


def _fsync_directory(directory):
    # The rename itself is durable once the folder is synced (POSIX only).
    if not hasattr(os, "O_DIRECTORY"):
        return
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_write(filepath):
    """Yields a temporary path to write; it replaces `filepath` on success.

    The temporary path has the same file name as `filepath` (savers check
    the extension), in a hidden folder next to it. When the block raises,
    `filepath` is untouched and the folder is removed.

    Args:
        filepath: the file to write.

    Yields:
        The path to write instead of `filepath`.

    Example:

    >>> with atomic_write("model.keras") as path:
    ...     model.save(path)
    """
    filepath = os.path.abspath(os.fspath(filepath))
    directory, name = os.path.split(filepath)
    os.makedirs(directory, exist_ok=True)
    partial = tempfile.mkdtemp(
        prefix=f".{name}.", suffix=PARTIAL_SUFFIX, dir=directory
    )
    try:
        temporary = os.path.join(partial, name)
        yield temporary
        if not os.path.isfile(temporary):
            raise FileNotFoundError(
                f"The save wrote nothing at {temporary} (to replace "
                f"{filepath}); the previous file is kept."
            )
        _fsync_file(temporary)
        os.replace(temporary, filepath)
        _fsync_directory(directory)
    finally:
        shutil.rmtree(partial, ignore_errors=True)


def is_local_file(filepath):
    """Whether `filepath` is on the local file system (not `gs://...`)."""
    return not isinstance(filepath, str) or "://" not in filepath


def atomic_save(write, filepath, overwrite):
    """Runs `write(path)` through `atomic_write` for a local file.

    Returns False (nothing written) when `filepath` exists, `overwrite` is
    false and the user declines Keras's prompt.
    """
    filepath = os.fspath(filepath)
    if os.path.exists(filepath) and not overwrite:
        if not _keras_private.ask_to_overwrite(filepath):
            return False
    with atomic_write(filepath) as temporary:
        write(temporary)
    return True

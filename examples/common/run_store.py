"""Checkpoint and resume for long sweeps: one JSON line per finished run.

A sweep asks the store before each run; a run already recorded (by an
interrupted earlier invocation with the same output directory) is skipped.
Models that later runs depend on (e.g. ensemble members, the teacher of a
distilled student) are saved next to it as `.keras` files.
"""

import json
import os


class RunStore:
    """Finished runs of a sweep, kept in `<directory>/runs.jsonl`.

    Args:
        directory: the output directory of the sweep.
    """

    def __init__(self, directory):
        self.directory = directory
        os.makedirs(directory, exist_ok=True)
        self.path = os.path.join(directory, "runs.jsonl")
        self.records = {}
        if os.path.exists(self.path):
            with open(self.path) as f:
                for line in f:
                    if line.strip():
                        record = json.loads(line)
                        self.records[record["key"]] = record

    def get(self, key):
        """The record of a finished run, or None."""
        return self.records.get(key)

    def add(self, key, record):
        """Records a finished run (appends one line, flushed at once)."""
        record = dict(record, key=key)
        self.records[key] = record
        with open(self.path, "a") as f:
            f.write(json.dumps(record) + "\n")
        return record

    def model_path(self, key):
        """Where a model needed by later runs is saved."""
        directory = os.path.join(self.directory, "checkpoints")
        os.makedirs(directory, exist_ok=True)
        safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in key)
        return os.path.join(directory, f"{safe}.keras")

"""The CPU cores the samplers spread large draws over."""

import os


def available_cores():
    """The CPU cores this process may run on (at most 8 are used)."""
    if hasattr(os, "sched_getaffinity"):
        cores = len(os.sched_getaffinity(0))
    else:
        cores = os.cpu_count() or 1
    return max(1, min(cores, 8))

"""What the benchmark scripts share: where results live, how they are kept.

Each script writes one JSON file per backend to `benchmarks/results/`
(`<name>_<backend>.json`); its `--update-docs` reads them all back to
rebuild a table in `docs/`.
"""

import json
import os
import platform

BACKENDS = ("tensorflow", "jax", "torch")
RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")
DOCS = os.path.join(os.path.dirname(RESULTS), os.pardir, "docs")


def digits():
    """scikit-learn's digits: `(x, y)`, 1,797 flattened 8x8 images in
    `[0, 1]` and their int32 labels."""
    from sklearn.datasets import load_digits

    x, y = load_digits(return_X_y=True)
    return (x / 16.0).astype("float32"), y.astype("int32")


def result_path(name, backend):
    """`benchmarks/results/<name>_<backend>.json`."""
    return os.path.join(RESULTS, f"{name}_{backend}.json")


def write_json(data, path, indent=2):
    """Writes `data` to `path` as JSON, creating its directory."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w") as f:
        json.dump(data, f, indent=indent)


def read_results(name):
    """`{backend: data}` for each backend with a result file `name`."""
    results = {}
    for backend in BACKENDS:
        path = result_path(name, backend)
        if os.path.exists(path):
            with open(path) as f:
                results[backend] = json.load(f)
    return results


def machine():
    """The machine a benchmark ran on: CPU model, platform, cores, Python."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return {
        "cpu": cpu,
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
    }


def choices(parser, what, text, allowed):
    """The comma-separated `text` as a list; `parser.error` on a stranger."""
    found = [item for item in text.split(",") if item]
    for item in found:
        if item not in allowed:
            parser.error(f"unknown {what} {item!r}; choose from {allowed}")
    return found

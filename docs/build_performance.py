"""Renders the tables of `docs/performance.md` from the results files.

Each table of the page sits between `<!-- rendered: NAME -->` and
`<!-- /rendered -->`; this script rewrites those blocks from
`benchmarks/results/` (measuring nothing) and leaves the prose alone.
`--check` (run by `make docs`, so by CI) fails if the committed page
differs from what the results files give.

    python docs/build_performance.py            # rewrite the tables
    python docs/build_performance.py --check    # CI: fail if stale
"""

import argparse
import json
import os
import re
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, ROOT)

from benchmarks import common  # noqa: E402
from benchmarks import first_step  # noqa: E402
from benchmarks import step_time  # noqa: E402

PAGE = os.path.join(HERE, "performance.md")
BACKENDS = ("tensorflow", "jax", "torch")
BLOCK = re.compile(
    r"(<!-- rendered: (?P<name>[a-z_]+) -->\n)(?P<body>.*?)"
    r"(<!-- /rendered -->)",
    re.DOTALL,
)


def _read(name):
    with open(os.path.join(common.RESULTS, name)) as f:
        return json.load(f)


def _machine(machine):
    return (
        f"{machine.get('cpu', '?')}, {machine.get('cpu_count', '?')} cores, "
        f"Python {machine.get('python', '?')}"
    )


def _provenance(reports):
    """One line per (date, machine, command) behind a table's rows."""
    seen = {}
    for report in reports:
        for result in report["backends"].values():
            for entry in result["models"].values():
                measured = entry.get("measured", {})
                key = (
                    measured.get("date", "?"),
                    _machine(measured.get("machine", report["machine"])),
                    measured.get("command", "?"),
                )
                seen.setdefault(key, None)
    return [
        f"- {date}, {machine}: `{command}`"
        for date, machine, command in sorted(seen)
    ]


def steady_tables():
    """The step tables (against plain and the floor; where the time goes)
    and the collapsed-inference line, every backend."""
    reports = [_read(f"step_time_{b}.json") for b in BACKENDS]
    rendered = step_time.format_docs(reports).split("\n\n")
    provenance = ["Measured (date, machine, command):", ""]
    provenance += _provenance(reports)
    return {
        "steady": rendered[0] + "\n\n" + "\n".join(provenance),
        "breakdown": rendered[1],
        "inference": rendered[2],
    }


def memory_table():
    report = _read("step_memory.json")
    table = step_time.format_docs([report]).strip()
    return table + "\n\nMeasured:\n\n" + "\n".join(_provenance([report]))


def first_step_table():
    """TensorFlow's column with the optimizer built before `fit`, as the
    page advises."""
    results = common.read_results("first_step")
    results["tensorflow"] = _read(first_step.BUILT_NAME + "_tensorflow.json")
    lines = list(first_step.format_table(results)) + ["", "Measured:", ""]
    for backend in BACKENDS:
        data = results.get(backend)
        if data:
            models = data["models"].values()
            runs = max(len(m.get("plain", [])) for m in models)
            floor = " --floor" if any("inherent" in m for m in models) else ""
            built = " --build-optimizer" if backend == "tensorflow" else ""
            lines.append(
                f"- {backend}: {data.get('date', '?')}, "
                f"{_machine(data['machine'])}, optimizer "
                f"{data.get('optimizer', '?')}: `python -m "
                f"benchmarks.first_step --backends {backend} --runs {runs}"
                f"{floor}{built}`"
            )
    return "\n".join(lines)


def tables():
    """`{block name: markdown}` of every rendered block."""
    found = steady_tables()
    found["memory"] = memory_table()
    found["first_step"] = first_step_table()
    return found


def render(text, rendered):
    """`text` with each block's body replaced by `rendered[name]`."""
    missing = set(rendered)

    def replace(match):
        name = match.group("name")
        if name not in rendered:
            raise ValueError(f"No table named {name!r} to render.")
        missing.discard(name)
        return match.group(1) + rendered[name].strip() + "\n" + match.group(4)

    text = BLOCK.sub(replace, text)
    if missing:
        raise ValueError(f"The page has no block for {sorted(missing)}.")
    return text


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--check", action="store_true")
    args = parser.parse_args(argv)
    with open(PAGE) as f:
        page = f.read()
    new = render(page, tables())
    if args.check:
        if new != page:
            print(
                "docs/performance.md differs from its results files: run "
                "`python docs/build_performance.py`.",
                file=sys.stderr,
            )
            return 1
        return 0
    with open(PAGE, "w") as f:
        f.write(new)
    print(f"wrote {PAGE}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

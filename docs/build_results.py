"""Writes `docs/results.md` from a main-job run and copies its plots.

python -m examples.main            # writes outputs/main/
python docs/build_results.py       # docs/results.md, docs/img/*.png
"""

import argparse
import json
import os
import shutil
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)

HAND_WRITTEN = "<!-- hand-written -->"
PAPER = """\
## The paper's numbers, for comparison

Not reproduced here (other datasets, models and hardware); quoted from
Mazzawi et al. (2024) to show what MK is claimed to do.

| Experiment (paper) | BASELINE | MAJORITY KERNELS | ENSEMBLE (3x size) | DISTILLED |
| --- | --- | --- | --- | --- |
| CIFAR-10, MLP A1 [100], Adam (Table 5) | 51.79 ± 0.21 | 52.01 ± 0.10 | 52.27 ± 0.12 | 48.68 ± 0.86 |
| CIFAR-10, MLP A2 [200, 100], Adam | 52.99 ± 0.09 | 54.29 ± 0.20 | 54.36 ± 0.08 | 52.94 ± 0.26 |
| CIFAR-10, MLP A3 [400, 200, 100], Adam | 53.79 ± 0.18 | 55.04 ± 0.12 | 55.62 ± 0.15 | 55.26 ± 0.32 |
| ImageNet, ResNet-50 (Fig. 4.3; BASELINE-LONG) | 76.43 ± 0.08 | 77.20 ± 0.07 (ADV-MK 77.33 ± 0.11) | 78.56 ± 0.04 | 77.05 ± 0.08 |
| GLUE average, T5-small (Table 2) | 80.3 ± 0.12 | 80.9 ± 0.3 | - | - |

Training cost (Table 1): MK +16.67% CPU time on the fully connected nets,
+9.24% TPU time on ResNet-50, +0.85% on T5; an ensemble of 3 costs +300%.
"""  # noqa: E501


def build(source):
    with open(os.path.join(source, "results.json")) as f:
        data = json.load(f)
    sys.path.insert(0, ROOT)
    from examples.common import results
    from examples.common.comparison import table_columns

    img = os.path.join(HERE, "img")
    os.makedirs(img, exist_ok=True)
    env, options = data["environment"], data["options"]
    training = options["training"]
    load = env.get("load_average")
    sharing = (
        f"15-minute load average {load[2]} at the end of the run"
        if load
        else "load not recorded"
    )
    lines = [
        "# Results measured on this machine",
        "",
        "The main job (`python -m examples.main`, default flags) as run on "
        f"the development machine: **{env['cpu_count']} vCPUs** "
        f"({env['processor']}, {env['platform']}; {sharing}), Keras "
        f"{env['keras']}, **{env['backend']} backend**, "
        f"**{options['seeds']} seeds** (0-{options['seeds'] - 1}), "
        f"{training['epochs']} epochs, batch {training['batch_size']}, "
        f"{training['optimizer']} lr {training['learning_rate']}, e = "
        f"{training['expansion']}, ADV-MK epsilon "
        f"{training['adversarial_epsilon']}. Wall time "
        f"{data['wall_time_s'] / 60:.1f} min. Regenerate with "
        "`python -m examples.main && python docs/build_results.py`.",
        "",
        "Test accuracy: mean ± std over seeds. Train-test gap: inference-mode "
        "accuracy on the training labels (30% wrong on `digits-noisy`, so "
        "at most ~70% without memorising) minus test accuracy. Step time, "
        "params and latency (one image) are relative to BASELINE.",
        "",
        results.markdown_table(data["summary"], table_columns()),
        "",
    ]
    if data["exports"]:
        lines += [
            "Collapsed MK models saved and run in the LiteRT interpreter: "
            + ", ".join(
                f"`{os.path.basename(e['tflite'])}` (max |LiteRT - Keras| "
                f"{e['max_abs_diff_vs_keras']:.1e})"
                for e in data["exports"]
            )
            + ".",
            "",
        ]
    lines += ["## Plots", ""]
    for name in sorted(os.listdir(source)):
        if name.endswith(".png"):
            shutil.copy(os.path.join(source, name), os.path.join(img, name))
            lines += [f"![{name[:-4]}](img/{name})", ""]
    lines.append(PAPER)
    path = os.path.join(HERE, "results.md")
    # The reading of a run is written by hand below this marker: kept.
    kept = ""
    if os.path.exists(path):
        with open(path) as f:
            previous = f.read()
        if HAND_WRITTEN in previous:
            kept = previous[previous.index(HAND_WRITTEN) :]
    with open(path, "w") as f:
        f.write("\n".join(lines) + ("\n" + kept if kept else ""))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--source", default=os.path.join(ROOT, "outputs", "main")
    )
    build(parser.parse_args().source)
    print("wrote docs/results.md and docs/img/")

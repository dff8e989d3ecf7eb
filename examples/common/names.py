"""What every example script names the same way: algorithms and seeds.

No Keras import: a script reads these before it chooses its backend.
"""

BASELINE = "BASELINE"
BASELINE_LONG = "BASELINE-LONG"
MAJORITY = "MAJORITY KERNELS"
ADV_MAJORITY = "ADV-MK"
MAJORITY_UNIT = "MK (p per unit)"
MAJORITY_LAYER = "MK (p per layer)"
SUBSET = "SUBSET"
ENSEMBLE = "ENSEMBLE"
DISTILLED = "DISTILLED"
SOUPS = "SOUPS"
# Fine-tuning with adapters (`--finetune`): LoRA at rank r, e times the
# budget, at rank e x r (MK-LoRA's training memory), and MK on the adapters.
LORA = "LORA"
LORA_LONG = "LORA-LONG"
LORA_WIDE = "LORA (rank e x r)"
MK_LORA = "MK-LORA"
# Command-line flag -> algorithm name, for every script (`--algorithms`).
FLAG_NAMES = {
    "baseline": BASELINE,
    "baseline-long": BASELINE_LONG,
    "mk": MAJORITY,
    "adv-mk": ADV_MAJORITY,
    "subset": SUBSET,
    "ensemble": ENSEMBLE,
    "distilled": DISTILLED,
    "mk-unit": MAJORITY_UNIT,
    "mk-layer": MAJORITY_LAYER,
    "soups": SOUPS,
    "lora": LORA,
    "lora-long": LORA_LONG,
    "lora-wide": LORA_WIDE,
    "mk-lora": MK_LORA,
}
# A prime larger than any seed count: member `k` of seed `s` never shares
# its seed with another run.
_MEMBER_SEED_STRIDE = 7919


def flag_names(flags):
    """`{flag: name}` for the flags a script offers, in their order."""
    return {flag: FLAG_NAMES[flag] for flag in flags}


def member_seed(seed, k):
    """The seed of member `k` (an ensemble member, a soup ingredient, an
    independent copy) of the run with seed `seed`; member 0 is the run."""
    return seed + _MEMBER_SEED_STRIDE * k

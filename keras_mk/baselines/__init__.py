"""The systems the paper compares MK against (Section 4, Appendices E-G)."""

from keras_mk.baselines.ensemble import Ensemble
from keras_mk.baselines.ensemble import distillation_baseline
from keras_mk.baselines.schedules import baseline_schedule
from keras_mk.baselines.soups import greedy_soup
from keras_mk.baselines.soups import uniform_soup
from keras_mk.baselines.submodular import greedy_subset
from keras_mk.baselines.submodular import submodular_graph
from keras_mk.baselines.subset import SubsetDense
from keras_mk.baselines.subset import subset_to_dense

__all__ = [
    "Ensemble",
    "distillation_baseline",
    "baseline_schedule",
    "greedy_soup",
    "uniform_soup",
    "SubsetDense",
    "greedy_subset",
    "submodular_graph",
    "subset_to_dense",
]

"""The search space as data: SearchSpace, Arch, sampling, evolution operators, flat encoding."""

from inas.space.arch import (
    Arch,
    ArchError,
    LevelArch,
    StageArch,
    arch_from_dict,
    arch_from_json,
    arch_from_original,
    load_arch,
    validate_arch,
)
from inas.space.encoding import ArchEncoding
from inas.space.operators import MutationRates, crossover, mutate
from inas.space.sampling import sample, sample_max, sample_min, sample_uniform
from inas.space.space import (
    LEVEL_NAMES,
    LEVEL_STAGES,
    NUM_LEVELS,
    STAGE_NAMES,
    LevelSpace,
    SearchSpace,
    StageSpace,
    inas_space,
)

__all__ = [
    "Arch", "ArchError", "ArchEncoding", "LEVEL_NAMES", "LEVEL_STAGES", "LevelArch", "LevelSpace", "MutationRates",
    "NUM_LEVELS", "STAGE_NAMES", "SearchSpace", "StageArch", "StageSpace", "arch_from_dict", "arch_from_json",
    "arch_from_original", "crossover", "inas_space", "load_arch", "mutate", "sample", "sample_max", "sample_min",
    "sample_uniform", "validate_arch",
]

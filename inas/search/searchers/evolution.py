"""The original iNAS evolutionary search (docs/design.md §9.2-9.3) as a `Searcher`.

- Generation 0: `population_size` archs from the latency-group sampler (LGS), `population_size // lgs_groups` per
  group (the remainder to the first groups), interleaved over groups (so a budget cut still covers every group).
  Drawn lazily, one per `ask()`.
- Generation k >= 1 (after every arch of generation k-1 has been told): `selection_num` parents chosen from the
  whole accumulated population by `select_pareto_frontier` (latency groups over the sampler's grid), then one child
  per parent (`offspring_num`, default `selection_num`; parents are cycled if fewer were found): a random other
  parent as partner, `crossover(prob=crossover_prob)` then `mutate` with `mutation_prob` for kernels, widths,
  connections and level kernels and `depth_mutation_prob` (default 0, as the original) for depth. All children of a
  generation are built at once, so `ask()` hands them out without waiting and they can be evaluated in parallel.
- The population only grows (as the original). The search ends after `generations` generations (generation 0
  included; None = until the budget is spent) or when `budget` archs have been asked.

Added over the original: no arch is asked twice (a duplicate child is redrawn, at most `max_child_tries` times, then
the slot is dropped and counted in `stats["dropped_children"]`); children violating the constraints are redrawn the
same way; LGS draws are bounded (see lgs.py); a generation with no valid parent (every evaluation failed) is refilled
from the LGS (`stats["lgs_refills"]`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any

from pydantic import Field, Strict, model_validator

from inas.errors import BadInputError, excerpt
from inas.search.searchers.base import LatencyFn, Searcher
from inas.search.searchers.lgs import LatencyGroupSampler, PartLatencyFn
from inas.search.searchers.selection import select_pareto_frontier
from inas.search.searchers.state_types import ArchDoc, Generation, check_below, state_arch
from inas.space import Arch, MutationRates, SearchSpace, crossover, mutate
from inas.validation_problems import Count, DocumentModel, Flag, expecting, member_key, parse_document

TagGroup = Annotated[int, Strict(), Field(ge=-1), expecting("a latency group, or -1 for a child")]
Tag = Annotated[tuple[Count, TagGroup], expecting("[generation, latency group]")]


class QueueItemState(DocumentModel):
    """A slot of the current generation not yet asked: a child (`arch`) or a draw in latency group `group`."""

    arch: ArchDoc | None = None
    group: Count | None = None

    @model_validator(mode="after")
    def _one_kind(self) -> QueueItemState:
        if len(self.model_fields_set) != 1 or (self.arch is None and self.group is None):
            raise ValueError('expected exactly one of "arch" (a child) and "group" (a latency-group slot)')
        return self


class EvolutionState(DocumentModel):
    """`EvolutionSearcher`'s own state (`extra`); `tags`: arch id -> [generation, latency group or -1]."""

    generation: Generation
    done: Flag
    queue: list[QueueItemState]
    tags: dict[str, Tag]
    lgs_stats: dict[str, Count]


class EvolutionSearcher(Searcher):
    """Evolution with latency-group initialisation (see module docstring)."""

    name = "evolution"
    size_params = ("population_size", "selection_num")

    def __init__(self, space: SearchSpace, latency_fn: LatencyFn, budget: int, seed: int = 0, *,
                 population_size: int = 1000, selection_num: int = 100, offspring_num: int | None = None,
                 generations: int | None = None, crossover_prob: float = 0.2, mutation_prob: float = 0.2,
                 depth_mutation_prob: float = 0.0, lgs_groups: int = 10, part_latency_fn: PartLatencyFn | None = None,
                 lgs_tries_per_group: int = 20, max_child_tries: int = 50, **kwargs: Any) -> None:
        super().__init__(space, latency_fn, budget, seed, **kwargs)
        for key, value in (("population_size", population_size), ("selection_num", selection_num),
                           ("lgs_groups", lgs_groups), ("lgs_tries_per_group", lgs_tries_per_group),
                           ("max_child_tries", max_child_tries)):
            if not isinstance(value, int) or value < 1:
                raise BadInputError(f"must be a positive integer, got {value!r}", key=key)
        for key, prob in (("crossover_prob", crossover_prob), ("mutation_prob", mutation_prob),
                          ("depth_mutation_prob", depth_mutation_prob)):
            if not 0.0 <= float(prob) <= 1.0:
                raise BadInputError(f"must be a probability in [0, 1], got {prob!r}", key=key)
        for key, optional in (("offspring_num", offspring_num), ("generations", generations)):
            if optional is not None and (not isinstance(optional, int) or isinstance(optional, bool) or optional < 1):
                what = " (generation 0 is the LGS population)" if key == "generations" else ""
                raise BadInputError(f"must be a positive integer{what}, got {excerpt(optional)}", key=key)
        self.population_size = population_size
        self.selection_num = selection_num
        self.offspring_num = selection_num if offspring_num is None else offspring_num
        self.generations = generations
        self.crossover_prob = float(crossover_prob)
        self.rates = MutationRates(kernel=mutation_prob, width=mutation_prob, connection=mutation_prob,
                                   level_kernel=mutation_prob, depth=depth_mutation_prob)
        self.lgs_tries_per_group = lgs_tries_per_group
        self.max_child_tries = max_child_tries
        self.sampler = LatencyGroupSampler(space, latency_fn, lgs_groups, part_latency_fn=part_latency_fn,
                                           max_latency_ms=self.max_latency_ms)
        self.generation = -1  # index of the current generation (-1 before the first ask)
        self._queue: list[dict[str, Any]] = []  # {"group": g} (LGS slot) or {"arch": Arch} (child), not yet asked
        self._tags: dict[str, tuple[int, int]] = {}  # arch_id -> (generation, LGS group or -1)
        self._done = False

    # ----- generations -----------------------------------------------------------------------------------------
    def _next(self) -> Arch | None:
        while True:
            if self._queue:
                item = self._queue.pop(0)
                if "arch" in item:
                    arch = item["arch"]
                    self._tags[arch.arch_id] = (self.generation, -1)
                    return arch
                arch = self._draw_lgs(item["group"])
                if arch is not None:
                    return arch
                continue
            if self._in_flight:
                return None  # the next generation starts when the current one is fully told
            if self.generations is not None and self.generation + 1 >= self.generations:
                self._done = True
                return None
            self._build_generation()
            if not self._queue:
                self._count("empty_generations")
                if self.stats["empty_generations"] >= 3:
                    self._done = True
                    return None

    def _lgs_slots(self, n: int) -> list[dict[str, Any]]:
        groups = self.sampler.groups
        return [{"group": i % groups} for i in range(n)]

    def _draw_lgs(self, group: int) -> Arch | None:
        pending = {item["arch"].arch_id for item in self._queue if "arch" in item}

        def reject(arch: Arch) -> str | None:
            if self.is_known(arch) or arch.arch_id in pending:
                return "duplicate"
            if not self.is_feasible(arch):
                return "infeasible"
            return None

        arch, used, reasons = self.sampler.sample_accepted(group, self._rng, reject, self.lgs_tries_per_group)
        for reason, n in reasons.items():
            self._count(f"lgs_rejected_{reason}", n)
        if arch is None:
            if reasons.get("infeasible", 0) and not reasons.get("duplicate", 0):
                raise self._infeasible_error("LGS, every latency group", sum(reasons.values()))
            self._count("lgs_slots_dropped")
            return None
        self._tags[arch.arch_id] = (self.generation, used)
        return arch

    def _build_generation(self) -> None:
        self.generation += 1
        if self.generation == 0:
            self._queue = self._lgs_slots(self.population_size)
            return
        candidates = [r for r in self._records.values() if r.metric is not None]
        if not candidates:
            self._count("lgs_refills")
            self._queue = self._lgs_slots(self.offspring_num)
            return
        parents_idx = select_pareto_frontier(
            [r.latency_ms for r in candidates], [self.known_score(r) for r in candidates], self.selection_num,
            self.sampler.groups, self.sampler.min_latency_ms, self.sampler.max_latency_ms)
        parents = [candidates[i].arch for i in parents_idx]
        children: dict[str, Arch] = {}
        for slot in range(self.offspring_num):
            parent = parents[slot % len(parents)]
            others = [p for p in parents if p != parent]
            for _ in range(self.max_child_tries):
                partner = self._rng.choice(others) if others else parent
                child = crossover(parent, partner, self._rng, prob=self.crossover_prob)
                child = mutate(child, self.space, self._rng, self.rates)
                if self.is_known(child) or child.arch_id in children:
                    self._count("duplicate_children")
                    continue
                if not self.is_feasible(child):
                    self._count("infeasible_children")
                    continue
                children[child.arch_id] = child
                break
            else:
                self._count("dropped_children")
        self._queue = [{"arch": a} for a in children.values()]

    def _exhausted(self) -> bool:
        last = self.generations is not None and self.generation + 1 >= self.generations
        return self._done or (last and not self._queue)

    def tags(self, arch: Arch) -> dict[str, Any]:
        generation, group = self._tags.get(arch.arch_id, (-1, -1))
        return {"generation": generation, "lgs_group": group}

    # ----- state -----------------------------------------------------------------------------------------------
    def _extra_state(self) -> dict[str, Any]:
        return {
            "generation": self.generation,
            "done": self._done,
            "queue": [{"arch": item["arch"].to_dict()} if "arch" in item else {"group": item["group"]}
                      for item in self._queue],
            "tags": {k: list(v) for k, v in self._tags.items()},
            "lgs_stats": dict(self.sampler.stats),
        }

    def _load_extra_state(self, state: Mapping[str, Any]) -> None:
        doc = parse_document(EvolutionState, state, key="extra")
        self.generation = doc.generation
        self._done = doc.done
        self._queue = [self._queue_item(item, f"extra.queue[{i}]") for i, item in enumerate(doc.queue)]
        for arch_id, (_, group) in doc.tags.items():
            check_below(group, self.sampler.groups, f"{member_key('extra.tags', arch_id)}[1]", "latency groups")
        self._tags = dict(doc.tags)
        self.sampler.stats.update(doc.lgs_stats)

    def _queue_item(self, item: QueueItemState, key: str) -> dict[str, Any]:
        """A checked queue slot as `_queue` holds it."""
        if item.arch is not None:
            return {"arch": state_arch(item.arch, self.space, f"{key}.arch")}
        assert item.group is not None  # one of the two (QueueItemState)
        check_below(item.group, self.sampler.groups, f"{key}.group", "latency groups")
        return {"group": item.group}

"""Predictor-guided search (`kind: predictor`): an accuracy predictor fitted on the evaluations so far chooses which
few of thousands of cheap candidates are worth evaluating on the supernet.

- Initial design: `initial_size` archs from the latency-group sampler (LGS, `lgs_groups` groups, interleaved, as
  evolution's generation 0), minus the successful warm-start evaluations (`warm_start`; none needed when there are
  enough).
- Then rounds. Each round (once every arch of the previous one is told): fit `AccuracyPredictor` (model, features)
  on every successful evaluation (own and warm start); propose `candidates` new feasible archs: mutations
  (`mutation_prob` per element, `depth_mutation_prob` per stage) of the current front's archs, crossovers
  (`crossover_prob` per stage/level) of two front archs, and `lgs_candidates` LGS draws over the groups (they reach
  the ends of the latency range; each costs ~100 latency look-ups, so they are few). Mutations are small by default
  (0.05 per element: 1.4 of the demo space's 39 encoded choices change on average, 5.0 at 0.2): the predictor
  extrapolates little from the front, and its own samples stay close enough together to teach it (demo league, 5
  seeds, against 0.2: evolution's N-D hypervolume at 96 reached after 20.6 evaluations instead of 25.0, the
  predictor's tau on held-out archs 0.73 instead of 0.66). Score
  each by the expected hypervolume improvement (`inas.search.acquisition`) of (metric ~ N(predicted mean, std),
  LUT latency on every device of `device_latency_fns`, else the primary latency) over the evaluated front; queue the
  best `batch_size` (greedy, kriging believer). Reference point: the largest arch's latency per device (or the
  largest observed) and the lowest observed metric.
- Parallelism: a round's archs are handed out at once, the next round waits for all of them; keep `batch_size` >=
  `concurrent_trials` x `search.archs_per_trial` so that no trial slot idles.
- Rows get the tags `generation` (the round, 0 = initial design), `predicted_mean` and `predicted_std` (the
  prediction the arch was chosen on; NaN in the initial design).

Resume: the state holds the round, the queued archs with their predictions and the tags; the predictor is refitted
from the told evaluations (seeded by round), so nothing is pickled and a resumed run continues exactly.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Annotated, Any, cast

import numpy as np

from inas.errors import BadInputError
from inas.search.acquisition import non_dominated, select_batch
from inas.search.searchers.base import LatencyFn, Record, Searcher
from inas.search.searchers.lgs import LatencyGroupSampler, PartLatencyFn
from inas.search.searchers.state_types import ArchDoc, Generation, state_arch
from inas.search.surrogate import DEFAULT_FEATURES, DEFAULT_MODEL, AccuracyPredictor
from inas.space import Arch, MutationRates, SearchSpace, crossover, mutate, sample_max, sample_uniform
from inas.validation_problems import Count, DocumentModel, Flag, Number, Text, expecting, parse_document

Tag = Annotated[tuple[Count, Number | None, Number | None],
                expecting("[round, predicted mean or null, predicted std or null]")]


class QueuedArchState(DocumentModel):
    """An arch of the current round not yet asked, with its prediction (null in the initial design)."""

    arch: ArchDoc
    mean: Number | None
    std: Number | None


class PredictorState(DocumentModel):
    """`PredictorSearcher`'s own state (`extra`); `tags`: arch id -> [round, predicted mean, predicted std]."""

    round: Generation
    done: Flag
    queue: list[QueuedArchState]
    tags: dict[str, Tag]
    objectives: list[Text]


class PredictorSearcher(Searcher):
    """Accuracy-predictor + EHVI search (see the module docstring)."""

    name = "predictor"
    size_params = ("initial_size",)

    def __init__(self, space: SearchSpace, latency_fn: LatencyFn, budget: int, seed: int = 0, *,
                 initial_size: int = 8, batch_size: int = 4, candidates: int = 2000, model: str = DEFAULT_MODEL,
                 features: str = DEFAULT_FEATURES, n_estimators: int = 100, lgs_groups: int = 4,
                 mutation_prob: float = 0.05, depth_mutation_prob: float = 0.1, crossover_prob: float = 0.5,
                 lgs_candidates: int = 32, part_latency_fn: PartLatencyFn | None = None,
                 lgs_tries_per_group: int = 20, **kwargs: Any) -> None:
        super().__init__(space, latency_fn, budget, seed, **kwargs)
        for key, value in (("initial_size", initial_size), ("batch_size", batch_size), ("candidates", candidates),
                           ("lgs_groups", lgs_groups), ("lgs_tries_per_group", lgs_tries_per_group)):
            if not isinstance(value, int) or value < 1:
                raise BadInputError(f"must be a positive integer, got {value!r}", key=key)
        if not isinstance(lgs_candidates, int) or lgs_candidates < 0:
            raise BadInputError(f"must be an integer >= 0, got {lgs_candidates!r}", key="lgs_candidates")
        for key, prob in (("mutation_prob", mutation_prob), ("depth_mutation_prob", depth_mutation_prob),
                          ("crossover_prob", crossover_prob)):
            if not 0.0 <= float(prob) <= 1.0:
                raise BadInputError(f"must be a probability in [0, 1], got {prob!r}", key=key)
        self.initial_size = initial_size
        self.batch_size = batch_size
        self.candidates = candidates
        self.lgs_candidates = min(lgs_candidates, candidates)
        self.crossover_prob = float(crossover_prob)
        self.lgs_tries_per_group = lgs_tries_per_group
        self.rates = MutationRates(kernel=mutation_prob, width=mutation_prob, connection=mutation_prob,
                                   level_kernel=mutation_prob, depth=depth_mutation_prob)
        self.predictor = AccuracyPredictor(space, model=model, features=features, n_estimators=n_estimators,
                                           seed=seed)
        self.sampler = LatencyGroupSampler(space, latency_fn, lgs_groups, part_latency_fn=part_latency_fn,
                                           max_latency_ms=self.max_latency_ms)
        self.objective_fns: dict[str, LatencyFn] = dict(self.device_latency_fns) or {"primary": self.latency_ms}
        largest = sample_max(space)
        self._largest_ms = np.array([float(fn(largest)) for fn in self.objective_fns.values()])
        self.round = -1  # -1 before the initial design, 0 = initial design, k >= 1 = predictor rounds
        self._queue: list[tuple[Arch, float, float]] = []  # (arch, predicted mean, predicted std), not yet asked
        self._tags: dict[str, tuple[int, float, float]] = {}
        self._done = False

    # ----- data --------------------------------------------------------------------------------------------------
    def _training(self) -> list[Record]:
        return [r for r in (*self._prior.values(), *self._records.values()) if r.metric is not None]

    def objective_latencies(self, record: Record) -> list[float]:
        if record.device_ms is not None and set(self.objective_fns) <= set(record.device_ms):
            return [record.device_ms[d] for d in self.objective_fns]
        if list(self.objective_fns) == ["primary"]:
            return [record.latency_ms]
        return [float(fn(record.arch)) for fn in self.objective_fns.values()]

    # ----- asking ------------------------------------------------------------------------------------------------
    def _next(self) -> Arch | None:
        while not self._queue:
            if self._in_flight or self._done:
                return None  # the next round starts when the current one is fully told
            self.round += 1
            self._queue = self._initial_design() if self.round == 0 else self._predictor_round()
            if not self._queue and self.round > 0:
                self._queue = self._uniform_fallback()
                if not self._queue:
                    self._done = True
                    return None
        arch, mean, std = self._queue.pop(0)
        self._tags[arch.arch_id] = (self.round, mean, std)
        return arch

    def _reject(self, pending: set[str]) -> Callable[[Arch], str | None]:
        """Rejection reason of a draw for LGS: asked, told, warm start or in `pending`; infeasible."""

        def reject(arch: Arch) -> str | None:
            if self.is_known(arch) or arch.arch_id in self._prior or arch.arch_id in pending:
                return "duplicate"
            return None if self.is_feasible(arch) else "infeasible"

        return reject

    def _initial_design(self) -> list[tuple[Arch, float, float]]:
        need = max(0, self.initial_size - len(self._training()))
        queue: list[tuple[Arch, float, float]] = []
        pending: set[str] = set()
        for slot in range(need):
            arch, _, reasons = self.sampler.sample_accepted(slot % self.sampler.groups, self._rng,
                                                            self._reject(pending), self.lgs_tries_per_group)
            if arch is None:
                if reasons.get("infeasible", 0) and not reasons.get("duplicate", 0) and not queue:
                    raise self._infeasible_error("LGS, every latency group", sum(reasons.values()))
                self._count("lgs_slots_dropped")
                continue
            pending.add(arch.arch_id)
            queue.append((arch, float("nan"), float("nan")))
        return queue

    def _propose(self, parents: list[Arch]) -> list[Arch]:
        """Up to `candidates` new feasible archs: LGS draws, crossovers and mutations of `parents`."""
        out: dict[str, Arch] = {}
        reject = self._reject(set())
        n_lgs = self.lgs_candidates
        for i in range(n_lgs):
            arch, _, _ = self.sampler.sample_accepted(i % self.sampler.groups, self._rng, reject, 2, max_groups=1)
            if arch is not None:
                out.setdefault(arch.arch_id, arch)
        for _ in range(4 * (self.candidates - n_lgs)):
            if len(out) >= self.candidates:
                break
            parent = self._rng.choice(parents)
            if len(parents) > 1 and self._rng.random() < 0.3:
                parent = crossover(parent, self._rng.choice(parents), self._rng, prob=self.crossover_prob)
            child = mutate(parent, self.space, self._rng, self.rates)
            if child.arch_id not in out and reject(child) is None:
                out[child.arch_id] = child
        return list(out.values())

    def _predictor_round(self) -> list[tuple[Arch, float, float]]:
        training = self._training()
        if len(training) < 2:
            self._count("rounds_without_data")
            return []
        self.predictor.seed = self.seed + self.round
        self.predictor.fit([r.arch for r in training], [cast(float, self.score(r)) for r in training])  # all told
        latency = np.array([self.objective_latencies(r) for r in training])
        score = np.array([self.score(r) for r in training])
        front = non_dominated(latency, score)
        candidates = self._propose([r.arch for r, keep in zip(training, front, strict=True) if keep])
        if not candidates:
            return []
        mean, std = self.predictor.predict(candidates)
        cand_latency = np.array([[float(fn(a)) for fn in self.objective_fns.values()] for a in candidates])
        ref_latency = np.maximum(self._largest_ms, latency.max(axis=0)) * 1.01
        ref_score = float(score.min())
        chosen, _ = select_batch(latency[front], score[front], cand_latency, mean, std, ref_latency, ref_score,
                                 self.batch_size)
        self._count("candidates_scored", len(candidates))
        return [(candidates[i], float(mean[i]), float(std[i])) for i in chosen]

    def _uniform_fallback(self) -> list[tuple[Arch, float, float]]:
        """One uniform draw when no candidate promises an improvement (None: the space looks exhausted)."""
        reject = self._reject(set())
        for _ in range(self.max_tries):
            arch = sample_uniform(self.space, self._rng)
            if reject(arch) is None:
                self._count("uniform_fallbacks")
                return [(arch, float("nan"), float("nan"))]
        return []

    def _exhausted(self) -> bool:
        return self._done

    def tags(self, arch: Arch) -> dict[str, Any]:
        generation, mean, std = self._tags.get(arch.arch_id, (-1, float("nan"), float("nan")))
        return {"generation": generation, "predicted_mean": mean, "predicted_std": std}

    # ----- state -------------------------------------------------------------------------------------------------
    def _extra_state(self) -> dict[str, Any]:
        def num(v: float) -> float | None:
            return None if np.isnan(v) else v

        return {"round": self.round, "done": self._done,
                "queue": [{"arch": a.to_dict(), "mean": num(m), "std": num(s)} for a, m, s in self._queue],
                "tags": {k: [g, num(m), num(s)] for k, (g, m, s) in self._tags.items()},
                "objectives": list(self.objective_fns)}

    def _load_extra_state(self, state: Mapping[str, Any]) -> None:
        doc = parse_document(PredictorState, state, key="extra")
        if doc.objectives != list(self.objective_fns):
            raise BadInputError(f"searcher state was written for latency objectives {doc.objectives}; this "
                                f"searcher has {list(self.objective_fns)}", key="devices")

        def num(v: float | None) -> float:
            return float("nan") if v is None else v

        self.round = doc.round
        self._done = doc.done
        self._queue = [(state_arch(q.arch, self.space, f"extra.queue[{i}].arch"), num(q.mean), num(q.std))
                       for i, q in enumerate(doc.queue)]
        self._tags = {k: (g, num(m), num(s)) for k, (g, m, s) in doc.tags.items()}

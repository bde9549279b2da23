"""Nevergrad optimisers as a `Searcher`: any optimiser of `nevergrad.optimizers.registry` by name (NGOpt default;
DE, CMA, PortfolioDiscreteOnePlusOne, TwoPointsDE, ...).

Reaching the whole front: one optimiser instance per latency budget. `num_budgets` budgets b_1 < ... < b_K are
spread evenly over the LUT latency range of the space (b_k = min + k/K · (max - min), where min/max are the latencies
of the smallest/largest arch, max clipped by `max_latency_ms`), or given as `budgets_ms`. Instance k minimises

    loss = -metric                                          (metric within budget; +metric for mode "min")
    loss = penalty_offset + penalty · (latency / b_k - 1)     (latency > b_k: known from latency_fn, NOT evaluated)
    loss = penalty_offset + penalty                           (violates a constraint: NOT evaluated)
    loss = penalty_offset                                     (failed evaluation)

so each instance climbs to the best arch under its budget and together they trace the front. `penalty_offset`
(default 1) must exceed every feasible loss, i.e. the metric must lie in [0, 1] (max F-measure, mIoU, MAE are).
`ask()` interleaves the instances round robin; each instance has at most `num_workers` asks outstanding (some
nevergrad optimisers block in `ask` beyond that), so up to K·num_workers evaluations can run in parallel.

Parametrisation: one integer per dimension of `ArchEncoding` (`ng.p.Array` with integer casting, bounds
[-0.5, n-0.5], decoded with `decode_repair`): a single array parameter keeps ask/tell fast (a `ng.p.Tuple` of 73
`TransitionChoice`s costs ~0.3 s per ask) and lets NGOpt see a discrete problem (it picks a discrete (1+1) GA).
Each instance starts from an arch drawn by the latency-group sampler in its budget's group (`warm_start`). The
first two asks are the space's smallest and largest archs, told to the lowest and the highest budget's instance as
candidates they did not ask, so the front reaches both ends of the latency range.

Duplicates: a proposal that decodes to an already evaluated arch is told its loss at once (no evaluation); one that
decodes to an arch being evaluated waits for that result. After `max_tries_per_ask` proposals without a new arch the
instance gets an LGS draw under its budget instead (told to it as a not-asked candidate), `stats["lgs_fallbacks"]`.

Resume: nevergrad optimisers cannot be written as JSON. The state stores, per instance, its seed, start point and
the log of its asks and tells (with losses); `load_state_dict` rebuilds the optimisers and replays the log. Optimisers
are deterministic given their seed and the same ask/tell sequence, so the replay reproduces the exact state (each
replayed ask is checked against the logged arch id). If a replay diverges, that instance is rebuilt from the told
evaluations as not-asked candidates instead (`stats["replay_mismatches"]`): it continues, without re-asking told
archs, but not bit-for-bit.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Mapping, Sequence
from typing import Annotated, Any, Literal

import numpy as np
from pydantic import Tag

from inas.errors import BadInputError, excerpt
from inas.search.searchers.base import LatencyFn, Record, Searcher
from inas.search.searchers.lgs import LatencyGroupSampler, PartLatencyFn
from inas.search.searchers.state_types import AskEvent, Seed, by_first_item, check_below, check_encoded, check_state
from inas.space import Arch, ArchEncoding, SearchSpace, sample_min
from inas.validation_problems import Count, DocumentModel, Flag, Number, Text, expecting, member_key, parse_document

# an optimiser's log: it asked (AskEvent), was told its ask's loss, was told a candidate it did not ask
TellEvent = Annotated[tuple[Literal["t"], Count, Number], expecting('["t", ask number, loss]'), Tag("t")]
TellNewEvent = Annotated[tuple[Literal["n"], list[Count], Number], expecting('["n", encoded architecture, loss]'),
                         Tag("n")]
Event = Annotated[AskEvent | TellEvent | TellNewEvent,
                  by_first_item('["a", arch id], ["t", ask number, loss] or ["n", encoded architecture, loss]')]
WaitingEntry = Annotated[tuple[Count, Count | None], expecting("[optimiser, ask number or null]")]


class InstanceState(DocumentModel):
    """One optimiser: the seed and start point it was built with and its log (replayed on resume)."""

    seed: Seed
    init: list[Count]
    events: list[Event]


class NevergradState(DocumentModel):
    """`NevergradSearcher`'s own state (`extra`): one instance per latency budget; `waiting`: arch id -> the
    optimisers (and their asks) waiting for its result; `origin`: arch id -> the optimiser that first asked it."""

    optimizer: Text
    budgets_ms: list[Number]
    instances: list[InstanceState]
    waiting: dict[str, list[WaitingEntry]]
    origin: dict[str, Count]
    cursor: Count
    done: Flag


def optimizer_class(name: str) -> Any:
    """The nevergrad optimiser class registered under `name`; BadInputError with close matches otherwise."""
    import nevergrad as ng

    registry = ng.optimizers.registry
    if name not in registry:
        close = difflib.get_close_matches(name, list(registry), n=5)
        hint = f"; did you mean {close}?" if close else "; see nevergrad.optimizers.registry"
        raise BadInputError(f"unknown nevergrad optimizer {name!r}{hint}", key="optimizer")
    return registry[name]


class _Instance:
    """One nevergrad optimiser with its latency budget and its ask/tell log."""

    def __init__(self, index: int, budget_ms: float, seed: int, init: Sequence[int], optimizer: Any,
                 sizes: np.ndarray, ng_budget: int, num_workers: int) -> None:
        import nevergrad as ng

        self.index = index
        self.budget_ms = budget_ms
        self.seed = seed
        self.init = [int(v) for v in init]
        param = ng.p.Array(init=np.asarray(self.init, dtype=float), lower=np.full(len(sizes), -0.499),
                           upper=sizes - 0.501).set_integer_casting()
        param.random_state = np.random.RandomState(seed)
        self.param = param
        self.opt = optimizer(parametrization=param, budget=ng_budget, num_workers=num_workers)
        self.candidates: dict[int, Any] = {}  # ref -> asked candidate not yet told
        self.num_asked = 0
        self.outstanding = 0  # waiting entries (asked or fallback) whose result has not come yet
        self.events: list[list] = []  # ["a", arch_id] | ["t", ref, loss] | ["n", indices, loss]

    def ask(self) -> tuple[int, Any]:
        cand = self.opt.ask()
        ref = self.num_asked
        self.num_asked += 1
        self.candidates[ref] = cand
        return ref, cand

    def tell(self, ref: int, loss: float) -> None:
        self.opt.tell(self.candidates.pop(ref), float(loss))
        self.events.append(["t", ref, float(loss)])

    def tell_new(self, indices: Sequence[int], loss: float) -> None:
        cand = self.param.spawn_child(new_value=np.asarray(indices, dtype=float))
        self.opt.tell(cand, float(loss))
        self.events.append(["n", [int(i) for i in indices], float(loss)])


class NevergradSearcher(Searcher):
    """Nevergrad optimisers, one per latency budget (see module docstring)."""

    name = "nevergrad"

    def __init__(self, space: SearchSpace, latency_fn: LatencyFn, budget: int, seed: int = 0, *,
                 optimizer: str = "NGOpt", num_budgets: int = 10, budgets_ms: Sequence[float] | None = None,
                 num_workers: int = 1, penalty: float = 1.0, penalty_offset: float = 1.0, warm_start: bool = True,
                 max_tries_per_ask: int = 100, part_latency_fn: PartLatencyFn | None = None,
                 **kwargs: Any) -> None:
        super().__init__(space, latency_fn, budget, seed, **kwargs)
        self.optimizer_name = optimizer
        self._optimizer = optimizer_class(optimizer)
        self.encoding = ArchEncoding(space)
        if len(self.encoding) == 0:
            raise BadInputError("the space holds a single architecture; there is nothing to optimise", key="space")
        self._sizes = np.asarray(self.encoding.sizes, dtype=float)
        for key, value in (("num_budgets", num_budgets), ("num_workers", num_workers),
                           ("max_tries_per_ask", max_tries_per_ask)):
            if not isinstance(value, int) or value < 1:
                raise BadInputError(f"must be a positive integer, got {value!r}", key=key)
        if budgets_ms is not None and (
                isinstance(budgets_ms, str | bytes) or not isinstance(budgets_ms, Sequence) or not budgets_ms
                or not all(isinstance(b, int | float) and not isinstance(b, bool) and math.isfinite(b)
                           for b in budgets_ms)):
            raise BadInputError(f"must be a non-empty list of latencies in ms, got {excerpt(budgets_ms)}",
                                key="budgets_ms")
        self.num_workers = num_workers
        self.penalty = float(penalty)
        self.penalty_offset = float(penalty_offset)
        self.max_tries_per_ask = max_tries_per_ask
        groups = num_budgets if budgets_ms is None else len(budgets_ms)
        self.sampler = LatencyGroupSampler(space, latency_fn, groups, part_latency_fn=part_latency_fn,
                                           max_latency_ms=self.max_latency_ms)
        self.budgets_ms = self._latency_budgets(budgets_ms, num_budgets)
        lo, hi = self.sampler.min_latency_ms, self.sampler.max_latency_ms
        width = (hi - lo) / groups
        self._groups = [min(groups - 1, max(0, math.ceil((b - lo) / width) - 1)) if width > 0 else 0
                        for b in self.budgets_ms]
        ng_budget = max(1, math.ceil(budget / len(self.budgets_ms)))
        self._instance_args = dict(optimizer=self._optimizer, sizes=self._sizes, ng_budget=ng_budget,
                                   num_workers=num_workers)
        self._instances: list[_Instance] = []
        for k, b in enumerate(self.budgets_ms):
            init = self._warm_start(k, b) if warm_start else [int(v) for v in (self._sizes - 1) // 2]
            self._instances.append(_Instance(k, b, self._rng.randrange(2**31), init, **self._instance_args))
        self._waiting: dict[str, list[list]] = {}  # arch_id -> [[instance, ref or None], ...]
        self._origin: dict[str, int] = {}  # arch_id -> instance that first asked it
        self._cursor = 0
        self._done = False

    def _latency_budgets(self, budgets_ms: Sequence[float] | None, num_budgets: int) -> list[float]:
        """The given budgets, sorted and checked, else `num_budgets` evenly spaced up to the slowest arch."""
        lo, hi = self.sampler.min_latency_ms, self.sampler.max_latency_ms
        if budgets_ms is None:
            return [lo + (k + 1) / num_budgets * (hi - lo) for k in range(num_budgets)]
        budgets = sorted(float(b) for b in budgets_ms)
        if not budgets or budgets[0] < lo:
            raise BadInputError(f"every budget must be >= the smallest arch's latency {lo:.4g} ms, got {budgets}",
                                key="budgets_ms")
        return budgets

    def _warm_start(self, k: int, budget_ms: float) -> list[int]:
        arch = self.sampler.sample(self._groups[k], self._rng)
        if self.latency_ms(arch) > budget_ms:
            arch = sample_min(self.space)
        return self.encoding.encode(arch)

    def _next_end(self) -> Arch | None:
        """The space's smallest arch for the lowest budget's optimiser, then its largest for the highest budget's
        (each once, when within that budget and the constraints), told to that optimiser as a candidate it did not
        ask. Without them the climbers, which start inside the range, left NGOpt's front short of both ends (80 %
        of the range in the demo league); starting the climbers at the ends instead cost hypervolume."""
        last = len(self._instances) - 1
        for k, group in ((0, 0), (last, self.sampler.groups - 1)):
            end = self.sampler.end_of(group)
            if end is None or self.is_known(end) or self.latency_ms(end) > self.budgets_ms[k] \
                    or not self.is_feasible(end):
                continue
            self._waiting.setdefault(end.arch_id, []).append([k, None])
            self._instances[k].outstanding += 1
            self._origin.setdefault(end.arch_id, k)
            self._count("ends_asked")
            return end
        return None

    # ----- asking ----------------------------------------------------------------------------------------------
    def _next(self) -> Arch | None:
        end = self._next_end()
        if end is not None:
            return end
        for _ in range(len(self._instances)):
            inst = self._instances[self._cursor]
            self._cursor = (self._cursor + 1) % len(self._instances)
            arch = self._ask_instance(inst)
            if arch is not None:
                self._origin.setdefault(arch.arch_id, inst.index)
                return arch
        if not self._in_flight:  # no instance can propose a new arch and no result will come
            if self._asked == 0 and not self._records:
                raise self._infeasible_error("nevergrad proposals and latency-group draws of every budget",
                                             len(self._instances) * self.max_tries_per_ask)
            self._count("stalled")
            self._done = True
        return None

    def _rejection_loss(self, inst: _Instance, arch: Arch) -> float | None:
        """Loss told at once without evaluation, or None when the arch must be evaluated."""
        record = self._records.get(arch.arch_id)
        if record is not None:
            self._count("told_from_history")
            return self._loss(inst, record)
        latency = self.latency_ms(arch)
        if latency > inst.budget_ms:
            self._count("rejected_over_budget")
            return self.penalty_offset + self.penalty * (latency / inst.budget_ms - 1.0)
        if not self.is_feasible(arch):
            self._count("rejected_infeasible")
            return self.penalty_offset + self.penalty
        return None

    def _ask_instance(self, inst: _Instance) -> Arch | None:
        for _ in range(self.max_tries_per_ask):
            if inst.outstanding >= self.num_workers:
                return None
            ref, cand = inst.ask()
            arch = self.encoding.decode_repair(cand.value)
            inst.events.append(["a", arch.arch_id])
            loss = self._rejection_loss(inst, arch)
            if loss is not None:
                inst.tell(ref, loss)
                continue
            self._waiting.setdefault(arch.arch_id, []).append([inst.index, ref])
            inst.outstanding += 1
            if arch.arch_id in self._in_flight:
                self._count("joined_in_flight")
                continue
            return arch
        return self._fallback(inst)

    def _fallback(self, inst: _Instance) -> Arch | None:
        if inst.outstanding >= self.num_workers:
            return None

        def reject(arch: Arch) -> str | None:
            if self.is_known(arch):
                return "duplicate"
            if self.latency_ms(arch) > inst.budget_ms or not self.is_feasible(arch):
                return "infeasible"
            return None

        arch, _, _ = self.sampler.sample_accepted(self._groups[inst.index], self._rng, reject, tries_per_group=3,
                                                   max_groups=3)
        if arch is None:
            self._count("stalled_asks")
            return None
        self._count("lgs_fallbacks")
        self._waiting.setdefault(arch.arch_id, []).append([inst.index, None])
        inst.outstanding += 1
        return arch

    # ----- telling ---------------------------------------------------------------------------------------------
    def _loss(self, inst: _Instance, record: Record) -> float:
        if record.metric is None:
            return self.penalty_offset
        if record.latency_ms > inst.budget_ms:
            return self.penalty_offset + self.penalty * (record.latency_ms / inst.budget_ms - 1.0)
        return -record.metric if self.mode == "max" else record.metric

    def _on_tell(self, record: Record) -> None:
        for k, ref in self._waiting.pop(record.arch.arch_id, []):
            inst = self._instances[k]
            loss = self._loss(inst, record)
            if ref is None:
                inst.tell_new(self.encoding.encode(record.arch), loss)
            else:
                inst.tell(ref, loss)
            inst.outstanding -= 1

    def _exhausted(self) -> bool:
        return self._done

    def tags(self, arch: Arch) -> dict[str, Any]:
        k = self._origin.get(arch.arch_id)
        return {"generation": -1, "budget_ms": float("nan") if k is None else self.budgets_ms[k]}

    # ----- state -----------------------------------------------------------------------------------------------
    def _extra_state(self) -> dict[str, Any]:
        return {
            "optimizer": self.optimizer_name,
            "budgets_ms": list(self.budgets_ms),
            "instances": [{"seed": i.seed, "init": i.init, "events": i.events} for i in self._instances],
            "waiting": {k: [list(e) for e in v] for k, v in self._waiting.items()},
            "origin": dict(self._origin),
            "cursor": self._cursor,
            "done": self._done,
        }

    def _load_extra_state(self, state: Mapping[str, Any]) -> None:
        doc = parse_document(NevergradState, state, key="extra")
        if doc.optimizer != self.optimizer_name or doc.budgets_ms != self.budgets_ms:
            raise BadInputError(f"searcher state was written for optimizer {doc.optimizer!r} with budgets "
                                f"{doc.budgets_ms}; this searcher has {self.optimizer_name!r} with "
                                f"{self.budgets_ms}", key="optimizer")
        self._check_references(doc)
        self._waiting = {k: [list(e) for e in v] for k, v in doc.waiting.items()}
        self._origin = dict(doc.origin)
        self._cursor = doc.cursor
        self._done = doc.done
        self._instances = []
        for k, (b, instance) in enumerate(zip(self.budgets_ms, doc.instances, strict=True)):
            self._instances.append(self._replay(k, b, instance))

    def _check_references(self, doc: NevergradState) -> None:
        """What the state model cannot know: one instance per budget, the optimisers that `waiting`, `origin` and
        `cursor` name exist, each optimiser's log fits this space (`_check_log`)."""
        n = len(self.budgets_ms)
        check_state(len(doc.instances) == n, "extra.instances",
                    f"expected one optimiser per latency budget ({n}), got {len(doc.instances)}")
        check_below(doc.cursor, n, "extra.cursor", "optimisers")
        for arch_id, entries in doc.waiting.items():
            for j, (k, _) in enumerate(entries):
                check_below(k, n, f"{member_key('extra.waiting', arch_id)}[{j}][0]", "optimisers")
        for arch_id, k in doc.origin.items():
            check_below(k, n, member_key("extra.origin", arch_id), "optimisers")
        for k, instance in enumerate(doc.instances):
            self._check_log(k, instance)

    def _check_log(self, k: int, doc: InstanceState) -> None:
        """Optimiser `k`'s start point and told candidates are encoded archs of this space; each told ask was asked
        earlier in the log and told once."""
        key = f"extra.instances[{k}]"
        check_encoded(doc.init, self.encoding.sizes, f"{key}.init")
        asks, told = 0, set()
        for i, event in enumerate(doc.events):
            match event:
                case ("a", _):
                    asks += 1
                case ("t", ref, _):
                    if ref >= asks or ref in told:
                        raise BadInputError(
                            f"the log of optimiser {k} tells the result of ask {ref}, which it never asked or told "
                            "already (a state saved after a resume by inas before the fix of 61b14f2 lost its asks); "
                            "it cannot resume: search into a new output folder with --warm-start pointing at this "
                            "one, which reuses its evaluations", key=f"{key}.events[{i}]")
                    told.add(ref)
                case ("n", indices, _):
                    check_encoded(indices, self.encoding.sizes, f"{key}.events[{i}][1]")

    def _replay(self, k: int, budget_ms: float, doc: InstanceState) -> _Instance:
        inst = _Instance(k, budget_ms, doc.seed, doc.init, **self._instance_args)
        for event in doc.events:
            match event:
                case ("a", logged_id):
                    _, cand = inst.ask()
                    arch_id = self.encoding.decode_repair(cand.value).arch_id
                    if arch_id != logged_id:
                        return self._rebuild(k, budget_ms, doc)
                    inst.events.append(["a", arch_id])  # kept in the log: the next save is replayed the same way
                case ("t", ref, loss):
                    inst.tell(ref, loss)
                case ("n", indices, loss):
                    inst.tell_new(indices, loss)
        inst.outstanding = sum(1 for entries in self._waiting.values() for e in entries if e[0] == k)
        pending_refs = {e[1] for entries in self._waiting.values() for e in entries if e[0] == k and e[1] is not None}
        if pending_refs != set(inst.candidates):
            return self._rebuild(k, budget_ms, doc)
        return inst

    def _rebuild(self, k: int, budget_ms: float, doc: InstanceState) -> _Instance:
        """Fallback when a replay diverges: a fresh optimiser told every logged evaluation as a not-asked
        candidate; its pending asks become not-asked waiting entries."""
        self._count("replay_mismatches")
        ids = [e[1] for e in doc.events if e[0] == "a"]
        inst = _Instance(k, budget_ms, doc.seed, doc.init, **self._instance_args)
        for event in doc.events:
            match event:
                case ("t", ref, loss) if ids[ref] in self._records:
                    inst.tell_new(self.encoding.encode(self._records[ids[ref]].arch), loss)
                case ("n", indices, loss):
                    inst.tell_new(indices, loss)
        for entries in self._waiting.values():
            for e in entries:
                if e[0] == k:
                    e[1] = None
        inst.outstanding = sum(1 for entries in self._waiting.values() for e in entries if e[0] == k)
        return inst

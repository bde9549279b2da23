"""Optuna's multi-objective samplers as a `Searcher` (`kind: optuna`, `params: {sampler: nsga2 | tpe, ...}`).

Objectives: the metric (maximised for mode "max") and the latency on EVERY device of `device_latency_fns` (minimised),
so one run yields the joint front over the deploy devices; without `device_latency_fns` the second objective is the
primary latency (`latency_fn` / the told `latency_key`). A told result's `latency_ms__<device>` values are used when
present, else the device's function (the LUT).

First generation: the first `lgs_initial` asks (default: NSGA-II's population, TPE's startup trials) are
latency-group-sampler draws over `lgs_groups` groups, enqueued into the study (as evolution's generation 0), so the
front starts spread over the whole latency range instead of the middle where uniform draws fall; 0 = Optuna's own.
These enqueued trials (and warm-start trials) are placed in NSGA-II's generations by us (`_place_in_generation`):
Optuna does that only for trials it samples itself, so before, they were never parents and the next
`population_size` asks were uniform draws. On the synthetic problem (`benchmarks/bench_search_league.py
--synthetic` setting, 5 seeds, 96 evaluations, N-D hypervolume) that fix took NSGA-II from 0.508 to 0.582
(population 16) and 0.630 (population 8; evolution + LGS 0.588); the league and the default use population 8.

Parametrisation: one categorical parameter per dimension of `ArchEncoding` (the option index, so tuple-valued options
need no conversion), given to `study.ask(fixed_distributions)`.

Asking: a proposal that decodes to an already evaluated arch is told that arch's values at once (no evaluation,
`stats["told_from_history"]`); one that violates the constraints is told FAIL (`stats["rejected_infeasible"]`); one
that decodes to an arch being evaluated waits for that result. After `max_tries_per_ask` proposals without a new arch,
a uniform draw is enqueued (`study.enqueue_trial`) and asked instead (`stats["uniform_fallbacks"]`). A failed
evaluation is told FAIL (NSGA-II and TPE skip failed trials).

Resume (JSON, no pickle): the state logs every study operation (ask, enqueued ask, tell, added trial) in order. A
fresh study with the same sampler seed replays the log; Optuna's samplers are deterministic given their seed and the
same history, and each replayed ask is checked against the logged arch id. If a replay diverges (another Optuna
version), the study is rebuilt from the told evaluations as added trials (`stats["replay_mismatches"]`), and the
archs in flight are enqueued again: it continues without re-asking told archs, but not bit for bit.

Warm start (`warm_start`): earlier evaluations are added to the study as completed trials before the first ask.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from typing import Annotated, Any, Literal

from pydantic import Tag

from inas.errors import BadInputError, clip, excerpt
from inas.search.searchers.base import LatencyFn, Record, Searcher
from inas.search.searchers.lgs import LatencyGroupSampler, PartLatencyFn
from inas.search.searchers.state_types import AskEvent, Seed, by_first_item, check_encoded, check_state
from inas.space import Arch, ArchEncoding, SearchSpace, sample_uniform
from inas.validation_problems import Count, DocumentModel, Flag, Number, Text, expecting, parse_document

SAMPLERS = ("nsga2", "tpe")

# the study's log: an ask (and the arch it decoded to), an ask of an enqueued arch, a tell of values, a tell of a
# failure, a finished trial added (values null: failed)
EnqueuedAskEvent = Annotated[tuple[Literal["q"], list[Count], Text], expecting('["q", encoded architecture, arch id]'),
                             Tag("q")]
TellEvent = Annotated[tuple[Literal["t"], Count, list[Number]], expecting('["t", trial number, objective values]'),
                      Tag("t")]
FailEvent = Annotated[tuple[Literal["f"], Count], expecting('["f", trial number]'), Tag("f")]
AddEvent = Annotated[tuple[Literal["n"], list[Count], list[Number] | None],
                     expecting('["n", encoded architecture, objective values or null]'), Tag("n")]
Event = Annotated[AskEvent | EnqueuedAskEvent | TellEvent | FailEvent | AddEvent,
                  by_first_item('["a", ...], ["q", ...], ["t", ...], ["f", ...] or ["n", ...] (a study operation)')]


class OptunaState(DocumentModel):
    """`OptunaSearcher`'s own state (`extra`): the study's seed and log (replayed on resume); `waiting`: arch id ->
    the asked trial numbers waiting for its result."""

    sampler: Text
    devices: list[Text]
    study_seed: Seed
    events: list[Event]
    waiting: dict[str, list[Count]]
    done: Flag


def _check_told_once(number: int, running: set[int], key: str) -> None:
    """Trial `number` of a logged tell is running (asked, not told yet); it is told now."""
    check_state(number in running, key, f"trial {number} is told, but it was never asked or was told already")
    running.discard(number)


def make_sampler(name: str, seed: int, population_size: int, n_startup_trials: int,
                 options: Mapping[str, Any]) -> Any:
    """An Optuna sampler by our name ("nsga2": NSGAIISampler, "tpe": TPESampler), seeded."""
    import optuna

    if name == "nsga2":
        return optuna.samplers.NSGAIISampler(population_size=population_size, seed=seed, **options)
    return optuna.samplers.TPESampler(n_startup_trials=n_startup_trials, seed=seed, **options)


class OptunaSearcher(Searcher):
    """Optuna NSGA-II or TPE over the metric and every device's latency (see module docstring)."""

    name = "optuna"
    size_params = ("population_size",)

    def __init__(self, space: SearchSpace, latency_fn: LatencyFn, budget: int, seed: int = 0, *,
                 sampler: str = "nsga2", population_size: int = 8, n_startup_trials: int = 16,
                 sampler_options: Mapping[str, Any] | None = None, max_tries_per_ask: int = 50,
                 lgs_initial: int | None = None, lgs_groups: int = 4, part_latency_fn: PartLatencyFn | None = None,
                 **kwargs: Any) -> None:
        super().__init__(space, latency_fn, budget, seed, **kwargs)
        if sampler not in SAMPLERS:
            raise BadInputError(f"unknown Optuna sampler {sampler!r}; expected one of {list(SAMPLERS)}", key="sampler")
        for key, value in (("population_size", population_size), ("n_startup_trials", n_startup_trials),
                           ("max_tries_per_ask", max_tries_per_ask)):
            if not isinstance(value, int) or value < 1 or (key == "population_size" and value < 2):
                raise BadInputError(f"must be a positive integer (population_size >= 2), got {value!r}", key=key)
        self.sampler_name = sampler
        self.population_size = population_size
        self.n_startup_trials = n_startup_trials
        if sampler_options is not None and not (isinstance(sampler_options, Mapping)
                                                and all(isinstance(k, str) for k in sampler_options)):
            raise BadInputError(f"must be a mapping of the sampler's keyword options, got {excerpt(sampler_options)}",
                                key="sampler_options")
        self.sampler_options = dict(sampler_options or {})
        self.max_tries_per_ask = max_tries_per_ask
        self.encoding = ArchEncoding(space)
        if len(self.encoding) == 0:
            raise BadInputError("the space holds a single architecture; there is nothing to optimise", key="space")
        self.devices = list(self.device_latency_fns)
        first_generation = population_size if sampler == "nsga2" else n_startup_trials
        if lgs_initial is not None and (not isinstance(lgs_initial, int) or isinstance(lgs_initial, bool)):
            raise BadInputError(f"must be an integer >= 0, got {excerpt(lgs_initial)}", key="lgs_initial")
        self.lgs_initial = first_generation if lgs_initial is None else lgs_initial
        if self.lgs_initial < 0 or lgs_groups < 1:
            raise BadInputError(f"lgs_initial must be >= 0 and lgs_groups >= 1, got {lgs_initial!r}, {lgs_groups!r}",
                                key="lgs_initial")
        self.sampler = LatencyGroupSampler(space, latency_fn, lgs_groups, part_latency_fn=part_latency_fn,
                                           max_latency_ms=self.max_latency_ms)
        self._study_seed = self._rng.randrange(2**31)
        self._events: list[list] = []  # ["a", arch_id] | ["q", indices, arch_id] | ["t", n, values] | ["f", n]
        #                                 | ["n", indices, values or None]
        self._waiting: dict[str, list[int]] = {}  # arch id -> asked trial numbers waiting for its result
        self._done = False
        self.study = self._new_study()

    # ----- the study -------------------------------------------------------------------------------------------
    def _new_study(self) -> Any:
        import optuna

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        direction = "maximize" if self.mode == "max" else "minimize"
        directions: list[Any] = [direction] + ["minimize"] * max(1, len(self.devices))
        try:
            sampler = make_sampler(self.sampler_name, self._study_seed, self.population_size, self.n_startup_trials,
                                   self.sampler_options)
        except (TypeError, ValueError) as exc:  # an option the sampler does not take, or a value it refuses
            raise BadInputError(f"the {self.sampler_name} sampler refuses them: {clip(str(exc), 200)}",
                                key="sampler_options") from None
        return optuna.create_study(directions=directions, sampler=sampler)

    @property
    def distributions(self) -> dict[str, Any]:
        from optuna.distributions import CategoricalDistribution

        return {d.name: CategoricalDistribution(list(range(d.size))) for d in self.encoding.dimensions}

    def _ask(self, indices: Sequence[int] | None = None) -> tuple[int, Arch]:
        """Ask the study (with `indices` enqueued first when given); logs the operation."""
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # Optuna's ExperimentalWarning / independent-sampling notes
            if indices is not None:
                self.study.enqueue_trial({d.name: int(i) for d, i in zip(self.encoding.dimensions, indices,
                                                                         strict=True)})
            trial = self.study.ask(self.distributions)
            if indices is not None:
                self._place_in_generation(trial.number)
        arch = self.encoding.decode([trial.params[d.name] for d in self.encoding.dimensions])
        self._events.append(["a", arch.arch_id] if indices is None else ["q", [int(i) for i in indices],
                                                                          arch.arch_id])
        return trial.number, arch

    def _place_in_generation(self, number: int) -> None:
        """Give trial `number` (enqueued or added) its NSGA-II generation. Optuna's genetic samplers set it only in
        `sample_relative`, which a trial whose parameters are all fixed never reaches: without this the LGS
        initial population and warm-start trials were never parents, and the first 16 proposals after them were
        uniform draws (a new generation 0)."""
        get_generation = getattr(self.study.sampler, "get_trial_generation", None)
        if get_generation is not None:
            get_generation(self.study, self.study.get_trials(deepcopy=False)[number])

    def values(self, record: Record) -> list[float] | None:
        """The objective values of a told record: [metric, latency per device] (None: failed)."""
        if record.metric is None:
            return None
        if not self.devices:
            return [record.metric, record.latency_ms]
        device_ms = record.device_ms or {d: float(fn(record.arch)) for d, fn in self.device_latency_fns.items()}
        return [record.metric, *(device_ms[d] for d in self.devices)]

    def _tell(self, number: int, values: list[float] | None) -> None:
        from optuna.trial import TrialState

        if values is None:
            self.study.tell(number, state=TrialState.FAIL)
            self._events.append(["f", number])
        else:
            self.study.tell(number, values)
            self._events.append(["t", number, [float(v) for v in values]])

    def _add(self, indices: Sequence[int], values: list[float] | None) -> None:
        """A finished trial that was not asked by us (warm start, rebuild): enqueued, asked and told at once, so
        that it is placed in an NSGA-II generation like any other trial (an `add_trial` is finished before a
        generation can be given to it, and such trials were never parents)."""
        from optuna.trial import TrialState

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            self.study.enqueue_trial({d.name: int(i) for d, i in zip(self.encoding.dimensions, indices, strict=True)})
            trial = self.study.ask(self.distributions)
            self._place_in_generation(trial.number)
        if values is None:
            self.study.tell(trial.number, state=TrialState.FAIL)
        else:
            self.study.tell(trial.number, values)
        self._events.append(["n", [int(i) for i in indices], None if values is None else [float(v) for v in values]])

    # ----- asking ----------------------------------------------------------------------------------------------
    def _next(self) -> Arch | None:
        if self._asked < self.lgs_initial:
            arch = self._lgs_draw(self._asked % self.sampler.groups)
            if arch is not None:
                number, arch = self._ask(self.encoding.encode(arch))
                self._waiting.setdefault(arch.arch_id, []).append(number)
                return arch
        for _ in range(self.max_tries_per_ask):
            number, arch = self._ask()
            if self._route(number, arch):
                return arch
        arch = self._uniform_new("optuna proposals and uniform draws")
        if arch is not None:
            self._count("uniform_fallbacks")
            number, arch = self._ask(self.encoding.encode(arch))
            self._waiting.setdefault(arch.arch_id, []).append(number)
            return arch
        if not self._in_flight:
            self._count("stalled")
            self._done = True
        return None

    def _route(self, number: int, arch: Arch) -> bool:
        """True when `arch` is new and must be evaluated; otherwise the trial is told now or waits."""
        record = self.known_record(arch)
        if record is not None:
            self._count("told_from_history")
            self._tell(number, self.values(record))
            return False
        if not self.is_feasible(arch):
            self._count("rejected_infeasible")
            self._tell(number, None)
            return False
        self._waiting.setdefault(arch.arch_id, []).append(number)
        if arch.arch_id in self._in_flight:
            self._count("joined_in_flight")
            return False
        return True

    def _lgs_draw(self, group: int) -> Arch | None:
        """A new feasible arch of latency group `group` (nearest groups when that one is exhausted), or None."""
        def reject(arch: Arch) -> str | None:
            if self.is_known(arch) or self.known_record(arch) is not None:
                return "duplicate"
            return None if self.is_feasible(arch) else "infeasible"

        arch, _, reasons = self.sampler.sample_accepted(group, self._rng, reject, tries_per_group=20)
        if arch is None and reasons.get("infeasible", 0) and not reasons.get("duplicate", 0) and not self._asked:
            raise self._infeasible_error("LGS, every latency group", sum(reasons.values()))
        self._count("lgs_initial" if arch is not None else "lgs_initial_dropped")
        return arch

    def _uniform_new(self, what: str) -> Arch | None:
        """A uniform draw neither asked nor infeasible (at most `max_tries` draws). None when every draw was a
        duplicate (the space looks exhausted); InfeasibleConstraintError when no draw met the constraints."""
        duplicates = 0
        for _ in range(self.max_tries):
            arch = sample_uniform(self.space, self._rng)
            if self.is_known(arch):
                duplicates += 1
            elif self.is_feasible(arch):
                return arch
        if duplicates == 0:
            raise self._infeasible_error(what, self.max_tries)
        return None

    # ----- telling ---------------------------------------------------------------------------------------------
    def _on_tell(self, record: Record) -> None:
        values = self.values(record)
        for number in self._waiting.pop(record.arch.arch_id, []):
            self._tell(number, values)

    def _exhausted(self) -> bool:
        return self._done

    def _on_warm_start(self, records: list[Record]) -> None:
        """Earlier evaluations become finished trials of the study (before the first ask)."""
        for record in records:
            self._add(self.encoding.encode(record.arch), self.values(record))

    # ----- state -----------------------------------------------------------------------------------------------
    def _extra_state(self) -> dict[str, Any]:
        return {"sampler": self.sampler_name, "devices": list(self.devices), "study_seed": self._study_seed,
                "events": [list(e) for e in self._events],
                "waiting": {k: list(v) for k, v in self._waiting.items()}, "done": self._done}

    def _load_extra_state(self, state: Mapping[str, Any]) -> None:
        doc = parse_document(OptunaState, state, key="extra")
        if doc.sampler != self.sampler_name or doc.devices != self.devices:
            raise BadInputError(f"searcher state was written for sampler {doc.sampler!r} over devices "
                                f"{doc.devices}; this searcher has {self.sampler_name!r} over {self.devices}",
                                key="sampler")
        self._check_log(doc.events)
        self._study_seed = doc.study_seed
        self._done = doc.done
        waiting = {k: list(v) for k, v in doc.waiting.items()}
        if not self._replay(doc.events, waiting):
            self._rebuild(waiting)

    def _check_log(self, events: Sequence[Event]) -> None:
        """Every enqueued or added arch is an encoded arch of this space, every tell has one value per objective
        and tells a trial asked earlier in the log and not told yet."""
        trials, running = 0, set()  # trials created so far (asked, enqueued or added); asked trials not yet told
        for i, event in enumerate(events):
            key = f"extra.events[{i}]"
            match event:
                case ("a", _):
                    running.add(trials)
                case ("q", indices, _):
                    check_encoded(indices, self.encoding.sizes, f"{key}[1]")
                    running.add(trials)
                case ("t", number, values):
                    self._check_values(values, f"{key}[2]")
                    _check_told_once(number, running, f"{key}[1]")
                case ("f", number):
                    _check_told_once(number, running, f"{key}[1]")
                case ("n", indices, values):
                    check_encoded(indices, self.encoding.sizes, f"{key}[1]")
                    if values is not None:
                        self._check_values(values, f"{key}[2]")
            trials += event[0] in ("a", "q", "n")

    def _check_values(self, values: Sequence[float], key: str) -> None:
        objectives = 1 + max(1, len(self.devices))
        check_state(len(values) == objectives, key, f"expected {objectives} objective values (the metric and a "
                    f"latency per device), got {excerpt(list(values))}")

    def _replay(self, events: Sequence[Event], waiting: dict[str, list[int]]) -> bool:
        """Replay the logged operations into a fresh study; False at the first divergence."""
        self.study = self._new_study()
        self._events = []
        self._waiting = waiting
        for event in events:
            match event:
                case ("a", logged_id):
                    if self._ask()[1].arch_id != logged_id:
                        return False
                case ("q", indices, logged_id):
                    if self._ask(indices)[1].arch_id != logged_id:
                        return False
                case ("t", number, values):
                    self._tell(number, list(values))
                case ("f", number):
                    self._tell(number, None)
                case ("n", indices, values):
                    self._add(indices, None if values is None else list(values))
        pending = {n for numbers in waiting.values() for n in numbers}
        running = {t.number for t in self.study.get_trials(deepcopy=False) if not t.state.is_finished()}
        return pending == running

    def _rebuild(self, waiting: dict[str, list[int]]) -> None:
        """A fresh study told every evaluation as an added trial; each waiting arch is enqueued and asked again."""
        self._count("replay_mismatches")
        self.study = self._new_study()
        self._events = []
        self._waiting = {}
        for record in self._records.values():
            self._add(self.encoding.encode(record.arch), self.values(record))
        for arch_id in waiting:
            arch = self._in_flight.get(arch_id)
            if arch is not None:
                number, _ = self._ask(self.encoding.encode(arch))
                self._waiting[arch_id] = [number]

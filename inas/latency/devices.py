"""Target devices as Ray actors: one or more `DeviceActor`s per configured device, each pinned to a node by a Ray
resource (a custom resource such as `device:xeon`, given to that node with `ray start --resources
'{"device:xeon": 1}'`, or `GPU`).

An actor times blocks (`measure_blocks`) and whole networks (`measure_networks`) with its device's backend, threads
and batch. Several devices on ONE node would disturb each other's timings (they share cores, caches and memory
bandwidth): with `node_lock` every measurement holds an exclusive file lock of the node (`fcntl.flock` on a file in
the node's temp folder), so devices on different nodes run in parallel and devices sharing a node take turns block by
block.

Drift: with `reference_every` > 0 an actor times a fixed reference block (`reference_block`) before its first
block and again after every `reference_every` blocks, and between validation networks; each row carries the latest
reference time (`reference_ms`), so a table shows how much the machine drifted while it was built, and validation
how far it has drifted since. A block sits in a network as no stand-alone block does (fused with its neighbours,
sharing caches with them), and on a shared machine whole networks can move against the blocks (measured: OpenVINO
FP32 networks 6.4 % faster against their block sums in one validation run than in the one before, while the
reference block stayed within 0.2 %). So with `reference_network_every_s` > 0 an actor also times a fixed whole
network (`reference_network_arch`) before its first block or network and again once that many seconds have passed
(`reference_network_ms`, per table row and per validated network); validation scales its predictions by that
network's drift when the table has it. A block whose timed runs spread widely (IQR / median above `max_spread`: another
process got in the way) is timed again, up to `retimes` times, keeping the steadiest timing (`retimes` column).
Every row an actor measures records the Ray node that measured it in the column `node_id` (the table's `host`
column names the machine; several Ray nodes may share one), "" when measured in-process without Ray; and each actor
counts its measured blocks in the Ray metric `inas_lut_blocks_measured` (tags `device`, `node_id`; see
`inas.progress`).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import math
import os
import random
import sys
import tempfile
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from inas.errors import BadInputError, RunFailedError, clip
from inas.latency.backends import (
    Runner,
    Timing,
    block_inputs,
    build_block,
    build_network,
    reference_block,
    software_versions,
)
from inas.latency.blocks import BlockKey
from inas.ray_session import RayConnection, init_ray
from inas.runtimes.calibration import Calibration
from inas.space import Arch, SearchSpace, arch_from_json, sample_uniform

NODE_LOCK_NAME = "inas-latency-node.lock"
REFERENCE_NETWORK_SEED = 0


def reference_network_arch(space: SearchSpace) -> Arch:
    """The fixed whole network timed for drift: the space's uniform draw of seed `REFERENCE_NETWORK_SEED` (a typical
    network of the space, the same for a table and every validation of it)."""
    return sample_uniform(space, random.Random(REFERENCE_NETWORK_SEED))


@dataclass(frozen=True)
class NetworkReference:
    """The reference network an actor times for drift (plain data, shipped to the actor)."""

    space_doc: dict  # `inas.nn.space_spec` of the space
    arch_json: str  # `reference_network_arch(space).to_json()`
    num_classes: int
    every_s: float  # re-time it once this many seconds have passed since it was last timed


@dataclass(frozen=True)
class DeviceSpec:
    """What an actor needs to know about its device (plain data, shipped to the actor)."""

    name: str
    resource: str
    backend: str
    threads: int
    batch: int
    actors: int
    warmup_runs: int
    runs: int
    node_lock: bool
    drop_preempted: bool = True
    input_hw: tuple[int, int] | None = None  # the tables' input size (where the reference block is taken from)
    reference_every: int = 0  # time the reference block after this many blocks (0: never)
    max_spread: float = math.inf  # re-time a block whose IQR / median exceeds this ...
    retimes: int = 0  # ... at most this many more times
    reference_network: NetworkReference | None = None  # a whole network timed for drift (None: never)

    @property
    def uses_gpu_resource(self) -> bool:
        return self.resource == "GPU"

    def actor_options(self) -> dict:
        """Ray actor options pinning it to a node that offers the device's resource."""
        if self.uses_gpu_resource:
            return {"num_cpus": 0, "num_gpus": 1}
        return {"num_cpus": 0, "resources": {self.resource: 1}}


@contextlib.contextmanager
def node_lock(enabled: bool, path: str | Path | None = None) -> Iterator[None]:
    """Hold the node-wide measurement lock (no-op if not enabled); `path` defaults to a file in the temp folder."""
    if not enabled:
        yield
        return
    path = Path(path) if path is not None else Path(tempfile.gettempdir()) / NODE_LOCK_NAME
    with open(path, "a+") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def relative_spread(timing: Timing) -> float:
    """IQR / median of a timing (0 for a zero median)."""
    return timing.iqr_ms / timing.median_ms if timing.median_ms > 0 else 0.0


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


def _ray_node_id() -> str:
    """The id of the Ray node this process runs on; "" without Ray."""
    import ray

    return ray.get_runtime_context().get_node_id() if ray.is_initialized() else ""


def _count_blocks(device: str, node_id: str, blocks: int) -> None:
    from inas.progress import LUT_BLOCKS, ray_sink

    sink = ray_sink((LUT_BLOCKS,)) if node_id else None
    if sink is not None and blocks:
        sink.inc(LUT_BLOCKS, blocks, {"device": device, "node_id": node_id})


class DeviceActor:
    """Measures on one device. Used as a Ray actor (`ray.remote(DeviceActor)`), or in-process (`--in-process`)."""

    def __init__(self, spec: DeviceSpec, calibration: Calibration | None = None) -> None:
        self.spec = spec
        self.runner = Runner(spec.backend, spec.threads, spec.drop_preempted, calibration)
        self.versions = software_versions()
        self.reference_ms = float("nan")
        self._since_reference = 0
        self._reference_run: Callable[[], object] | None = None
        self.reference_network_ms = float("nan")
        self._reference_network_timed_at = -math.inf  # time.monotonic() of its last timing
        self.node_id = _ray_node_id()

    def _reference(self, force: bool = False) -> float:
        """The reference block's median, re-timed when due (or `force`d); NaN if reference timing is off."""
        spec = self.spec
        if spec.reference_every <= 0 or spec.input_hw is None:
            return float("nan")
        if force or self._since_reference >= spec.reference_every or math.isnan(self.reference_ms):
            if self._reference_run is None:  # built (exported, quantised) once, timed many times
                key = reference_block(spec.input_hw)
                self._reference_run = self.runner.prepare(build_block(key), block_inputs(key, spec.batch))
            with node_lock(spec.node_lock):
                timing = self.runner.time_callable(self._reference_run, spec.warmup_runs, spec.runs)
            self.reference_ms, self._since_reference = timing.median_ms, 0
        self._since_reference += 1
        return self.reference_ms

    def _reference_network(self) -> float:
        """The reference network's median, re-timed once `every_s` seconds have passed since its last timing; NaN if
        the device times none."""
        ref, spec = self.spec.reference_network, self.spec
        if ref is None or spec.input_hw is None:
            return float("nan")
        if time.monotonic() - self._reference_network_timed_at >= ref.every_s:
            from inas.nn import space_from_spec

            space = space_from_spec(ref.space_doc)
            arch = arch_from_json(ref.arch_json, space)
            with node_lock(spec.node_lock):
                timing = self.runner.measure_network(lambda: build_network(space, arch, ref.num_classes),
                                                     spec.input_hw, spec.batch, spec.warmup_runs, spec.runs,
                                                     cache_key=f"reference:{arch.arch_id}")
            self.reference_network_ms, self._reference_network_timed_at = timing.median_ms, time.monotonic()
        return self.reference_network_ms

    def check(self) -> str | None:
        """None if this node can run the device's backend, else the reason."""
        return self.runner.check()

    def niceness(self) -> int:
        """The nice value this actor measures at (0 unless the cluster's workers were started niced)."""
        return os.nice(0)

    def _row(self, key: BlockKey, timing: Timing, params: int, reference_ms: float, calibration: str,
             retimes: int = 0, reference_network_ms: float = float("nan")) -> dict:
        spec = self.spec
        versions = dict(self.versions)
        if not spec.backend.startswith("onnxruntime"):
            versions["onnxruntime_version"] = ""
        if not spec.backend.startswith("openvino"):
            versions["openvino_version"] = ""
        return {"block": key.text, **key.to_row(), "params": params, "device": spec.name, "backend": spec.backend,
                "batch": spec.batch, "threads": spec.threads, "latency_ms": timing.median_ms,
                "latency_ms_mean": timing.mean_ms, "latency_ms_std": timing.std_ms,
                "latency_ms_iqr": timing.iqr_ms, "runs": timing.runs, "retimes": retimes, "reference_ms": reference_ms,
                "reference_network_ms": reference_network_ms, "calibration": calibration, **versions,
                "measured_at": _now(), "node_id": self.node_id}

    def measure_blocks(self, keys: Sequence[dict]) -> list[dict]:
        """Time blocks given as BlockKey rows; returns one latency-table row each."""
        rows = []
        for row in keys:
            key = BlockKey.from_row(row)
            reference_ms, reference_network_ms = self._reference(), self._reference_network()
            inputs = block_inputs(key, self.spec.batch)
            with node_lock(self.spec.node_lock):
                module = build_block(key)
                run = self.runner.prepare(module, inputs, list_input=key.kind.endswith("_fusion"))
                timing, retimes = self._steady_timing(run)
            rows.append(self._row(key, timing, sum(p.numel() for p in module.parameters()), reference_ms,
                                  self.runner.calibration_source(inputs), retimes, reference_network_ms))
        _count_blocks(self.spec.name, self.node_id, len(rows))
        return rows

    def _steady_timing(self, run: Callable[[], object]) -> tuple[Timing, int]:
        """Time `run`; while the spread (IQR / median) of the best timing so far exceeds `max_spread`, time it again,
        at most `retimes` more times, and keep the timing with the smallest spread. (timing, re-timings made)."""
        spec = self.spec
        best = self.runner.time_callable(run, spec.warmup_runs, spec.runs)
        for made in range(spec.retimes):
            if relative_spread(best) <= spec.max_spread:
                return best, made
            best = min(best, self.runner.time_callable(run, spec.warmup_runs, spec.runs), key=relative_spread)
        return best, spec.retimes

    def measure_networks(self, space_doc: dict, arch_jsons: Sequence[str], input_hw: tuple[int, int],
                         num_classes: int) -> list[dict]:
        """Time whole stand-alone networks (random weights, folded, level-0 head); returns
        {arch_id, measured_ms, measured_ms_mean, measured_ms_std, measured_ms_iqr, runs, reference_ms,
        reference_network_ms} per arch; the reference block is re-timed before every network (validation interleaves
        the two), the reference network when due."""
        from inas.nn import space_from_spec

        space = space_from_spec(space_doc)
        out = []
        for text in arch_jsons:
            arch = arch_from_json(text, space)
            reference_ms, reference_network_ms = self._reference(force=True), self._reference_network()
            with node_lock(self.spec.node_lock):
                timing = self.runner.measure_network(lambda arch=arch: build_network(space, arch, num_classes),
                                                     tuple(input_hw), self.spec.batch, self.spec.warmup_runs,
                                                     self.spec.runs, cache_key=arch.arch_id)
            out.append({"arch_id": arch.arch_id, "measured_ms": timing.median_ms,
                        "measured_ms_mean": timing.mean_ms, "measured_ms_std": timing.std_ms,
                        "measured_ms_iqr": timing.iqr_ms, "runs": timing.runs, "reference_ms": reference_ms,
                        "reference_network_ms": reference_network_ms})
        return out


# ----- Ray plumbing ---------------------------------------------------------------------------------------------------
def connect_ray(address: str | None, specs: Sequence[DeviceSpec], num_cpus: int | None = None) -> RayConnection:
    """Start or join Ray (`inas.ray_session.init_ray`); a new local Ray declares the devices' custom resources (one
    unit per actor) so every device can be placed on this machine. The caller closes the connection."""
    resources: dict[str, float] = {}
    for spec in specs:
        if not spec.uses_gpu_resource:
            resources[spec.resource] = resources.get(spec.resource, 0) + spec.actors
    # niceness 0: Ray's default (15) lets any other process of the machine preempt a measuring actor
    return init_ray(address, verb="lut", local_resources=resources, num_cpus=num_cpus, worker_niceness=0)


def check_resources(specs: Sequence[DeviceSpec], source: str = "lut.devices") -> None:
    """BadInputError naming the resource if no node of the cluster offers what a device's actors need; a warning
    (`warn_if_busy`) if the cluster offers it but not enough of it is free now."""
    import ray

    available = ray.cluster_resources()
    free = ray.available_resources()
    for i, spec in enumerate(specs):
        name = "GPU" if spec.uses_gpu_resource else spec.resource
        have = available.get(name, 0)
        if have <= 0:
            offered = sorted(k for k in available if k.startswith("device:") or k == "GPU")
            raise BadInputError(
                f"device {spec.name!r} needs the Ray resource {name!r}, which no node of the cluster offers "
                f"(offered device resources: {offered or 'none'}); start a node with "
                f"`ray start --resources '{{\"{name}\": {spec.actors}}}'`, fix the device's `resource`, or pass "
                "`--address local` to measure on this machine in a Ray of its own",
                key=f"{source}[{i}].resource")
        if have < spec.actors:
            raise BadInputError(f"device {spec.name!r} asks for {spec.actors} actors but the cluster offers only "
                                f"{have:g} of resource {name!r}", key=f"{source}[{i}].actors")
        warn_if_busy(spec.name, name, spec.actors, have, free.get(name, 0.0))


def warn_if_busy(device: str, resource: str, needed: int, total: float, free: float) -> str | None:
    """Say on stderr (and return) that a device's actors wait for its resource, held now by another job of the
    cluster (another `lut`, `lut validate`); None if enough of it is free."""
    if free >= needed:
        return None
    text = (f"lut: device {device!r} waits for its Ray resource {resource!r}: the cluster offers {total:g}, "
            f"{max(free, 0.0):g} free now (held by another job, e.g. another lut on this cluster); its actors start "
            "once it is released (Ctrl-C stops the wait)")
    print(text, file=sys.stderr, flush=True)
    return text


def start_actors(specs: Sequence[DeviceSpec], source: str = "lut.devices",
                 calibration: Calibration | None = None) -> dict[str, list]:
    """{device name: [actor handles]} with every actor checked to be able to run its backend."""
    import ray

    remote_cls = ray.remote(DeviceActor)
    calib = ray.put(calibration)
    actors = {spec.name: [remote_cls.options(**spec.actor_options()).remote(spec, calib) for _ in range(spec.actors)]
              for spec in specs}
    from ray.exceptions import RayActorError

    for i, spec in enumerate(specs):
        try:
            problems = [p for p in ray.get([a.check.remote() for a in actors[spec.name]]) if p]
        except RayActorError as exc:
            raise RunFailedError(f"an actor of device {spec.name!r} died while starting ({clip(str(exc), 160)}); "
                                 "running the same command again starts it again") from None
        if problems:
            for handles in actors.values():
                for a in handles:
                    ray.kill(a)
            raise BadInputError(f"device {spec.name!r}: {problems[0]}", key=f"{source}[{i}].backend")
        warn_if_niced(spec.name, ray.get([a.niceness.remote() for a in actors[spec.name]]))
    return actors


def warn_if_niced(device: str, niceness: Sequence[int]) -> str | None:
    """Say on stderr (and return) why timings of actors running niced are suspect, and how to start a cluster whose
    workers are not; None if every actor runs at niceness <= 0."""
    if max(niceness, default=0) <= 0:
        return None
    text = (f"lut: warning: the actors of device {device!r} run at niceness {max(niceness)} (Ray's worker default on "
            "this cluster): any other process on their node preempts them and inflates the timings; start the "
            "cluster's nodes with `RAY_worker_niceness=0 ray start ...`")
    print(text, file=sys.stderr, flush=True)
    return text


def start_local_actors(specs: Sequence[DeviceSpec], source: str = "lut.devices",
                       calibration: Calibration | None = None) -> dict[str, list[DeviceActor]]:
    """In-process stand-ins for the actors (no Ray): the same DeviceActor code, one call at a time."""
    actors = {spec.name: [DeviceActor(spec, calibration) for _ in range(spec.actors)] for spec in specs}
    for i, spec in enumerate(specs):
        problem = actors[spec.name][0].check()
        if problem:
            raise BadInputError(f"device {spec.name!r}: {problem}", key=f"{source}[{i}].backend")
    return actors


@contextlib.contextmanager
def device_actors(specs: Sequence[DeviceSpec], address: str | None, in_process: bool,
                  calibration: Calibration | None = None) -> Iterator[dict[str, list]]:
    """{device: [actors]}: Ray actors pinned by resource (Ray started or joined here, and shut down if started
    here), or in-process DeviceActors with `in_process`. `calibration`: images for the INT8 backends."""
    if in_process:
        yield start_local_actors(specs, calibration=calibration)
        return
    connection = connect_ray(address, specs)
    try:
        check_resources(specs)
        yield start_actors(specs, calibration=calibration)
    finally:
        connection.close()


def dispatch(actors: dict[str, list], jobs: dict[str, deque], method: str, args: Callable[[Any], tuple],
             on_result: Callable[[str, Any], None], lost_hint: str = "") -> None:
    """Hand each device's jobs, one call each, to whichever of its actors is free; `on_result(device, result)` as
    results arrive. Ray actor handles run in parallel; in-process actors run round-robin over the devices. An actor
    that dies (its process killed, its node lost) is a RunFailedError naming its device, `lost_hint` appended."""
    handles = [a for device_actors in actors.values() for a in device_actors]
    if not handles:
        return
    if isinstance(handles[0], DeviceActor):
        while any(jobs.values()):
            for device, device_actors in actors.items():
                for actor in device_actors:
                    if jobs[device]:
                        on_result(device, getattr(actor, method)(*args(jobs[device].popleft())))
        return
    import ray

    inflight: dict = {}

    def submit(device: str, actor) -> None:
        if jobs[device]:
            inflight[getattr(actor, method).remote(*args(jobs[device].popleft()))] = (device, actor)

    for device, device_actors in actors.items():
        for actor in device_actors:
            submit(device, actor)
    from ray.exceptions import RayActorError

    while inflight:
        ready, _ = ray.wait(list(inflight), num_returns=1)
        device, actor = inflight.pop(ready[0])
        try:
            result = ray.get(ready[0])
        except RayActorError as exc:  # its process was killed or its node lost: timings on another would not match
            raise RunFailedError(f"the actor measuring device {device!r} died ({clip(str(exc), 160)}){lost_hint}") \
                from None
        on_result(device, result)
        submit(device, actor)

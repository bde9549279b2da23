"""Several Ray nodes on this machine for the multi-node tests (`ray.cluster_utils.Cluster`): a head without CPUs (the
test process joins it as the driver) and worker nodes with their own CPUs and custom resources; each node has its own
raylet, object store and metrics agent. Everything is stopped by handle (never `ray stop`); the Ray temp folder is
the test's RAY_TMPDIR. `time_limit` bounds a test's wait (SIGALRM in the main thread)."""

from __future__ import annotations

import contextlib
import signal
from collections.abc import Iterator, Sequence
from typing import Any

HEAD_SYSTEM_CONFIG = {"metrics_report_interval_ms": 1000}


@contextlib.contextmanager
def local_cluster(workers: Sequence[dict[str, Any]]) -> Iterator[tuple[Any, list[Any]]]:
    """(cluster, worker nodes) with `workers` = one dict of `Cluster.add_node` arguments per worker node; the test
    process is connected to it as a driver."""
    import ray
    from ray.cluster_utils import Cluster

    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 0, "include_dashboard": False,
                                                            "_system_config": HEAD_SYSTEM_CONFIG})
    try:
        nodes = [cluster.add_node(**{"num_cpus": 1, **args}) for args in workers]
        cluster.wait_for_nodes()
        ray.init(address=cluster.address, include_dashboard=False, log_to_driver=False)
        yield cluster, nodes
    finally:
        ray.shutdown()
        cluster.shutdown()


@contextlib.contextmanager
def time_limit(seconds: int) -> Iterator[None]:
    """TimeoutError in the main thread after `seconds` (the test fails instead of hanging)."""

    def expire(signum: int, frame: Any) -> None:
        raise TimeoutError(f"the test ran over its {seconds} s limit")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)

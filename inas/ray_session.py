"""Start or join Ray the same way in every verb that uses it (`train --cluster`, `lut`, `lut validate`, `search`).

Which Ray a verb uses, in Ray's own order (what `ray.init()` does), said on stderr in one line:
1. `--address local`: a new local Ray for this command only;
2. `--address ADDR` (`auto`, `HOST:PORT`, `ray://HOST:10001`): that cluster (checked to answer first);
3. `RAY_ADDRESS` (set e.g. by `ray job submit` for the job's driver): that cluster;
4. a cluster already running on this machine (`ray start --head`, found through Ray's `ray_current_cluster` file
   under RAY_TMPDIR or /tmp/ray): joined;
5. otherwise a new local Ray for this command only.

A local Ray started here is stopped when the verb ends (`RayConnection.close`). If the verb's process is killed
(kill -9), a small watchdog process (`inas.ray_watchdog`, started with the local Ray) ends that Ray's processes
within about 2 s, so nothing of it outlives the verb.
"""

from __future__ import annotations

import logging
import os
import stat
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from inas.errors import BadInputError
from inas.ray_address import check_ray_address, join_ray_cluster

log = logging.getLogger(__name__)

AUTH_HINT = ("; with token authentication, export RAY_AUTH_MODE=token and make the cluster's token available "
             "(`ray get-auth-token` on the head node prints it: copy it to ~/.ray/auth_token or export RAY_AUTH_TOKEN)")


@dataclass
class RayConnection:
    """How this process uses Ray. `owned`: this call initialised Ray (close() shuts it down); `local`: it started a
    new local Ray; `address`: the cluster joined (None for a new local Ray)."""

    owned: bool
    local: bool
    address: str | None
    watchdog: subprocess.Popen | None = field(default=None, repr=False)

    def close(self) -> None:
        """Shut Ray down if this call initialised it, and stop the watchdog of a local Ray."""
        if not self.owned:
            return
        import ray

        ray.shutdown()
        if self.watchdog is not None and self.watchdog.poll() is None:
            self.watchdog.terminate()
            try:
                self.watchdog.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.watchdog.kill()
        self.owned = False


def running_local_cluster() -> str | None:
    """The address of a Ray cluster started on this machine with `ray start --head` (Ray's bootstrap file), if it
    still answers; None otherwise."""
    from ray._private.services import find_bootstrap_address

    address = find_bootstrap_address(None)
    if not address:
        return None
    try:
        check_ray_address(address, timeout_s=2.0)
    except Exception:  # noqa: BLE001 - a stale bootstrap file: nothing runs there
        return None
    return address


def init_ray(address: str | None, *, verb: str, local_resources: Mapping[str, float] | None = None,
             num_cpus: int | None = None, dashboard: bool = False, log_to_driver: bool = False,
             logging_level: int = logging.WARNING, worker_niceness: int | None = None) -> RayConnection:
    """Join or start Ray as described in the module docstring; says which on stderr. `local_resources`, `num_cpus`
    and `worker_niceness` only apply to a new local Ray (a joined cluster declares its own). `worker_niceness`: the
    nice value of Ray's worker processes (Ray's default 15 lets every other process of the machine preempt them:
    right for throughput work, wrong for timing)."""
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    import ray

    if ray.is_initialized():
        return RayConnection(owned=False, local=False, address=None)
    chosen = address or os.environ.get("RAY_ADDRESS") or None
    source = "--address" if address else "RAY_ADDRESS"
    if chosen is None:
        chosen = running_local_cluster()
        source = "the Ray cluster already running on this machine"
    if chosen and chosen != "local":
        _say(f"{verb}: joining Ray at {chosen} ({source}; `--address local` starts a separate Ray instead)")
        join_ray_cluster(chosen, hint=AUTH_HINT, logging_level=logging_level, log_to_driver=log_to_driver,
                         key=source)
        return RayConnection(owned=True, local=False, address=chosen)
    context = ray.init(address="local", num_cpus=num_cpus or os.cpu_count(), resources=dict(local_resources or {}),
                       include_dashboard=dashboard, dashboard_host="127.0.0.1", logging_level=logging_level,
                       log_to_driver=log_to_driver,
                       _system_config=None if worker_niceness is None else {"worker_niceness": int(worker_niceness)})
    session_dir = context.address_info["session_dir"]
    url = f"http://{context.dashboard_url}" if dashboard and context.dashboard_url else "off"
    _say(f"{verb}: started a local Ray for this command (dashboard {url}; it stops with the command)")
    _restrict_token_file()
    return RayConnection(owned=True, local=True, address=None, watchdog=start_watchdog(session_dir))


def start_watchdog(session_dir: str) -> subprocess.Popen:
    """A detached `python -m inas.ray_watchdog PID SESSION_DIR` that ends the Ray of `session_dir` once this process
    is gone (see `inas.ray_watchdog`)."""
    return subprocess.Popen([sys.executable, "-m", "inas.ray_watchdog", str(os.getpid()), session_dir],
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True, close_fds=True)


def _restrict_token_file() -> None:
    """Ray writes a generated token to ~/.ray/auth_token readable by everyone; make it owner-only (a user of this
    machine who reads it can run code on the cluster)."""
    path = Path.home() / ".ray" / "auth_token"
    try:
        info = path.stat()
        if info.st_mode & (stat.S_IRWXG | stat.S_IRWXO) and info.st_uid == os.getuid():
            path.chmod(stat.S_IRUSR | stat.S_IWUSR)
    except OSError:
        pass


def _say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def resource_shortfall(need: Mapping[str, float], total: Mapping[str, float]) -> list[str]:
    """Each resource of `need` (Ray resource name -> amount) beyond the cluster's `total` (`ray.cluster_resources()`),
    as "4 CPU (the cluster has 2)"."""
    return [f"{amount:g} {name} (the cluster has {total.get(name, 0.0):g})" for name, amount in need.items()
            if amount > 0 and total.get(name, 0.0) < amount]


def require_capacity(shortfall: str | None, *, local: bool, key: str, verb: str, remedy: str) -> None:
    """A local Ray started for this command cannot grow: a `shortfall` is a BadInputError on `key` (`remedy`: what to
    lower), where Ray would wait for the resources forever. On a joined cluster it is one warning on stderr and the
    caller waits: nodes may still join."""
    if shortfall is None:
        return
    if local:
        raise BadInputError(f"{shortfall}, more than this machine's local Ray offers; {remedy}, or join a larger "
                            "cluster with --address", key=key)
    print(f"{verb}: warning: {key}: {shortfall}: nothing starts until nodes join (an autoscaler's, or `ray start "
          "--address HEAD:6379` on another machine); Ctrl-C stops the wait", file=sys.stderr, flush=True)

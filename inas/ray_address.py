"""Fail fast on a Ray address that does not answer.

`ray.init(address=HOST:PORT)` retries for minutes when nothing listens there; every verb that joins a cluster (train,
lut, search) does it through `join_ray_cluster`, which calls `check_ray_address` first: it tries one TCP connection and
raises a BadInputError naming the address at once. A dashboard's HTTP address (what `ray job submit` takes, often
left in RAY_ADDRESS) is refused the same way, and so is any failure of `ray.init` to join (e.g. token
authentication on and no token here, or a token the cluster refuses), in one line.
"""

from __future__ import annotations

import logging
import socket

from inas.errors import BadInputError, clip

LOCAL_HOSTS = ("localhost", "127.0.0.1", "::1")


def _host_port(address: str) -> tuple[str, int] | None:
    """(host, port) of `HOST:PORT` or `ray://HOST:PORT`; None for anything Ray resolves itself (auto, local, ...)."""
    text = address.strip()
    if "://" in text:
        scheme, text = text.split("://", 1)
        if scheme != "ray":
            return None
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit():
        return None
    return host.strip("[]"), int(port)


def _candidate_hosts(host: str) -> list[str]:
    """`host`, plus this node's IP for a local host name (Ray itself connects to the node IP for those)."""
    hosts = [host]
    if host in LOCAL_HOSTS:
        try:
            from ray._private.services import get_node_ip_address

            node_ip = get_node_ip_address()
        except Exception:  # noqa: BLE001 - best effort: the loopback address is still tried
            node_ip = None
        if node_ip and node_ip not in hosts:
            hosts.append(node_ip)
    return hosts


def check_ray_address(address: str | None, key: str = "--address", timeout_s: float = 5.0) -> None:
    """BadInputError at once if `address` is an HTTP URL or nothing accepts a TCP connection at it (HOST:PORT or
    ray://HOST:PORT); `auto`, `local`, None and other forms are left to Ray."""
    if not address:
        return
    if address.strip().lower().startswith(("http://", "https://")):
        raise BadInputError(f"{address} is an HTTP address (a dashboard's, which `ray job submit` takes), not a Ray "
                            "cluster's: pass the head node's GCS address (HOST:6379), ray://HOST:10001 for Ray "
                            "Client, or auto on a cluster node", key=key)
    parsed = _host_port(address)
    if parsed is None:
        return
    host, port = parsed
    reason = "no answer"
    for candidate in _candidate_hosts(host):
        try:
            with socket.create_connection((candidate, port), timeout=timeout_s):
                return
        except OSError as exc:
            reason = exc.strerror or type(exc).__name__
    raise BadInputError(f"cannot reach a Ray cluster at {address}: nothing answers there ({reason}); start the head "
                        "node with `ray start --head` and pass its address (HOST:6379, ray://HOST:10001 for Ray "
                        "Client, or auto on a cluster node)", key=key)


def join_ray_cluster(address: str, hint: str = "", *, logging_level: int = logging.WARNING,
                     log_to_driver: bool = False, key: str = "--address") -> None:
    """`ray.init` on the cluster at `address` after `check_ray_address`; a failure to join is a BadInputError on
    `key` (with `hint` appended, e.g. how to pass the authentication token), Ray's reason on one line."""
    check_ray_address(address, key=key)
    import ray
    from ray.exceptions import RayError  # e.g. AuthenticationError: token authentication on, but no token here

    try:
        ray.init(address=address, logging_level=logging_level, log_to_driver=log_to_driver)
    except (ConnectionError, RuntimeError, ValueError, RayError) as exc:
        if _token_refused(exc):
            raise BadInputError(f"the Ray cluster at {address} refused this machine's authentication token (Ray: "
                                f"InvalidAuthToken){hint}", key=key) from None
        raise BadInputError(f"cannot connect to the Ray cluster at {address} ({clip(str(exc), 400)}){hint}",
                            key=key) from None


def _token_refused(exc: BaseException | None) -> bool:
    """Whether the GCS refused the token somewhere in `exc`'s chain: ray.init reports only "Failed to connect to Ray
    cluster at IP:PORT" and keeps the refusal (AuthenticationError "InvalidAuthToken") in the errors it chains."""
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        if "InvalidAuthToken" in str(exc):
            return True
        seen.add(id(exc))
        exc = exc.__cause__ or exc.__context__
    return False

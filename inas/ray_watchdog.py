"""`python -m inas.ray_watchdog PID SESSION_DIR`: end a local Ray once the process that started it is gone.

A verb that starts its own local Ray (see `inas.ray_session`) starts this watchdog in its own process session. It
polls every `POLL_S` seconds; when PID no longer exists (the verb was killed, even with SIGKILL), it kills every
process of the Ray session (those whose command line names SESSION_DIR: the GCS server, the raylet, the dashboard
and its agents) and all their descendants (the worker processes). It exits on its own when that Ray is gone.
"""

from __future__ import annotations

import os
import sys
import time

import psutil

POLL_S = 0.5


def session_processes(session_dir: str) -> list[psutil.Process]:
    """The processes of the Ray session rooted at `session_dir`, with their descendants."""
    roots = []
    for proc in psutil.process_iter(["cmdline"]):
        if proc.pid == os.getpid():  # this watchdog names the session too
            continue
        try:
            if any(session_dir in part for part in proc.info["cmdline"] or ()):
                roots.append(proc)
        except (psutil.Error, TypeError):
            continue
    found = {p.pid: p for p in roots}
    for root in roots:
        try:
            for child in root.children(recursive=True):
                found.setdefault(child.pid, child)
        except psutil.Error:
            continue
    return list(found.values())


def kill_session(session_dir: str) -> int:
    """SIGKILL every process of the session (see `session_processes`); returns how many were signalled."""
    procs = session_processes(session_dir)
    for proc in procs:
        try:
            proc.kill()
        except psutil.Error:
            pass
    psutil.wait_procs(procs, timeout=5)
    return len(procs)


def watch(pid: int, session_dir: str) -> None:
    """Block until `pid` is gone, then kill the session; return early if the session ends first."""
    try:
        parent = psutil.Process(pid)
        created = parent.create_time()
    except psutil.Error:
        kill_session(session_dir)
        return
    polls = 0
    while True:
        time.sleep(POLL_S)
        try:
            alive = parent.is_running() and parent.create_time() == created and \
                parent.status() != psutil.STATUS_ZOMBIE
        except psutil.Error:
            alive = False
        if not alive:
            kill_session(session_dir)
            return
        polls += 1
        if polls % 20 == 0 and not session_processes(session_dir):  # the Ray session ended normally
            return


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2 or not args[0].isdigit():
        print("usage: python -m inas.ray_watchdog PID SESSION_DIR", file=sys.stderr)
        return 2
    watch(int(args[0]), args[1])
    return 0


if __name__ == "__main__":
    sys.exit(main())

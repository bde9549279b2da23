"""Test-suite settings: one intra-op thread (deterministic and fast on a shared 2-core machine), no Ray telemetry."""

import os

import pytest

os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")

import torch  # noqa: E402

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def one_torch_thread():
    """One torch thread for a test module (restored after it); request it with
    `pytestmark = pytest.mark.usefixtures("one_torch_thread")`. The models of the deploy tests are tiny, and spare
    threads only spin when other processes share the cores."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(scope="module")
def problem_root(tmp_path_factory):
    """A search problem (tiny space, 64 px data, supernet, two fake latency tables: `test_search_evaluators`), one
    per test module."""
    from test_search_evaluators import make_problem

    root = tmp_path_factory.mktemp("problem")
    make_problem(root)
    return root

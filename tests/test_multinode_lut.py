"""Slow, multi-node on one host: `lut` with two devices, each offered by its own Ray worker node (`device:mn_a` on one,
`device:mn_b` on the other): every row of a device's table was measured on the node that offers its resource (the
table's `node_id` column), and each node's metrics endpoint counts the blocks its device measured."""

from __future__ import annotations

import time

import pytest
from multinode_cluster import local_cluster, time_limit
from test_latency_build import TINY_SPACE
from test_search_progress import metric_values, scrape

from inas.config import parse_config
from inas.latency import build_tables, config_blocks, read_table, table_path
from inas.progress import LUT_BLOCKS

pytestmark = pytest.mark.slow


def test_lut_devices_measure_on_the_nodes_offering_their_resource(tmp_path):
    config = parse_config({"space": TINY_SPACE, "lut": {
        "input_size": [32, 64], "warmup_runs": 1, "runs": 3, "flush_every": 50, "node_lock": False,
        "devices": [{"name": "mn_a", "threads": 1}, {"name": "mn_b", "threads": 1}]}})
    keys = config_blocks(config)
    with time_limit(300), local_cluster([{"resources": {"device:mn_a": 1}},
                                         {"resources": {"device:mn_b": 1}}]) as (cluster, (node_a, node_b)):
        reports = build_tables(config, tmp_path, progress=False)
        assert {r.device: r.measured for r in reports} == {"mn_a": len(keys), "mn_b": len(keys)}
        for device, node in (("mn_a", node_a), ("mn_b", node_b)):
            table = read_table(table_path(tmp_path, device))
            assert len(table) == len(keys)
            assert set(table["node_id"]) == {node.node_id}, device
        # each node's Prometheus endpoint counts the blocks of its device (exported every second: polled)
        for device, node in (("mn_a", node_a), ("mn_b", node_b)):
            deadline = time.time() + 60
            counted = 0.0
            while time.time() < deadline:
                values = metric_values(scrape(node.metrics_export_port), f"ray_{LUT_BLOCKS}")
                counted = sum(v for labels, v in values.items() if f'device="{device}"' in labels)
                if counted == len(keys):
                    break
                time.sleep(1)
            assert counted == len(keys), device

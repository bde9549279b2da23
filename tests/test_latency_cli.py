"""`lut` CLI: arguments, block count line, bad input; the node-wide measurement lock serialises holders."""

from __future__ import annotations

import threading
import time

import pytest

from inas.latency.devices import node_lock
from inas.run import main


def test_lut_help_lists_actions(capsys):
    with pytest.raises(SystemExit):
        main(["lut", "--help"])
    out = capsys.readouterr().out
    assert "validate" in out and "--address" in out and "--samples" in out


def test_bad_config_and_bad_samples_exit_2(tmp_path, capsys):
    assert main(["lut", "-c", str(tmp_path / "missing.yaml")]) == 2
    assert "config file not found" in capsys.readouterr().err
    bad = tmp_path / "bad.yaml"
    bad.write_text("lut: {devices: [{name: a, backend: tpu}]}\n")
    assert main(["lut", "-c", str(bad)]) == 2
    assert "lut.devices[0].backend" in capsys.readouterr().err
    ok = tmp_path / "ok.yaml"
    ok.write_text("data: {image_size: 64}\n")
    assert main(["lut", "validate", "-c", str(ok), "--samples", "0", "-o", str(tmp_path)]) == 2
    captured = capsys.readouterr()
    assert "blocks: 2522 at input 64x64" in captured.out and "--samples" in captured.err


def test_validate_without_a_table_names_the_missing_file(tmp_path, capsys):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("data: {image_size: 64}\nlut: {devices: [{name: dev0}]}\n")
    assert main(["lut", "validate", "-c", str(cfg), "-o", str(tmp_path / "luts"), "--samples", "2"]) == 2
    err = capsys.readouterr().err
    assert "dev0.parquet" in err and "latency table not found" in err


def test_node_lock_serialises_holders(tmp_path):
    lock = tmp_path / "node.lock"
    order = []

    def hold():
        with node_lock(True, lock):
            order.append("a-in")
            time.sleep(0.3)
            order.append("a-out")

    thread = threading.Thread(target=hold)
    thread.start()
    time.sleep(0.05)
    t0 = time.perf_counter()
    with node_lock(True, lock):
        order.append("b-in")
        waited = time.perf_counter() - t0
    thread.join()
    assert order == ["a-in", "a-out", "b-in"] and waited > 0.15
    with node_lock(False, lock):  # disabled: no waiting, no file needed
        pass

"""`lut` and `lut validate` end to end on a tiny space (a few dozen blocks at 32x64): in-process (fast) for
resuming, settings checks and validation outputs, and the resource check against a faked cluster; on Ray (slow:
one module-scoped local instance offering two device resources) for two logical devices measured in one run and
for devices that no node offers."""

from __future__ import annotations

import logging
import os
import re
import shutil
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import yaml

from inas.config import parse_config
from inas.errors import BadInputError
from inas.latency import (
    Correction,
    Figures,
    LatencyPredictor,
    build_tables,
    config_blocks,
    read_table,
    table_path,
    validate_tables,
    write_table,
)
from inas.latency.validate import RunDrift, run_drift
from inas.space import sample_max, sample_min

STAGE_WIDTHS = {"stem": 32, "stage_1": 16, "stage_2": 24, "stage_3": 40, "stage_4": 80, "stage_5": 112,
                "stage_6": 192, "stage_7": 320}
TINY_SPACE = {
    "stages": {name: {"widths": [w]} for name, w in STAGE_WIDTHS.items()},
    "transport": {f"level_{i}": {"connections": [i], "kernels": [3]} for i in range(5)},
    "decoder": {f"level_{i}": {"connections": [i, i + 1] if i < 4 else [4], "kernels": [3]} for i in range(5)},
}
TINY_SPACE["stages"]["stage_3"]["kernels"] = [3, 5]


def tiny_config(devices=None, **lut):
    """Two logical devices (1 and 2 threads) by default; node_lock off: a test must neither wait for nor disturb a
    real `lut` run on the same machine."""
    devices = devices or [{"name": "tiny_a", "threads": 1}, {"name": "tiny_b", "threads": 2}]
    return parse_config({"space": TINY_SPACE, "lut": {"input_size": [32, 64], "warmup_runs": 1, "runs": 3,
                                                       "flush_every": 5, "node_lock": False, "devices": devices,
                                                       **lut}})


ONE_DEVICE = [{"name": "tiny_a", "threads": 1}]


@pytest.fixture(scope="module")
def built_in_process(tmp_path_factory):
    out = tmp_path_factory.mktemp("lut")
    config = tiny_config(ONE_DEVICE)
    (report,) = build_tables(config, out, progress=False, in_process=True)
    return config, out, report


def test_in_process_table_is_complete_and_predicts(built_in_process):
    config, out, report = built_in_process
    keys = config_blocks(config)
    assert (report.blocks, report.reused, report.measured) == (len(keys), 0, len(keys))
    table = read_table(table_path(out, "tiny_a"))
    assert len(table) == len(keys) and (table["latency_ms"] > 0).all() and (table["runs"] >= 3).all()
    assert table["torch_version"].str.len().min() > 0 and table["onnxruntime_version"].str.len().min() > 0
    space = config.space.build()
    predictor = LatencyPredictor(table_path(out, "tiny_a"), space)
    assert predictor.input_hw == (32, 64)
    assert 0 < predictor.predict(sample_min(space)) <= predictor.predict(sample_max(space))


def test_half_table_is_completed_not_remeasured(built_in_process, tmp_path):
    config, out, _ = built_in_process
    full = read_table(table_path(out, "tiny_a"))
    half = full.iloc[: len(full) // 2].assign(latency_ms=777.0)  # a marker no measurement produces
    write_table(table_path(tmp_path, "tiny_a"), half)
    (report,) = build_tables(config, tmp_path, progress=False, in_process=True)
    assert (report.reused, report.measured) == (len(half), len(full) - len(half))
    done = read_table(table_path(tmp_path, "tiny_a"))
    assert len(done) == len(full) and set(done["block"]) == set(full["block"])
    assert (done[done["block"].isin(half["block"])]["latency_ms"] == 777.0).all()
    assert (done[~done["block"].isin(half["block"])]["latency_ms"] < 777.0).all()
    (again,) = build_tables(config, tmp_path, progress=False, in_process=True)  # complete: nothing to do
    assert (again.reused, again.measured) == (len(full), 0)


def test_entries_timed_during_drift_are_measured_again(built_in_process, tmp_path):
    config, out, _ = built_in_process
    full = read_table(table_path(out, "tiny_a"))
    reference = np.full(len(full), 2.0)
    reference[:3] = 2.3  # three rows timed while the machine ran 15 % slower
    reference[3] = np.nan  # a row without a reference timing never counts as drifted
    write_table(table_path(tmp_path, "tiny_a"), full.assign(latency_ms=777.0, reference_ms=reference))
    (report,) = build_tables(config, tmp_path, progress=False, in_process=True, retime_drifted_pct=10)
    assert (report.retimed, report.reused, report.measured) == (3, len(full) - 3, 3)
    done = read_table(table_path(tmp_path, "tiny_a")).set_index("block")
    assert len(done) == len(full)
    assert (done.loc[full["block"].iloc[:3], "latency_ms"] < 777.0).all()
    assert (done.loc[full["block"].iloc[3:], "latency_ms"] == 777.0).all()
    (again,) = build_tables(config, tmp_path, progress=False, in_process=True)  # without the flag: nothing to do
    assert (again.retimed, again.reused, again.measured) == (0, len(full), 0)


def test_drifted_rows_compare_each_reference_with_the_tables_median():
    from inas.latency.build import drifted_rows

    frame = pd.DataFrame({"reference_ms": [1.0, 1.0, 1.0, 1.06, 0.93, np.nan, 0.0]})
    assert drifted_rows(frame, 5).tolist() == [False, False, False, True, True, False, False]
    assert not drifted_rows(frame, 10).any()
    assert not drifted_rows(pd.DataFrame({"latency_ms": [1.0]}), 5).any()  # a table written before the column


def test_cli_refuses_a_bad_retime_percentage(tmp_path, capsys):
    from inas.run import main

    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump({"space": TINY_SPACE, "lut": {"input_size": [32, 64], "devices": ONE_DEVICE}}))
    for argv, message in ((["lut", "-c", str(config), "--retime-drifted", "0"], "expected a percentage > 0"),
                          (["lut", "validate", "-c", str(config), "--retime-drifted", "5"], "only applies")):
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert "--retime-drifted" in err and message in err and len(err.strip().splitlines()) == 1


def test_existing_table_with_other_settings_is_refused(built_in_process, tmp_path):
    _, out, _ = built_in_process
    write_table(table_path(tmp_path, "tiny_a"), read_table(table_path(out, "tiny_a")).assign(threads=2))
    with pytest.raises(BadInputError, match="threads"):
        build_tables(tiny_config(ONE_DEVICE), tmp_path, progress=False, in_process=True)


def test_existing_table_that_is_a_symlink_loop_is_refused(tmp_path):
    """A table path that cannot be looked up is an error, not "no table yet" (which rebuilt the whole table and
    replaced the link)."""
    table_path(tmp_path, "tiny_a").symlink_to("tiny_a.parquet")
    with pytest.raises(BadInputError, match="symbolic links"):
        build_tables(tiny_config(ONE_DEVICE), tmp_path, progress=False, in_process=True)
    assert table_path(tmp_path, "tiny_a").is_symlink()


def test_validate_writes_table_plot_and_repeatability(built_in_process):
    config, out, _ = built_in_process
    results, frame = validate_tables(config, samples=2, out_dir=out, progress=False, in_process=True)
    (result,) = results
    assert result.device == "tiny_a" and result.networks == len(frame) == 2
    assert result.repeatability is not None and result.correction is None  # 2 networks: too few to fit
    saved = pd.read_parquet(out / "validation.parquet")
    assert {"arch_id", "arch", "device", "predicted_ms", "measured_ms", "block_sum_ms", "n_blocks", "run_drift",
            "measured_ms_round0", "measured_ms_round1", "reference_ms_round0", "reference_ms_round1",
            } <= set(saved.columns)
    assert (saved["measured_ms"] > 0).all() and (saved["predicted_ms"] == saved["block_sum_ms"]).all()
    table = LatencyPredictor(out / "tiny_a.parquet", correction=None)
    drift = run_drift(table.table_reference_network_ms, saved["reference_network_ms"].to_numpy())
    block_drift = run_drift(table.table_reference_ms, saved["reference_ms"].to_numpy())
    assert drift is not None and (saved["run_drift"] == drift).all() and (saved["run_drift_network"] == drift).all()
    assert block_drift is not None and (saved["run_drift_block"] == block_drift).all()
    assert result.drift_source == "network" and result.drift_pct == pytest.approx(100 * (drift - 1))
    assert result.block_drift_pct == pytest.approx(100 * (block_drift - 1))
    assert result.reference_scaled == Figures.of(saved["block_sum_ms"].to_numpy() * drift,
                                                 saved["measured_ms"].to_numpy())
    assert (out / "validation.png").stat().st_size > 1000
    assert not (out / "tiny_a.correction.json").exists() and not (out / "tiny_a.correction-candidate.json").exists()
    assert result.saved_before == {} and result.applied is None


def test_table_rows_carry_the_reference_network_time(built_in_process):
    _, out, report = built_in_process
    values = read_table(table_path(out, "tiny_a"))["reference_network_ms"]
    assert values.gt(0).all()  # timed before the first block (and again once a minute)
    lo, mid, hi = report.reference_network
    assert lo <= mid <= hi and mid == pytest.approx(values.median())


def test_validation_without_reference_network_times_scales_by_the_reference_block(built_in_process, tmp_path):
    """A run that times no reference network (`reference_network_every_s: 0`, or an older table) falls back to the
    reference block's drift."""
    _, out, _ = built_in_process
    shutil.copy(out / "tiny_a.parquet", tmp_path / "tiny_a.parquet")
    config = tiny_config(ONE_DEVICE, reference_network_every_s=0)
    (result,), frame = validate_tables(config, samples=2, out_dir=tmp_path, progress=False, rounds=1,
                                       in_process=True)
    assert frame["reference_network_ms"].isna().all() and frame["run_drift_network"].isna().all()
    block_drift = run_drift(LatencyPredictor(tmp_path / "tiny_a.parquet", correction=None).table_reference_ms,
                            frame["reference_ms"].to_numpy())
    assert result.drift_source == "block" and (frame["run_drift"] == block_drift).all()
    assert result.drift_pct == pytest.approx(result.block_drift_pct)


def test_a_candidate_correction_is_applied_only_after_a_later_run_confirms_it(built_in_process, tmp_path):
    config, out, _ = built_in_process
    lut = tmp_path / "lut"
    lut.mkdir()
    shutil.copy(out / "tiny_a.parquet", lut / "tiny_a.parquet")
    applied, candidate = lut / "tiny_a.correction.json", lut / "tiny_a.correction-candidate.json"
    # networks take twice their block sum: every fit beats the sum, but the first run only proposes it
    candidate_fit = Correction(0.0, 2.0, 0.0, "scale", 12, 50.0, 1.0, "tiny_a")
    candidate_fit.save(candidate)
    (first,), frame = validate_tables(config, samples=3, out_dir=lut, progress=False, rounds=1, in_process=True)
    beats = first.saved_before["candidate"].mape_pct < first.reference_scaled.mape_pct
    assert applied.exists() == beats and (first.applied_role == "candidate") == beats
    assert not candidate.exists()  # 3 networks: no new fit, the judged candidate is used up
    if beats:
        assert Correction.load(applied).confirmations == 1
        assert np.allclose(frame["predicted_ms"], 2.0 * frame["block_sum_ms"])  # what the predictor now says
    else:
        assert (frame["predicted_ms"] == frame["block_sum_ms"]).all()


def test_run_drift_prefers_the_reference_network_and_falls_back_to_the_block():
    class Table:  # the two stored references of a LatencyPredictor
        table_reference_ms, table_reference_network_ms = 2.0, 10.0

    both = RunDrift.of(Table(), np.array([2.2, 2.2]), np.array([9.0, np.nan]))
    assert both.network == pytest.approx(0.9) and both.block == pytest.approx(1.1)
    assert both.source == "network" and both.factor == pytest.approx(0.9) and both.pct(both.block) == pytest.approx(10)
    block_only = RunDrift.of(Table(), np.array([2.2]), np.array([np.nan]))
    assert block_only.source == "block" and block_only.factor == pytest.approx(1.1)
    neither = RunDrift.of(Table(), np.array([np.nan]), np.array([np.nan]))
    assert neither.source == "" and neither.factor == 1.0 and np.isnan(neither.pct(neither.chosen))


def test_run_drift_is_this_runs_median_reference_over_the_tables():
    assert run_drift(2.0, np.array([2.2, 2.4, np.nan, 2.0])) == pytest.approx(1.1)
    assert run_drift(float("nan"), np.array([1.0, 1.2])) is None  # a table without reference timings
    assert run_drift(2.0, np.array([np.nan, np.nan])) is None  # a backend that times no reference


# ----- on Ray -----------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def ray_local():
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    import ray

    if ray.is_initialized():
        ray.shutdown()
    ray.init(num_cpus=2, resources={"device:tiny_a": 1, "device:tiny_b": 1}, include_dashboard=False,
             logging_level=logging.WARNING, log_to_driver=False)
    yield ray
    ray.shutdown()


def test_missing_resource_is_checked_before_any_actor_starts(monkeypatch, tmp_path):
    import ray

    from inas.latency import devices
    from inas.ray_session import RayConnection

    monkeypatch.setattr(devices, "connect_ray", lambda address, specs: RayConnection(owned=False, local=False,
                                                                                      address=None))
    monkeypatch.setattr(ray, "cluster_resources", lambda: {"CPU": 2.0, "device:tiny_a": 1.0})
    monkeypatch.setattr(ray, "available_resources", lambda: {"CPU": 2.0, "device:tiny_a": 1.0})
    started = []
    monkeypatch.setattr(devices, "start_actors", lambda specs: started.append(specs))
    config = tiny_config([{"name": "tiny_a"}, {"name": "phone", "resource": "device:pixel7", "actors": 2}])
    with pytest.raises(BadInputError) as info:
        build_tables(config, tmp_path, progress=False)
    assert "'device:pixel7'" in str(info.value) and "lut.devices[1].resource" in str(info.value)
    assert "ray start --resources" in str(info.value) and not started
    config = tiny_config([{"name": "tiny_a", "actors": 3}])
    with pytest.raises(BadInputError, match="asks for 3 actors but the cluster offers only 1"):
        build_tables(config, tmp_path, progress=False)


@pytest.mark.slow
def test_two_devices_measured_in_one_run_on_ray(ray_local, tmp_path, capsys):
    config = tiny_config()
    keys = config_blocks(config)
    reports = build_tables(config, tmp_path, progress=False)
    # the fixture's Ray keeps Ray's worker default (15, more under a niced pytest): said
    assert re.search(r"run at niceness (1[5-9])\b", capsys.readouterr().err)
    assert {r.device: (r.blocks, r.measured) for r in reports} == {"tiny_a": (len(keys), len(keys)),
                                                                    "tiny_b": (len(keys), len(keys))}
    for name, threads in (("tiny_a", 1), ("tiny_b", 2)):
        table = read_table(table_path(tmp_path, name))
        assert len(table) == len(keys) and set(table["device"]) == {name} and set(table["threads"]) == {threads}
        assert (table["latency_ms"] > 0).all()
    assert ray_local.is_initialized()  # a Ray it did not start is left running


@pytest.mark.slow
def test_device_no_node_offers_fails_fast(ray_local, tmp_path):
    config = tiny_config([{"name": "tiny_a"}, {"name": "phone", "resource": "device:pixel7"}])
    with pytest.raises(BadInputError) as info:
        build_tables(config, tmp_path, progress=False)
    assert "device:pixel7" in str(info.value) and "lut.devices[1].resource" in str(info.value)
    assert not table_path(tmp_path, "phone").exists() and not table_path(tmp_path, "tiny_a").exists()


@pytest.mark.slow
def test_cli_reports_a_missing_gpu_resource_as_bad_input(ray_local, tmp_path, capsys):
    from inas.run import main

    config = tmp_path / "gpu.yaml"
    config.write_text(yaml.safe_dump({"space": TINY_SPACE, "lut": {
        "input_size": [32, 32], "devices": [{"name": "gpu0", "resource": "GPU", "backend": "torch-cuda"}]}}))
    assert main(["lut", "-c", str(config), "-o", str(tmp_path), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error:") and "'GPU'" in err and "lut.devices[0].resource" in err


def test_a_ray_started_for_timing_runs_its_workers_unniced(tmp_path):
    """Ray nices its workers to 15 by default; a measuring actor at 15 yields to every other process of the node."""
    import ray

    from inas.latency.devices import warn_if_niced
    from inas.ray_session import init_ray

    if ray.is_initialized():
        ray.shutdown()
    connection = init_ray("local", verb="lut", num_cpus=1, worker_niceness=0)
    try:
        assert ray.get(ray.remote(lambda: os.nice(0)).remote()) == 0
    finally:
        connection.close()
    assert warn_if_niced("cpu", [0, 0]) is None
    assert "RAY_worker_niceness=0" in warn_if_niced("cpu", [0, 15])


def test_a_noisy_machine_is_named_in_one_warning_line():
    from inas.cli.lut import build_noise_warning, validation_noise_warning
    from inas.latency import DeviceValidation

    assert build_noise_warning("ov", "network", (90.0, 100.0, 115.0)) is None
    warning = build_noise_warning("ov", "network", (76.0, 100.0, 115.0))
    assert warning is not None and "ov" in warning and "24 %" in warning and "\n" not in warning
    steady, noisy = Figures(0.99, 2.0, 100.0, 90.0), Figures(0.51, 12.3, 50.0, 24.0)
    result = DeviceValidation("ov", noisy, None, None, 50, 1.0, repeatability=steady)
    assert validation_noise_warning(result) is None
    warning = validation_noise_warning(DeviceValidation("ov", noisy, None, None, 50, 1.0, repeatability=noisy))
    assert warning is not None and "50 %" in warning and "quiet machine" in warning
    assert validation_noise_warning(DeviceValidation("ov", noisy, None, None, 50, 1.0)) is None  # one round


def test_a_busy_device_resource_is_said_not_waited_for_silently(monkeypatch, capsys):
    """A second lut on a cluster whose device resource another lut holds waited without a word until it was
    released; it says so once, naming the device and the resource."""
    import ray

    from inas.latency.devices import DeviceSpec, check_resources, warn_if_busy

    assert warn_if_busy("cpu", "device:cpu", 1, 1, 1) is None
    spec = DeviceSpec("cpu0", "device:cpu0", "onnxruntime", 1, 1, 1, 1, 3, node_lock=False)
    monkeypatch.setattr(ray, "cluster_resources", lambda: {"CPU": 2.0, "device:cpu0": 1.0})
    monkeypatch.setattr(ray, "available_resources", lambda: {"CPU": 2.0})
    check_resources([spec])
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "device 'cpu0' waits for its Ray resource 'device:cpu0'" in err[0], err
    assert "offers 1, 0 free now" in err[0]
    monkeypatch.setattr(ray, "available_resources", lambda: {"CPU": 2.0, "device:cpu0": 1.0})
    check_resources([spec])
    assert capsys.readouterr().err == ""


def test_a_dead_measuring_actor_is_one_line_not_a_traceback(monkeypatch):
    """kill -9 of a lut actor mid-table: ray.get's ActorDiedError ended `lut` with a traceback and exit 1."""
    from collections import deque

    import ray
    from ray.exceptions import ActorDiedError

    from inas.errors import RunFailedError
    from inas.latency.devices import dispatch

    class Method:
        def remote(self, *args):
            return "ref"

    actor = SimpleNamespace(measure_blocks=Method())
    monkeypatch.setattr(ray, "wait", lambda refs, num_returns: (refs[:1], refs[1:]))

    def dead(ref):
        raise ActorDiedError()

    monkeypatch.setattr(ray, "get", dead)
    with pytest.raises(RunFailedError, match=r"^the actor measuring device 'cpu0' died \(.*\); the rest$"):
        dispatch({"cpu0": [actor]}, {"cpu0": deque([1, 2])}, "measure_blocks", lambda row: ([row],),
                 lambda device, rows: None, lost_hint="; the rest")

"""Latency lookup tables: block enumeration, the table schema, device actors and backends, the predictor.

    keys = enumerate_blocks(space, (H, W))                  # every block shape of the space
    reports = build_tables(config, out_dir)                  # `lut`: one Parquet table per device (Ray actors)
    predictor = LatencyPredictor("runs/lut/cpu.parquet", space)
    predictor.predict(arch); predictor.predict_many(archs)  # ms
    results, frame = validate_tables(config, samples=50)     # `lut validate`
"""

from inas.latency.backends import BACKENDS, Runner, Timing, build_block, build_network
from inas.latency.blocks import (
    BLOCK_KINDS,
    BlockKey,
    SpaceGeometry,
    arch_blocks,
    count_by_kind,
    enumerate_blocks,
    parse_input_size,
)
from inas.latency.build import BuildReport, build_tables, config_blocks, device_specs, lut_input_hw
from inas.latency.devices import DeviceActor, DeviceSpec
from inas.latency.predictor import (
    BlockSums,
    Correction,
    LatencyPredictor,
    candidate_correction_path,
    correction_path,
)
from inas.latency.table import TABLE_COLUMNS, read_table, table_path, write_table
from inas.latency.validate import DeviceValidation, Figures, fit_correction, validate_tables

__all__ = [
    "BACKENDS", "BLOCK_KINDS", "BlockKey", "BlockSums", "BuildReport", "Correction", "DeviceActor", "DeviceSpec",
    "DeviceValidation", "Figures", "LatencyPredictor", "Runner", "SpaceGeometry", "TABLE_COLUMNS", "Timing",
    "arch_blocks", "build_block", "build_network", "build_tables", "candidate_correction_path", "config_blocks",
    "correction_path",
    "count_by_kind", "device_specs", "enumerate_blocks", "fit_correction", "lut_input_hw", "parse_input_size",
    "read_table", "table_path", "validate_tables", "write_table",
]

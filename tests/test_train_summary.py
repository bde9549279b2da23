"""`summary.json` of a training run: written and read back as a checked TrainSummary; bad files name file and key."""

from __future__ import annotations

import json
import math

import pytest

from inas.errors import BadInputError
from inas.train.summary import SUMMARY_NAME, TrainSummary, read_train_summary, write_train_summary


def _summary(**changes) -> TrainSummary:
    fields = dict(iterations=8, start_iteration=4, wall_s=1.5, images_per_s=float("nan"), world_size=2,
                  device="cpu", precision="fp32", validation={"max": {"maxF": 0.5, "mae": 0.2}},
                  supernet="/runs/x/supernet.pt")
    return TrainSummary(**{**fields, **changes})


def test_round_trip_keeps_every_field_and_nan_throughput(tmp_path):
    write_train_summary(tmp_path, _summary())
    back = read_train_summary(tmp_path)
    assert back.model_dump(exclude={"images_per_s"}) == _summary().model_dump(exclude={"images_per_s"})
    assert math.isnan(back.images_per_s)


@pytest.mark.parametrize(("text", "message"), [
    ("{not json", "cannot read the training summary"),
    ("[1, 2]", "expected a JSON object, got"),
    ("\udcff", "cannot read"),
])
def test_unreadable_files_name_the_file(tmp_path, text, message):
    (tmp_path / SUMMARY_NAME).write_text(text, encoding="utf-8", errors="surrogateescape")
    with pytest.raises(BadInputError, match=message) as info:
        read_train_summary(tmp_path)
    assert info.value.path == str(tmp_path / SUMMARY_NAME)


@pytest.mark.parametrize(("change", "key"), [
    ({"iterations": -1}, "iterations"),
    ({"validation": {"max": {"maxF": "high"}}}, "validation.max.maxF"),
    ({"supernet": None}, "supernet"),
    ({"wall_s": "Infinity"}, "wall_s"),
    ({"extra_key": 1}, "extra_key"),
])
def test_bad_fields_name_the_key(tmp_path, change, key):
    doc = {**_summary().model_dump(), "images_per_s": 3.0, **change}
    (tmp_path / SUMMARY_NAME).write_text(json.dumps(doc), encoding="utf-8")
    with pytest.raises(BadInputError) as info:
        read_train_summary(tmp_path)
    assert info.value.key == key


def test_missing_file_is_bad_input(tmp_path):
    with pytest.raises(BadInputError, match="cannot read"):
        read_train_summary(tmp_path)

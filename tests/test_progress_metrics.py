"""The Ray metric names of `inas.progress`: each has a description and tag keys; `train --cluster` workers publish
their iteration and loss (checked with an in-memory sink: the Prometheus round trip of the same sink type is tested in
test_search_progress.py)."""

from __future__ import annotations

import inas.progress as progress
from inas.train.cluster import publish_train_progress


def test_every_metric_has_a_description_and_tags():
    names = [progress.SEARCH_EVALUATIONS, progress.SEARCH_BEST, progress.SEARCH_HYPERVOLUME, progress.LUT_BLOCKS,
             progress.TRAIN_ITERATION, progress.TRAIN_LOSS]
    for name in names:
        assert name.startswith("inas_") and progress._DESCRIPTIONS[name] and progress._TAGS[name]
    assert set(progress.COUNTERS) <= set(names)


def test_train_workers_publish_iteration_and_loss(monkeypatch):
    recorded: list[tuple[str, float, dict]] = []

    class Sink:
        def set(self, name, value, tags):
            recorded.append((name, value, dict(tags)))

    monkeypatch.setattr(progress, "ray_sink", lambda names: Sink())
    publish_train_progress(1, {"iteration": 40.0, "loss": 0.25, "lr": 1e-3})
    assert recorded == [(progress.TRAIN_ITERATION, 40.0, {"rank": "1"}), (progress.TRAIN_LOSS, 0.25, {"rank": "1"})]
    recorded.clear()
    publish_train_progress(0, {"iteration": 41.0})  # a validation-only report: no loss
    assert recorded == [(progress.TRAIN_ITERATION, 41.0, {"rank": "0"})]


def test_nothing_is_published_without_ray(monkeypatch):
    monkeypatch.setattr(progress, "ray_sink", lambda names: None)
    publish_train_progress(0, {"iteration": 1.0, "loss": 1.0})  # no error, nothing to publish to

"""Import of original iNAS checkpoints and our own supernet files."""

from __future__ import annotations

import random

import pytest
import torch

from inas.errors import BadInputError
from inas.nn import Supernet, load_original_checkpoint, load_supernet, load_supernet_weights, save_supernet
from inas.nn.testing import perturb_, small_space
from inas.space import inas_space, sample_uniform


@pytest.fixture(scope="module")
def full_supernet():
    torch.manual_seed(0)
    return perturb_(Supernet(inas_space()), seed=9).eval()


def _same_state(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def test_original_checkpoint_round_trip_with_module_prefix(full_supernet, tmp_path):
    path = tmp_path / "net_g_latest.pth"
    state = {f"module.{k}": v for k, v in full_supernet.state_dict().items()}
    torch.save({"params": state}, path)
    fresh = Supernet(inas_space())
    assert not _same_state(fresh, full_supernet)
    report = load_original_checkpoint(path, fresh)
    assert _same_state(fresh, full_supernet)
    assert report.loaded == len(state) and report.ignored == ()
    # 'state_dict' wrapper, in memory, without num_batches_tracked (older checkpoints) also loads
    plain = {k: v for k, v in full_supernet.state_dict().items() if not k.endswith("num_batches_tracked")}
    load_original_checkpoint({"state_dict": plain}, Supernet(inas_space()))


def test_original_checkpoint_errors_list_unknown_missing_and_shapes(full_supernet, tmp_path):
    state = dict(full_supernet.state_dict())
    del state["backbone.stage_3.0.depth_conv.convbn.ks_5"]
    state["backbone.stage_3.0.extra_head.weight"] = torch.zeros(3)
    state["decoder.decoder_dict.level_0.conv.conv.weight"] = torch.zeros(2, 24, 1, 1)
    path = tmp_path / "bad.pth"
    torch.save({"params": state}, path)
    with pytest.raises(BadInputError) as info:
        load_original_checkpoint(path, Supernet(inas_space()))
    message = str(info.value)
    assert str(path) in message
    assert "1 unknown keys (backbone.stage_3.0.extra_head.weight)" in message
    assert "1 missing keys (backbone.stage_3.0.depth_conv.convbn.ks_5)" in message
    head = "decoder.decoder_dict.level_0.conv.conv.weight"
    assert f"{head}: checkpoint (2, 24, 1, 1) vs expected (1, 24, 1, 1)" in message
    not_a_checkpoint = tmp_path / "notes.txt"
    not_a_checkpoint.write_text("hello")
    with pytest.raises(BadInputError, match="weights_only"):
        load_original_checkpoint(not_a_checkpoint, Supernet(inas_space()))
    with pytest.raises(BadInputError, match="file not found"):
        load_original_checkpoint(tmp_path / "missing.pth", Supernet(inas_space()))


def test_original_checkpoint_into_narrowed_space_shares_weights(full_supernet):
    space = small_space()
    small = Supernet(space).eval()
    report = load_original_checkpoint(full_supernet.state_dict(), small)
    assert "backbone.stage_5.5.depth_conv.convbn.ks_9" in report.ignored
    arch = sample_uniform(space, random.Random(4))  # valid in both spaces
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(small(x, arch), full_supernet(x, arch), rtol=0, atol=1e-6)


def test_own_supernet_file_round_trip(tmp_path):
    space = small_space()
    torch.manual_seed(0)
    net = perturb_(Supernet(space, num_classes=3, output_levels=(0, 2), head_activation=None), seed=1)
    path = tmp_path / "supernet.pth"
    save_supernet(net, path)
    loaded = load_supernet(path)
    assert loaded.space == space and loaded.num_classes == 3 and loaded.output_levels == (0, 2)
    assert loaded.head_activation is None and _same_state(loaded, net)
    with pytest.raises(BadInputError, match="weights do not match this supernet"):
        load_supernet_weights(path, Supernet(space, num_classes=1, output_levels=(0, 2)))


def test_weights_holding_nan_or_infinity_are_refused(tmp_path):
    """A supernet saved from a run that diverged: every score from it would be NaN."""
    supernet = Supernet(small_space())
    name, weight = next((k, v) for k, v in supernet.state_dict().items() if v.is_floating_point())
    weight.view(-1)[0] = float("inf")
    save_supernet(supernet, tmp_path / "supernet.pt")
    with pytest.raises(BadInputError, match=f"supernet.pt: entry '?{name}'? holds NaN or infinite values"):
        load_supernet(tmp_path / "supernet.pt")

"""List files: parsing, and `check_list` reporting every problem at once with line numbers."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image, ImageFile
from test_data_support import half_mask, random_rgb, truncate, write_image, write_sod_set

from inas.data.lists import ListCheckError, check_list, read_list
from inas.errors import BadInputError


def test_read_list_joins_root_and_skips_blank_and_comment_lines(tmp_path):
    (tmp_path / "a.lst").write_text("# header\nimg/1.jpg gt/1.png\n\n  img/2.jpg\tgt/2.png  \n")
    entries = read_list(tmp_path, "a.lst")
    assert [e.line_number for e in entries] == [2, 4]
    assert entries[0].image == tmp_path / "img/1.jpg"
    assert entries[1].label == tmp_path / "gt/2.png"
    assert entries[1].name == "2"


def test_read_list_reports_every_bad_line(tmp_path):
    (tmp_path / "a.lst").write_text("img/1.jpg gt/1.png\nonly_image.jpg\na b c\n")
    with pytest.raises(ListCheckError) as info:
        read_list(tmp_path, "a.lst")
    assert [p.line_number for p in info.value.problems] == [2, 3]
    assert "a.lst" in str(info.value)
    # image-only lines are fine for prediction lists
    (tmp_path / "b.lst").write_text("img/1.jpg\nimg/2.jpg gt/2.png\n")
    entries = read_list(tmp_path, "b.lst", require_labels=False)
    assert entries[0].label is None and entries[1].label == tmp_path / "gt/2.png"


@pytest.mark.parametrize("text", ["", "\n\n# only a comment\n"])
def test_empty_list_is_an_error(tmp_path, text):
    (tmp_path / "empty.lst").write_text(text)
    with pytest.raises(BadInputError, match="empty.lst.*empty"):
        check_list(tmp_path, "empty.lst", progress=False)


def test_missing_list_file_is_named(tmp_path):
    with pytest.raises(BadInputError, match="nope.lst: list file not found"):
        read_list(tmp_path, "nope.lst")


def test_check_list_passes_a_good_list(tmp_path):
    write_sod_set(tmp_path, n=3)
    entries = check_list(tmp_path, "set.lst", "sod", progress=False)
    assert len(entries) == 3


def test_check_list_reports_all_problems_with_line_numbers(tmp_path):
    rng = np.random.default_rng(0)
    write_sod_set(tmp_path, n=2)  # lines 1-2 are fine
    write_image(tmp_path / "img/trunc.jpg", random_rgb(rng, 60, 80), quality=95)
    truncate(tmp_path / "img/trunc.jpg")
    write_image(tmp_path / "gt/trunc.png", half_mask(60, 80))
    write_image(tmp_path / "img/small.jpg", random_rgb(rng, 30, 40))
    write_image(tmp_path / "gt/small.png", half_mask(31, 40))
    (tmp_path / "bad.lst").write_text(
        "img/0.jpg gt/0.png\n"
        "img/missing.jpg gt/1.png\n"
        "img/trunc.jpg gt/trunc.png\n"
        "img/small.jpg gt/small.png\n"
        "img/1.jpg gt/1.png\n"
    )
    with pytest.raises(ListCheckError) as info:
        check_list(tmp_path, "bad.lst", "sod", progress=False)
    problems = {p.line_number: p for p in info.value.problems}
    assert sorted(problems) == [2, 3, 4]
    assert "not found" in problems[2].what and problems[2].path.endswith("missing.jpg")
    assert "truncated" in problems[3].what and problems[3].path.endswith("trunc.jpg")
    assert "40x31" in problems[4].what and "40x30" in problems[4].what
    message = str(info.value)
    assert message.startswith(str(tmp_path / "bad.lst"))
    assert "3 problem(s)" in message.splitlines()[0]
    assert all(f"line {n}:" in message for n in (2, 3, 4))


def test_truncated_jpeg_is_caught_even_if_pil_tolerates_truncation(tmp_path, monkeypatch):
    monkeypatch.setattr(ImageFile, "LOAD_TRUNCATED_IMAGES", True)
    write_sod_set(tmp_path, n=1)
    write_image(tmp_path / "img/0.jpg", random_rgb(np.random.default_rng(1), 30, 40), quality=95)
    truncate(tmp_path / "img/0.jpg", 0.6)
    with pytest.raises(ListCheckError, match="line 1: .*0.jpg: corrupt or truncated"):
        check_list(tmp_path, "set.lst", progress=False)
    assert ImageFile.LOAD_TRUNCATED_IMAGES is True  # the global is restored


def test_corrupt_png_and_non_image_are_reported(tmp_path):
    write_sod_set(tmp_path, n=2)
    data = bytearray((tmp_path / "gt/0.png").read_bytes())
    data[-20] ^= 0xFF  # break a chunk CRC
    (tmp_path / "gt/0.png").write_bytes(bytes(data))
    (tmp_path / "img/1.jpg").write_text("not an image")
    with pytest.raises(ListCheckError) as info:
        check_list(tmp_path, "set.lst", progress=False)
    assert [(p.line_number, p.path.split("/")[-1]) for p in info.value.problems] == [(1, "0.png"), (2, "1.jpg")]


def test_seg_labels_must_be_single_channel(tmp_path):
    rng = np.random.default_rng(0)
    write_image(tmp_path / "a.png", random_rgb(rng, 8, 16))
    write_image(tmp_path / "a_label.png", random_rgb(rng, 8, 16))  # a colour-coded label
    write_image(tmp_path / "b.png", random_rgb(rng, 8, 16))
    Image.fromarray(np.zeros((8, 16), np.uint8)).save(tmp_path / "b_label.png")
    (tmp_path / "seg.lst").write_text("a.png a_label.png\nb.png b_label.png\n")
    with pytest.raises(ListCheckError) as info:
        check_list(tmp_path, "seg.lst", "seg", progress=False)
    assert [p.line_number for p in info.value.problems] == [1]
    assert "mode RGB" in info.value.problems[0].what
    assert len(check_list(tmp_path, "seg.lst", "sod", progress=False)) == 2  # an RGB SOD mask is converted


def test_decoding_check_names_seg_label_values_that_are_no_class(tmp_path):
    """`data check --decode -c CONFIG` (seg): a value outside the classes that no training crop happens to touch was
    never reported; now the whole label is checked (255 is the ignore index)."""
    rng = np.random.default_rng(0)
    labels = {"a": np.full((8, 16), 255, np.uint8), "b": np.zeros((8, 16), np.uint8)}
    labels["b"][7, 15] = 30  # one corner pixel
    for name, label in labels.items():
        write_image(tmp_path / f"{name}.png", random_rgb(rng, 8, 16))
        Image.fromarray(label).save(tmp_path / f"{name}_label.png")
    (tmp_path / "seg.lst").write_text("a.png a_label.png\nb.png b_label.png\n")
    assert len(check_list(tmp_path, "seg.lst", "seg", decode=True, progress=False)) == 2  # no class count: unchecked
    with pytest.raises(ListCheckError) as info:
        check_list(tmp_path, "seg.lst", "seg", decode=True, num_classes=19, progress=False)
    assert [p.line_number for p in info.value.problems] == [2]
    assert "label values [30] are outside 0..18" in info.value.problems[0].what

"""Every reference a reader may follow is in the repository: cited sections of docs/design.md exist, and nothing
cites the original's notes (`SPEC §N`, `SPEC.md`), which are not in the repository (docs/design.md §14)."""

from __future__ import annotations

import ast
import importlib.util
import re
import shutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DESIGN = ROOT / "docs" / "design.md"
SECTION = r"\d+(?:\.\d+)?"
DESIGN_CITATION = re.compile(rf"design\.md((?:,? ?§ ?{SECTION}(?:-{SECTION})?)+)")
HEADING = re.compile(rf"^(#{{2,3}}) ({SECTION})\.? \S")
SCANNED = ["inas", "tests", "benchmarks", "experiments", "docs", "README.md", "pyproject.toml", ".ci/run"]
TEXT_SUFFIXES = {".py", ".md", ".yaml", ".yml", ".toml", ""}


def load_respec():
    spec = importlib.util.spec_from_file_location("respec", ROOT / "docs" / "respec.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


respec = load_respec()


def design_sections(text: str | None = None) -> list[str]:
    text = DESIGN.read_text(encoding="utf-8") if text is None else text
    return [m[2] for m in (HEADING.match(line) for line in text.splitlines()) if m]


def files(*roots: str) -> list[Path]:
    found = []
    for name in roots:
        path = ROOT / name
        if path.is_dir():
            found += sorted(p for p in path.rglob("*") if p.is_file() and p.suffix in TEXT_SUFFIXES
                            and "__pycache__" not in p.parts)
        elif path.exists():
            found.append(path)
    return found


def cited_sections(text: str) -> list[str]:
    """Every section number a `design.md §...` citation names (ranges and lists included)."""
    return [n for m in DESIGN_CITATION.finditer(text) for n in re.findall(SECTION, m[1])]


def spec_citations(path: Path) -> list[str]:
    lines = path.read_text(encoding="utf-8").splitlines()
    return [f"{path.relative_to(ROOT)}:{n}: {line.strip()}" for n, line in enumerate(lines, 1)
            if respec.CITATION.search(line) or respec.BARE.search(line)]


def test_sections_are_numbered_in_order_with_an_anchor_each():
    lines = DESIGN.read_text(encoding="utf-8").splitlines()
    numbers, expected_top, expected_sub = [], 1, 1
    for index, line in enumerate(lines):
        match = HEADING.match(line)
        if not match:
            continue
        number = match[2]
        numbers.append(number)
        assert lines[index - 1] == f'<a id="s{number}"></a>', f"§{number}: the line above must be its anchor"
        if len(match[1]) == 2:
            assert number == str(expected_top), f"top-level sections must run 1, 2, ...: got §{number}"
            expected_top, expected_sub = expected_top + 1, 1
        else:
            assert number == f"{expected_top - 1}.{expected_sub}", f"§{number} out of order"
            expected_sub += 1
    assert len(numbers) == len(set(numbers)) and len(numbers) > 20


def test_every_cited_design_section_exists():
    sections = set(design_sections())
    missing = []
    for path in files(*SCANNED):
        text = path.read_text(encoding="utf-8")
        missing += [f"{path.relative_to(ROOT)}: §{n}" for n in cited_sections(text) if n not in sections]
    internal = re.findall(rf"§({SECTION})", DESIGN.read_text(encoding="utf-8"))
    missing += [f"docs/design.md: §{n}" for n in internal if n not in sections]
    assert not missing, "cited sections that docs/design.md does not have:\n" + "\n".join(missing)


def test_readme_links_the_design():
    assert "[docs/design.md](docs/design.md)" in (ROOT / "README.md").read_text(encoding="utf-8")


def test_no_spec_citations_outside_inas():
    own = {ROOT / "docs" / "respec.py", Path(__file__).resolve()}
    found = [c for p in files("tests", "benchmarks", "experiments", "docs") if p not in own for c in spec_citations(p)]
    assert not found, "\n".join(found)


def test_no_spec_citations_in_inas_and_readme():
    found = [c for p in files("inas", "README.md") for c in spec_citations(p)]
    assert not found, "run `python docs/respec.py inas README.md`:\n" + "\n".join(found)


def test_respec_targets_exist():
    sections = set(design_sections())
    targets = set(respec.MAPPING.values()) | {design for *_, design in respec.OVERRIDES}
    assert targets <= sections, sorted(targets - sections)


@pytest.mark.parametrize(("line", "path", "expected"), [
    ("(SPEC §5.4)", "inas/x.py", "(docs/design.md §8)"),
    ("(SPEC §2.1-2.2) x", "inas/x.py", "(docs/design.md §6.1-6.2) x"),
    ("(SPEC §5.5, §6).", "inas/x.py", "(docs/design.md §10)."),
    ("the state_dict keys (SPEC §3)", "inas/x.py", "the state_dict keys (docs/design.md §6.4)"),
    ("convert (SPEC §3)", "inas/x.py", "convert (docs/design.md §6.3)"),
    ("sampler (SPEC §4)", "inas/space/sampling.py", "sampler (docs/design.md §5.6)"),
    ("quirks (SPEC section 7).", "inas/x.py", "quirks (docs/design.md §11.1)."),
    ("Faithful (SPEC.md); x", "README.md", "Faithful (docs/design.md); x"),
    ("TINY_SPACE_SPEC: dict", "inas/x.py", "TINY_SPACE_SPEC: dict"),
])
def test_respec_rewrites_a_line(line, path, expected):
    assert respec.rewrite_line(line, path) == expected


def test_respec_wraps_a_grown_line_into_its_paragraph():
    lines = ['"""' + "word " * 22 + "(SPEC §5.4) end of the first line\n", "second line.\n", "\n"]
    lines[0] = respec.rewrite_line(lines[0], "inas/x.py")
    respec.wrap(lines, 0, limit=120)
    assert all(len(line.rstrip("\n")) <= 120 for line in lines)
    assert " ".join(" ".join(lines).split()) == " ".join(('"""' + "word " * 22 + "(docs/design.md §8) end of the "
                                                          "first line second line.").split())
    assert any("docs/design.md §8" in line for line in lines)


def test_respec_leaves_the_package_without_spec_citations(tmp_path):
    """What the lead will run, on a copy: nothing left to rewrite, every new citation exists, the code still parses
    and keeps ruff's line length."""
    shutil.copytree(ROOT / "inas", tmp_path / "inas", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "README.md", tmp_path / "README.md")
    targets = [tmp_path / "inas", tmp_path / "README.md"]
    changed, overlong = respec.respec(targets, write=True)
    assert overlong == []
    assert respec.respec(targets, write=False)[0] == 0
    sections = set(design_sections())
    for path in respec.files_under(targets):
        text = path.read_text(encoding="utf-8")
        assert set(cited_sections(text)) <= sections, path
        if path.suffix == ".py":
            ast.parse(text)
            assert max(len(line) for line in text.splitlines() or [""]) <= 120 or text == (
                ROOT / path.relative_to(tmp_path)).read_text(encoding="utf-8"), path

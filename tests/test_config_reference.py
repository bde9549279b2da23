"""The README's config reference is the one generated from the schema (regenerate with the command it names)."""

from pathlib import Path

from inas.config_reference import BEGIN, END, config_reference_markdown


def test_readme_config_reference_is_up_to_date():
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    assert BEGIN in readme and END in readme, "README lacks the generated config reference"
    current = readme[readme.index(BEGIN): readme.index(END) + len(END)]
    assert current == config_reference_markdown(), "run `python -m inas.config_reference` and paste it in README"


def test_every_config_key_has_a_description():
    text = config_reference_markdown()
    rows = [line for line in text.splitlines() if line.startswith("| `")]
    assert len(rows) > 40
    assert all(not line.rstrip().endswith("|  |") or "see below" in line for line in rows)

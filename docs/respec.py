"""Rewrite citations of the original's notes (`SPEC §N`, `SPEC section N`, `SPEC.md`), a document that is not in the
repository, into citations of `docs/design.md §M`, which is.

    python docs/respec.py inas README.md            # rewrite in place, print every change
    python docs/respec.py --check inas              # dry run: print, exit 1 if anything would change

Folders are searched for *.py, *.md, *.yaml and *.yml files. A line that grows past 120 characters (ruff's limit)
passes its last words on to the next line of the same paragraph (re-wrapping the rest of the paragraph) or onto a
new line at its end; lines still too long are listed. Read the diff before committing.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

# SPEC section -> docs/design.md section
MAPPING: dict[str, str] = {
    "1": "5", "1.1": "5.1", "1.2": "5.2", "1.3": "5.3", "1.4": "5.4", "1.5": "5.5",
    "2": "6", "2.1": "6.1", "2.2": "6.2", "2.3": "6.1",
    "3": "6.3",
    "4": "7",
    "5": "9", "5.1": "9.1", "5.2": "9.2", "5.3": "9.3", "5.4": "8", "5.5": "10.2",
    "6": "10",
    "7": "11.1",
    "8": "12",
    "9": "13.2", **{f"9.{i}": "13.2" for i in range(1, 16)},
}
# where the line says better what is meant: (regex on the path, regex on the line, SPEC section) -> design section
OVERRIDES: list[tuple[str, str, str, str]] = [
    (r"", r"\bkeys?\b|\bnames\b", "3", "6.4"),       # parameter names / state-dict keys, not the conversion
    (r"(^|/)inas/space/", r"", "4", "5.6"),           # the uniform sampler, not the training recipe
]
EXTENSIONS = {".py", ".md", ".yaml", ".yml"}
SECTION = r"\d+(?:\.\d+)?"
CITATION = re.compile(rf"\bSPEC (?:§ ?|section )(?P<first>{SECTION}(?:-{SECTION})?)(?P<more>(?:, ?§ ?{SECTION})*)")
BARE = re.compile(r"\bSPEC\.md\b")
MAX_LINE = 120


def target(section: str, path: str, line: str) -> str:
    for path_re, line_re, spec, design in OVERRIDES:
        if section == spec and re.search(path_re, path) and re.search(line_re, line):
            return design
    if section not in MAPPING:
        raise KeyError(f"{path}: no design.md section for SPEC §{section}; add it to MAPPING in docs/respec.py")
    return MAPPING[section]


def _range_target(first: str, path: str, line: str) -> str:
    """`5.2-5.3` -> `9.2-9.3`; a range whose ends map to one section collapses to it."""
    ends = [target(end, path, line) for end in first.split("-")]
    return ends[0] if len(set(ends)) == 1 else "-".join(ends)


def _collapse(sections: list[str]) -> list[str]:
    """Drop repeats and sections inside another cited section (`10.2, 10` -> `10`), keeping the order."""
    kept: list[str] = []
    for s in sections:
        if s not in kept and not any("-" not in k and s.startswith(k + ".") for k in sections):
            kept.append(s)
    return kept


def rewrite_line(line: str, path: str) -> str:
    def one(match: re.Match[str]) -> str:
        sections = [_range_target(match["first"], path, line)]
        sections += [target(s, path, line) for s in re.findall(SECTION, match["more"] or "")]
        return "docs/design.md " + ", ".join(f"§{s}" for s in _collapse(sections))

    return BARE.sub("docs/design.md", CITATION.sub(one, line))


PARAGRAPH_BREAKS = ("- ", "* ", "|", '"""', "```", "#")


def _prefix(line: str) -> str:
    """Indentation, plus `# ` for a comment line."""
    indent = line[: len(line) - len(line.lstrip())]
    return indent + "# " if line.lstrip().startswith("# ") else indent


def _continuation_prefix(line: str) -> str:
    prefix = _prefix(line)
    body = line[len(prefix):]
    return prefix + "  " if body.startswith(("- ", "* ")) else prefix


def _continues(line: str, prefix: str) -> bool:
    """Is `line` the next line of a paragraph whose continuation lines start with `prefix`?"""
    body = line[len(prefix):]
    return (line.startswith(prefix) and body.strip() != "" and not body.startswith(" ")
            and not body.startswith(PARAGRAPH_BREAKS))


def wrap(lines: list[str], start: int, limit: int = MAX_LINE) -> None:
    """Carry the words past `limit` of lines[start] to the start of the next line of its paragraph (and so on down
    the paragraph), or onto a new line at the paragraph's end, in place (lines end with their newline)."""
    i = start
    while i < len(lines) and len(lines[i].rstrip("\n")) > limit:
        text = lines[i].rstrip("\n")
        prefix = _continuation_prefix(text)
        cut = text.rfind(" ", len(_prefix(text)) + 1, limit + 1)
        while cut > len(_prefix(text)) and text[cut + 1:].startswith("§"):  # keep "design.md §N" on one line
            cut = text.rfind(" ", len(_prefix(text)) + 1, cut)
        if cut <= len(_prefix(text)):
            return
        head, tail = text[:cut].rstrip(), text[cut + 1:]
        lines[i] = head + "\n"
        if i + 1 < len(lines) and _continues(lines[i + 1], prefix):
            lines[i + 1] = prefix + tail + " " + lines[i + 1][len(prefix):]
        else:
            lines.insert(i + 1, prefix + tail + "\n")
        i += 1


def files_under(paths: list[Path]) -> list[Path]:
    found: list[Path] = []
    for path in paths:
        if path.is_dir():
            found += sorted(p for p in path.rglob("*") if p.suffix in EXTENSIONS and p.is_file())
        else:
            found.append(path)
    return found


def respec(paths: list[Path], write: bool) -> tuple[int, list[str]]:
    """Rewrite (or, without `write`, only find) every citation; returns (changed lines, overlong lines)."""
    changed, overlong = 0, []
    for path in files_under(paths):
        text = path.read_text(encoding="utf-8")
        lines = text.splitlines(keepends=True)
        new_lines = list(lines)
        for number in range(len(lines), 0, -1):  # from the end, so wrapping does not shift lines still to do
            old = lines[number - 1]
            new = rewrite_line(old, path.as_posix())
            if old != new:
                changed += 1
                print(f"{path}:{number}:\n  - {old.strip()}\n  + {new.strip()}")
                new_lines[number - 1] = new
                wrap(new_lines, number - 1)
        overlong += [f"{path}:{n} ({len(line.rstrip())} characters)" for n, line in enumerate(new_lines, 1)
                     if len(line.rstrip("\n")) > MAX_LINE and line not in lines]
        if write and new_lines != lines:
            path.write_text("".join(new_lines), encoding="utf-8")
    return changed, overlong


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("paths", nargs="+", type=Path)
    parser.add_argument("--check", action="store_true", help="change nothing; exit 1 if a citation would change")
    args = parser.parse_args(argv)
    changed, overlong = respec(args.paths, write=not args.check)
    print(f"{changed} line(s) {'to rewrite' if args.check else 'rewritten'}")
    for entry in overlong:
        print(f"longer than {MAX_LINE} characters, wrap by hand: {entry}")
    return 1 if args.check and changed else 0


if __name__ == "__main__":
    sys.exit(main())

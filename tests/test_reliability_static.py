"""No `eval`, no pickle, no `torch.load` without `weights_only=True` anywhere in the package."""

import re
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "inas"
EVAL_CALL = re.compile(r"(?<![\w.])(eval|exec)\(")
PICKLE_USE = re.compile(r"^\s*(import|from)\s+(pickle|cPickle|dill)\b|\b(pickle|dill)\.(loads?|dumps?|Unpickler)\b")


def package_sources():
    return sorted(PACKAGE.rglob("*.py"))


def test_no_eval_exec_or_pickle():
    offenders = []
    for path in package_sources():
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            code = line.split("#", 1)[0]
            if EVAL_CALL.search(code) or PICKLE_USE.search(code):
                if "literal_eval" not in code:
                    offenders.append(f"{path.relative_to(PACKAGE.parent)}:{number}: {line.strip()}")
    assert not offenders, "\n".join(offenders)


def test_every_torch_load_uses_weights_only():
    offenders = []
    for path in package_sources():
        text = path.read_text(encoding="utf-8")
        for match in re.finditer(r"torch\.load\(", text):
            # the call may span lines: look until its closing parenthesis
            depth, end = 0, match.end() - 1
            for end in range(match.end() - 1, len(text)):
                depth += {"(": 1, ")": -1}.get(text[end], 0)
                if depth == 0:
                    break
            call = text[match.start(): end + 1]
            if "weights_only=True" not in call:
                number = text[: match.start()].count("\n") + 1
                offenders.append(f"{path.relative_to(PACKAGE.parent)}:{number}")
    assert not offenders, "torch.load without weights_only=True: " + ", ".join(offenders)

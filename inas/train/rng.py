"""RNG states as `weights_only`-loadable data (tensors, ints, floats, strings), and their checks on reading.

    state = rng_state()            # {"python", "numpy", "torch"[, "cuda"]}: the global generators
    set_rng_state(state)
    python_rng_state(rng) / set_python_rng_state(state, rng)    # one random.Random

`check_python_rng_state` / `check_rng_state` raise `BadInputError(path=..., key=...)` for a damaged state, so a
checkpoint with a broken RNG field is one line naming the file and the field, never a traceback at `setstate`.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from inas.errors import BadInputError

MT_STATE_WORDS = 625  # random.Random: 624 Mersenne Twister words + the position
NUMPY_KEY_WORDS = 624


def python_rng_state(rng: random.Random | None = None) -> dict[str, Any]:
    """The state of `rng` (default: the global `random`) as {"version", "state": int64 (625,), "gauss"}."""
    version, state, gauss = (rng.getstate() if rng is not None else random.getstate())
    return {"version": version, "state": torch.tensor(state, dtype=torch.int64), "gauss": gauss}


def set_python_rng_state(state: Mapping[str, Any], rng: random.Random | None = None) -> None:
    value = (int(state["version"]), tuple(int(v) for v in state["state"].tolist()), state["gauss"])
    (rng.setstate if rng is not None else random.setstate)(value)


def rng_state() -> dict[str, Any]:
    """The global RNGs: python `random`, numpy's legacy global generator, torch CPU (and CUDA when present)."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    state: dict[str, Any] = {
        "python": python_rng_state(),
        "numpy": {"kind": kind, "keys": torch.from_numpy(np.asarray(keys, dtype=np.int64)), "pos": int(pos),
                  "has_gauss": int(has_gauss), "cached": float(cached)},
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: Mapping[str, Any]) -> None:
    set_python_rng_state(state["python"])
    np_state = state["numpy"]
    np.random.set_state((np_state["kind"], np_state["keys"].numpy().astype(np.uint32), np_state["pos"],
                         np_state["has_gauss"], np_state["cached"]))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available() and len(state["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(state["cuda"])


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


# ----- checks on reading -------------------------------------------------------------------------------------------
def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _word_tensor(value: Any, words: int, low: int, high: int) -> bool:
    """An int64 tensor of `words` entries, each in [low, high)."""
    if not isinstance(value, Tensor) or value.dtype != torch.int64 or tuple(value.shape) != (words,):
        return False
    return bool(((value >= low) & (value < high)).all())


def check_python_rng_state(state: Any, path: str | Path, key: str) -> None:
    """BadInputError unless `state` is what `python_rng_state` writes (Mersenne Twister words in range)."""
    ok = (isinstance(state, Mapping) and set(state) == {"version", "state", "gauss"} and state["version"] == 3
          and _word_tensor(state["state"], MT_STATE_WORDS, 0, 2**32)
          and 1 <= int(state["state"][-1]) <= 624
          and (state["gauss"] is None or isinstance(state["gauss"], float)))
    if not ok:
        raise BadInputError("not a Python RNG state (version 3, 625 words in [0, 2^32), gauss float or null)",
                            path=path, key=key)


def check_rng_state(state: Any, path: str | Path, key: str) -> None:
    """BadInputError unless `state` is what `rng_state` writes."""
    if not isinstance(state, Mapping) or not {"python", "numpy", "torch"} <= set(state):
        raise BadInputError("expected the keys python, numpy, torch", path=path, key=key)
    check_python_rng_state(state["python"], path, f"{key}.python")
    np_state = state["numpy"]
    ok = (isinstance(np_state, Mapping) and np_state.get("kind") == "MT19937"
          and _word_tensor(np_state.get("keys"), NUMPY_KEY_WORDS, 0, 2**32)
          and _is_int(np_state.get("pos")) and 0 <= np_state["pos"] <= NUMPY_KEY_WORDS
          and np_state.get("has_gauss") in (0, 1) and isinstance(np_state.get("cached"), float))
    if not ok:
        raise BadInputError("not a numpy MT19937 state", path=path, key=f"{key}.numpy")
    reference = torch.get_rng_state()
    value = state["torch"]
    if not isinstance(value, Tensor) or value.dtype != torch.uint8 or value.shape != reference.shape:
        raise BadInputError(f"not a torch CPU RNG state (uint8 {tuple(reference.shape)})", path=path,
                            key=f"{key}.torch")
    cuda = state.get("cuda")
    if cuda is not None and not (isinstance(cuda, list) and all(isinstance(t, Tensor) and t.dtype == torch.uint8
                                                                for t in cuda)):
        raise BadInputError("not a list of CUDA RNG states (uint8 tensors)", path=path, key=f"{key}.cuda")

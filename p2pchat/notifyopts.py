"""What ``--notify`` and ``--notify-hide-text`` say, and where the highlight words are kept:
all the options and the assembly need of notify.py, which only the console uses (with its
rules, the terminals' sequences and notify-send), so that a peer of another face does without
it (tests/test_latetls.py, LATE_MODULES).  notify.py re-exports these."""

from __future__ import annotations

from dataclasses import dataclass

#: What ``--notify`` may name; the terminal can't be asked which it understands.
OUTPUTS = ("bell", "osc777", "osc9", "osc99", "desktop")
DEFAULT_OUTPUTS = ("bell",)
#: The file in the data dir the highlight words are kept in (0600, written atomically).
HIGHLIGHTS_NAME = "highlights.json"


@dataclass(frozen=True)
class NotifyConfig:
    """What the options say (``--notify``, ``--notify-hide-text``), handed to the console by
    service.py, and where the highlight words are kept (None: in memory only)."""

    outputs: tuple[str, ...] = DEFAULT_OUTPUTS
    hide_text: bool = False
    highlights_path: str | None = None


def parse_outputs(text: str) -> tuple[str, ...]:
    """``--notify bell,osc777``: the outputs named, in order, each once; ValueError else."""
    names: list[str] = []
    for part in text.split(","):
        name = part.strip().lower()
        if not name:
            continue
        if name not in OUTPUTS:
            raise ValueError(f"--notify: {name!r} is not one of {', '.join(OUTPUTS)}")
        if name not in names:
            names.append(name)
    if not names:
        raise ValueError(f"--notify needs one or more of {', '.join(OUTPUTS)}")
    return tuple(names)

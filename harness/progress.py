"""Progress bars of `process` and `replay` on stderr (tqdm), or nothing when they are off."""

from __future__ import annotations

import shutil
import sys
from typing import Any

from tqdm import tqdm

WIDTH = 11  # phase names line up: "read", "produce", "processed", "flush"


def wanted(flag: bool | None) -> bool:
    """`--progress`/`--no-progress` when given, else whether stderr is a terminal."""
    return sys.stderr.isatty() if flag is None else flag


class Bar:
    """One phase's bar: `to(n)` moves it to n done; a disabled bar only counts."""

    def __init__(self, phase: str, total: int | None, unit: str, enabled: bool) -> None:
        self.phase = phase
        self.total = total
        self.enabled = enabled
        self.n = 0
        self._bar: Any = None
        if enabled:
            size = shutil.get_terminal_size((100, 24))
            self._bar = tqdm(
                total=total,
                desc=phase.ljust(WIDTH),
                unit=f" {unit}",
                file=sys.stderr,
                # a terminal that reports no size (0 x 0) gets 100 x 24: tqdm would print nothing
                ncols=min(size.columns, 120),
                nrows=size.lines,
                mininterval=0.2,
            )

    def to(self, n: int) -> None:
        """Set how many are done (never backwards)."""
        if n > self.n:
            if self._bar is not None:
                self._bar.update(n - self.n)
            self.n = n

    def add(self, k: int = 1) -> None:
        """k more done."""
        self.to(self.n + k)

    def note(self, text: str) -> None:
        """Show `text` after the counts (what the phase is waiting for)."""
        if self._bar is not None:
            self._bar.set_postfix_str(text, refresh=True)

    def close(self) -> None:
        """End the bar's line."""
        if self._bar is not None:
            self._bar.close()
            self._bar = None

    def __enter__(self) -> Bar:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

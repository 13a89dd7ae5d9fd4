"""Markdown pieces every report and benchmark table shares: one table builder and the number formats."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any

NONE = "—"  # a missing value in a table


def cell(value: Any) -> str:
    """A table cell: `|` would split the row, so it becomes `/`."""
    return str(value).replace("|", "/")


def table(header: Sequence[str], rows: Iterable[Sequence[Any]], align: str = "") -> list[str]:
    """A markdown table as lines. `align` has one letter per column: l (left, the default) or r (right)."""
    align = align.ljust(len(header), "l")
    rule = "|" + "|".join("---:" if a == "r" else "---" for a in align) + "|"
    lines = ["| " + " | ".join(cell(h) for h in header) + " |", rule]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return lines


def pct(x: float | None, digits: int = 2) -> str:
    """A fraction in percent (`0.9123` -> `91.23`), or a dash when missing."""
    return NONE if x is None else f"{x * 100:.{digits}f}"


def fmt(value: Any, spec: str, scale: float = 1.0, suffix: str = "") -> str:
    """`value * scale` formatted with `spec`, or a dash when missing."""
    return NONE if value is None else f"{float(value) * scale:{spec}}{suffix}"


def format_p(p: float) -> str:
    """`p = 0.41`, `p = 0.013`, `p < 0.001` (two significant digits)."""
    if math.isnan(p):
        return "p n/a"
    return "p < 0.001" if p < 0.001 else f"p = {p:.2g}"

"""Helpers shared by the benchmark scripts: machine description, result files, docs/results.md sections."""

from __future__ import annotations

import json
import os
import platform
import re
from pathlib import Path

import torch

from fmnist.engine.device import available_cores
from fmnist.fileio import write_json, write_text

ROOT = Path(__file__).resolve().parent.parent
RESULTS_MD = ROOT / "docs" / "results.md"


def machine() -> str:
    """One line describing the machine: CPU model, cores, torch version, GPU if any."""
    cpu = platform.processor() or "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    gpu = f", GPU {torch.cuda.get_device_name(0)}" if torch.cuda.is_available() else ""
    return f"{cpu}, {available_cores()} cores{gpu}, torch {torch.__version__}, Python {platform.python_version()}"


def load_average() -> float:
    """The 1-minute load average (a busy machine makes timings pessimistic)."""
    try:
        return os.getloadavg()[0]
    except OSError:
        return float("nan")


def read_results(path: Path) -> list[dict]:
    """Every result recorded in a JSON-lines-like list file (missing file: none)."""
    if not path.exists():
        return []
    return json.loads(path.read_text())


def append_result(path: Path, row: dict) -> None:
    """Add one result row to the list file, atomically."""
    rows = read_results(path)
    rows.append(row)
    write_json(path, rows)


def update_section(name: str, body: str, path: Path = RESULTS_MD) -> None:
    """Replace the section between <!-- NAME:start --> and <!-- NAME:end --> in docs/results.md (append if new)."""
    start, end = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
    block = f"{start}\n{body.rstrip()}\n{end}"
    text = path.read_text() if path.exists() else "# Measured results\n"
    pattern = re.compile(re.escape(start) + r".*?" + re.escape(end), re.S)
    text = pattern.sub(lambda _: block, text) if pattern.search(text) else text.rstrip() + "\n\n" + block + "\n"
    write_text(path, text)

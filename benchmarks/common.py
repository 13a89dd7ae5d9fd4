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


def measure_run(recipe, seed: int, precision: str, ds, quick: bool = False, group: str = "runs", device: str = "auto") -> dict:
    """Train `recipe` with its own validation protocol, evaluate once on the test set; the result row.

    The run directory (model, plots, report) lands in runs/bench/<group>/<recipe>-<precision>-s<seed>;
    `quick` trains on 5,000 images.
    """
    import time

    from fmnist.engine.trainer import TrainOptions
    from fmnist.runs import RunConfig, train_run

    load_before = load_average()
    out = ROOT / "runs" / "bench" / ("quick" if quick else group) / f"{recipe.name}-{precision}-s{seed}"
    cfg = RunConfig(recipe=recipe, options=TrainOptions(seed=seed, precision=precision, device=device), limit=5000 if quick else None, out=out)
    t0 = time.perf_counter()
    m = train_run(cfg, dataset=ds).metrics
    return {
        "recipe": recipe.name, "seed": seed, "epochs": recipe.epochs, "validation": recipe.validation,
        "test_accuracy": m["test_accuracy"], "train_seconds": m["train_seconds"],
        "seconds_per_epoch": m["seconds_per_epoch"], "wall_seconds": time.perf_counter() - t0,
        "precision": m["precision"], "precision_asked": precision, "threads": m["threads"],
        "device": m["device"], "fused_kernels": m.get("fused_kernels", []), "load_before": load_before,
        "load_after": load_average(), "machine": machine(),
        "date": time.strftime("%Y-%m-%d %H:%M"),
    }


def measured_earlier(path: Path, recipe, seed: int, precision: str, device: str = "auto") -> dict | None:
    """The row already recorded in `path` for this recipe, seed, epochs and effective precision, if any."""
    from fmnist.engine.device import resolve_device, resolve_precision

    wanted = recipe.precision if precision == "recipe" else precision
    dev = resolve_device(device)
    wanted = "fp32" if resolve_precision(wanted, dev) is None else "bf16"
    for r in read_results(path):
        if (r["recipe"], r["seed"], r["epochs"], r["precision"], r.get("device", "cpu")) == (recipe.name, seed, recipe.epochs, wanted, dev.type):
            return r
    return None


def measure_runs(path: Path, recipe, runs: int, precision: str, ds, quick: bool = False, group: str = "runs",
                 device: str = "auto") -> None:
    """Seeds 0..runs-1 of `recipe`: each one read back from `path` if measured earlier, else trained,
    evaluated and appended to `path`; a line per run is printed either way."""
    for seed in range(runs):
        done = measured_earlier(path, recipe, seed, precision, device)
        if done:
            print(f"{recipe.name} seed {seed}: {done['test_accuracy'] * 100:.2f}% (measured earlier)")
            continue
        row = measure_run(recipe, seed, precision, ds, quick=quick, group=group, device=device)
        append_result(path, row)
        print(f"{recipe.name} seed {seed}: {row['test_accuracy'] * 100:.2f}% in {row['train_seconds']:.1f}s "
              f"({row['seconds_per_epoch']:.2f} s/epoch, {row['precision']}, {row['device']}, "
              f"load {row['load_before']:.1f})", flush=True)

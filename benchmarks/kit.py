"""What every benchmark script shares: the reference figures, the `--quick` size, the argument parser and the
`main()` convention, a synchronised timer, run summaries, markdown tables, result files and docs/results.md.

Each script is a module run from the repository root, `python -m benchmarks.NAME`, and has one shape:

    def main(argv=None) -> None:
        args = kit.parser(__doc__, out_help="...").parse_args(argv)
        kit.begin(args)                      # fmnist.runtime.configure_process: threads and malloc, once
        ...                                  # measure; `with kit.timed(device) as t:` around what is timed
        kit.publish(args, "section", text)   # its section of docs/results.md; never with --quick

The library sets no process-wide state itself, so `begin` is where a script's threads and allocator are set.
`--quick` is the smoke mode (`make bench-smoke`): QUICK_LIMIT training and QUICK_TEST test images, QUICK_EPOCHS
epoch, QUICK_STEPS timed steps; everything it writes goes under runs/bench/quick (each script first clears its own
earlier quick output there, so every smoke run measures), nothing into docs/.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import re
import shutil
import sys
import statistics
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from fmnist.config import Recipe, RunConfig, TrainOptions
from fmnist.data import Dataset, Split, load_dataset
from fmnist.data.splits import holdout_split, subset
from fmnist.data.transforms import to_device_tensors
from fmnist.errors import FmnistError, UsageError
from fmnist.fileio import write_json, write_text
from fmnist.pipeline import train_run
from fmnist.recipes import RECIPES, get_recipe
from fmnist.recipes.overrides import apply_assignment
from fmnist.reports.markdown import NONE, table
from fmnist.runtime import available_cores, configure_process, resolve_device, resolve_precision
from fmnist.train.loop import TrainData, TrainResult, fit

ROOT = Path(__file__).resolve().parent.parent
RESULTS_MD = ROOT / "docs" / "results.md"
BENCH = ROOT / "runs" / "bench"  # result files and run directories (runs/ is not tracked)
QUICK_DIR = BENCH / "quick"  # everything --quick writes

# --quick, in every script: a few seconds to a minute each.
QUICK_LIMIT = 2000  # training images
QUICK_EPOCHS = 1
QUICK_TEST = 1000  # test images (the test set is also the per-epoch validation of some seed recipes)
QUICK_STEPS = 5  # timed steps or repetitions, where a script times steps
EVAL_BATCH = TrainOptions().eval_batch_size  # images per forward pass when a script scores a net itself

# Reference figures. The seeds' reported test accuracies are the recipes' own `reported` fields (fmnist.recipes);
# what is here is what no recipe holds.


@dataclass(frozen=True)
class KerasReference:
    """The seeds' own Keras code on this machine kind, as ../shared/SEEDS.md reports it."""

    epochs: int
    seconds_per_epoch: float
    test_accuracy: float  # percent

    @property
    def train_seconds(self) -> float:
        return self.epochs * self.seconds_per_epoch


# Keras 3 + TensorFlow 2.21 on 2 cores running the seeds' code (../shared/SEEDS.md).
KERAS_SEEDS_MD = {"baseline": KerasReference(10, 7.7, 91.12), "minivgg": KerasReference(25, 48.0, 93.27)}

# Seed 002's 5-fold cross-validation: (mean %, numpy's population std %). The variants' mean is their recipe's
# `reported`; `baseline`'s `reported` is its final model's test figure (90.99), so its CV mean (91.187) is here.
_SEED_CV_STD = {"baseline": 0.121, "baseline-same": 0.209, "baseline-wide": 0.412}
SEED_CV = {name: (91.187 if name == "baseline" else RECIPES[name].reported, std) for name, std in _SEED_CV_STD.items()}

# The modern recipes' targets per device type: (test accuracy %, training seconds; None: as fast as it can be had).
TARGETS = {"cpu": {"fast": (94.0, 60.0), "best": (95.5, 600.0), "sota": (96.0, None)},
           "cuda": {"fast": (94.0, 5.0), "sota": (96.0, 120.0)}}


def reported(name: str) -> float | None:
    """The seed's reported test accuracy (percent) for recipe `name`, from the recipe itself."""
    return RECIPES[name].reported


# The command line and the process.


def parser(doc: str | None, out_help: str) -> argparse.ArgumentParser:
    """An argument parser with the options every script takes: --quick, --device, --threads and --out."""
    p = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true",
                   help=f"smoke mode: {QUICK_EPOCHS} epoch on {QUICK_LIMIT:,} images (tested on {QUICK_TEST:,}), or "
                        f"{QUICK_STEPS} timed steps; "
                        f"writes only under {QUICK_DIR.relative_to(ROOT)}, never into docs/")
    p.add_argument("--device", default="auto", help="auto (CUDA when there is one), cpu or cuda")
    p.add_argument("--threads", type=positive, default=None, help="intra-op threads (default: every available core)")
    p.add_argument("--out", type=Path, default=None, help=out_help)
    return p


def begin(args: argparse.Namespace) -> int:
    """The entry point's process settings (fmnist.runtime.configure_process) and the line saying where we run."""
    threads = configure_process(args.threads)
    print(f"machine: {machine()}; {threads} threads; load {load_average():.1f}", flush=True)
    if args.quick:
        print(f"--quick: {QUICK_LIMIT:,} training and {QUICK_TEST:,} test images, {QUICK_EPOCHS} epoch, "
              f"{QUICK_STEPS} steps", flush=True)
    return threads


def run(main: Callable[[], None]) -> None:
    """A script's entry point: `main()`, with the library's errors (an unknown recipe, a bad setting, device or
    file) as one `error:` line and their exit code, as `fmnist` gives them, rather than a traceback."""
    try:
        main()
    except FmnistError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(e.exit_code)


def positive(text: str) -> int:
    """An argparse type: a whole number of at least 1 (runs, rounds, images, epochs, steps, threads)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} is less than 1")
    return value


def dataset(quick: bool) -> Dataset:
    """The dataset (fmnist.data.load_dataset); with --quick, seeded subsets of QUICK_LIMIT training and QUICK_TEST
    test images, whose checksum is left empty (it would name the whole data)."""
    ds = load_dataset()
    if not quick:
        return ds
    cut = [Split(*subset(s.images, s.labels, n, 0), s.classes)
           for s, n in ((ds.train, QUICK_LIMIT), (ds.test, QUICK_TEST))]
    return dataclasses.replace(ds, train=cut[0], test=cut[1], checksum="", source=f"{ds.source}, --quick subset")


def held_out(name: str, assignments: Sequence[str], quick: bool) -> tuple[Recipe, TrainData]:
    """Recipe `name` with the overrides `assignments` (--set; one epoch with --quick) and its tuning data: the
    training split less the recipe's held-out `val_fraction` of each class (holdout_split, seed 0) to train on,
    that held-out part to validate on. The test set is never read."""
    recipe = get_recipe(name)
    for assignment in assignments:
        recipe = apply_assignment(recipe, assignment)
    if quick:
        recipe = recipe.replace(epochs=QUICK_EPOCHS)
    ds = dataset(quick)
    images, labels = ds.train.images, ds.train.labels
    tr, va = holdout_split(labels, recipe.val_fraction, seed=0)
    return recipe, TrainData((images[tr], labels[tr]), (images[va], labels[va]), num_classes=len(ds.classes))


def trial_parser(doc: str | None, out_help: str, runs: int, quick_runs: int) -> argparse.ArgumentParser:
    """`parser` plus what a held-out trial over seeds takes: a recipe, its --set overrides and --runs."""
    p = parser(doc, out_help)
    p.add_argument("recipe", nargs="?", default="fast")
    p.add_argument("--set", action="append", default=[], help="override, e.g. epochs=8")
    p.add_argument("--runs", type=positive, default=None,
                   help=f"runs (seeds 0..runs-1; default {runs}, {quick_runs} with --quick)")
    p.set_defaults(default_runs=(runs, quick_runs))
    return p


@dataclass
class HeldOutTrial:
    """A trial of `trial_parser`'s arguments: the recipe with its overrides, its held-out data (`held_out`), the
    trial's name ("RECIPE ASSIGNMENT..."), the number of runs, the held-out images normalized on the device, and
    the results file (--out, or FILE under bench_dir; cleared first with --quick)."""
    recipe: Recipe
    data: TrainData
    name: str
    runs: int
    x: torch.Tensor
    y: torch.Tensor
    path: Path
    device: str
    threads: int

    def fit(self, seed: int) -> tuple[TrainResult, torch.dtype | None]:
        """Train the recipe on the held-out trial's data with this seed: the result and its autocast dtype."""
        result = fit(self.recipe, self.data, TrainOptions(seed=seed, device=self.device, threads=self.threads))
        return result, resolve_precision(result.precision, result.device)


def held_out_trial(args: argparse.Namespace, threads: int, file: str) -> HeldOutTrial:
    recipe, data = held_out(args.recipe, args.set, args.quick)
    x, y = to_device_tensors(*data.val, resolve_device(args.device), recipe.mean, recipe.std)
    runs = args.runs or args.default_runs[1 if args.quick else 0]
    path = args.out or bench_dir(args.quick) / file
    if args.quick:
        clear_quick(path)
    return HeldOutTrial(recipe, data, " ".join([args.recipe, *args.set]), runs, x, y, path, args.device, threads)


def bench_dir(quick: bool) -> Path:
    """runs/bench, or runs/bench/quick for --quick."""
    return QUICK_DIR if quick else BENCH


def clear_quick(path: Path) -> Path:
    """Delete `path` (a file or folder) if it lies under runs/bench/quick: a smoke run starts from nothing."""
    path = Path(path)
    if path.resolve().is_relative_to(QUICK_DIR.resolve()):
        if path.is_dir():
            shutil.rmtree(path)
        else:
            path.unlink(missing_ok=True)
    return path


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


def now() -> str:
    return time.strftime("%Y-%m-%d %H:%M")


# Timing.


def sync(device: torch.device | str) -> None:
    """Wait for the work queued on `device` (a torch.device or a --device name such as auto; CUDA kernels run
    asynchronously, the CPU's are done on return)."""
    device = resolve_device(device)
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@dataclass
class Timer:
    """`seconds`: the measurement, set when the timed block ends."""

    start: float = 0.0
    seconds: float = float("nan")

    def elapsed(self) -> float:
        """Host seconds since the block began, unsynchronised: for a loop's stopping rule, not a measurement."""
        return time.perf_counter() - self.start


@contextmanager
def timed(device: torch.device | str) -> Iterator[Timer]:
    """`with timed(device) as t: ...`, then `t.seconds`: the block's wall time, its queued device work included
    (synchronised before and after on CUDA, so neither earlier work nor unfinished kernels skew it)."""
    timer = Timer()
    sync(device)
    timer.start = time.perf_counter()
    try:
        yield timer
    finally:
        sync(device)
        timer.seconds = time.perf_counter() - timer.start


# Run summaries: rows of repeated runs, grouped.


@dataclass(frozen=True)
class RunGroup:
    """The result rows that share `key` (e.g. one recipe and precision over several seeds)."""

    key: tuple
    rows: list[dict]

    @property
    def n(self) -> int:
        return len(self.rows)

    def values(self, field: str, scale: float = 1.0) -> list[float]:
        return [r[field] * scale for r in self.rows]

    def mean(self, field: str, scale: float = 1.0) -> float:
        return statistics.mean(self.values(field, scale))

    def std(self, field: str, scale: float = 1.0) -> float | None:
        """The sample standard deviation, or None for a single run."""
        return statistics.stdev(self.values(field, scale)) if self.n > 1 else None

    def mean_pm(self, field: str = "test_accuracy", scale: float = 100.0, digits: int = 2) -> str:
        """`90.89 ± 0.19` (mean ± sample std), or just the mean for one run."""
        std = self.std(field, scale)
        return f"{self.mean(field, scale):.{digits}f}" + (f" ± {std:.{digits}f}" if std is not None else "")

    def span(self, field: str = "test_accuracy", scale: float = 100.0, digits: int = 2) -> str:
        """`94.88–95.23`: the worst and best run."""
        v = self.values(field, scale)
        return f"{min(v):.{digits}f}–{max(v):.{digits}f}"

    def distinct(self, field: str) -> list:
        return sorted({r.get(field) for r in self.rows}, key=str)


def group_runs(rows: Iterable[dict], *keys: str, where: Callable[[dict], bool] | None = None,
               order: Callable[[tuple], Any] | None = None) -> list[RunGroup]:
    """The rows grouped by the values of `keys` (those `where` accepts), in `order` of the key (default sorted)."""
    groups: dict[tuple, list[dict]] = {}
    for r in rows:
        if where is None or where(r):
            groups.setdefault(tuple(r.get(k) for k in keys), []).append(r)
    return [RunGroup(k, groups[k]) for k in sorted(groups, key=order or (lambda k: tuple(map(str, k))))]


def loads_line(rows: Sequence[dict], field: str = "load_before") -> str:
    """`0.9 to 2.1`: the range of the load averages recorded with the rows."""
    loads = [r[field] for r in rows if field in r]
    return f"{min(loads):.1f} to {max(loads):.1f}" if loads else NONE


# Markdown, result files and docs/results.md.


def markdown(header: Sequence[str], rows: Iterable[Sequence[Any]], align: str = "") -> str:
    """A markdown table as one string (fmnist.reports.markdown.table)."""
    return "\n".join(table(header, rows, align))


def read_results(path: Path) -> list[dict]:
    """Every result row recorded in a JSON list file (missing file: none)."""
    path = Path(path)
    return json.loads(path.read_text()) if path.exists() else []


def append_result(path: Path, row: dict) -> None:
    """Add one result row to the list file, atomically."""
    write_json(path, [*read_results(path), row])


def update_section(name: str, body: str, path: Path = RESULTS_MD, keep: int = 0) -> None:
    """Replace the section between <!-- NAME:start --> and <!-- NAME:end --> in docs/results.md (append if new).

    With `keep` > 0, the section's table is merged instead of replaced (merge_tables): a row already there whose
    first `keep` cells (its key) no row of `body` has stays, with the machine notes after the table. A results
    file holds only the runs measured from this checkout, so a script that measures one recipe leaves the rows
    of the others as they are.
    """
    start, end = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
    text = path.read_text() if path.exists() else "# Measured results\n"
    pattern = re.compile(re.escape(start) + r"\n?(.*?)" + re.escape(end), re.S)
    found = pattern.search(text)
    if keep and found:
        body = merge_tables(found.group(1), body, keep)
    block = f"{start}\n{body.rstrip()}\n{end}"
    text = pattern.sub(lambda _: block, text) if found else text.rstrip() + "\n\n" + block + "\n"
    write_text(path, text)


def _cells(line: str) -> list[str]:
    return [c.strip() for c in line.strip().strip("|").split("|")]


def _table_span(lines: list[str]) -> tuple[int, int] | None:
    """(first data row, one past the last) of the first markdown table in `lines`, or None."""
    for i in range(1, len(lines)):
        if lines[i].startswith("|---") and lines[i - 1].startswith("|"):
            j = i + 1
            while j < len(lines) and lines[j].startswith("|"):
                j += 1
            return i + 1, j
    return None


def merge_tables(old: str, new: str, keep: int) -> str:
    """`new` (a section with one markdown table) with the rows of `old`'s table merged in: rows are matched by
    their first `keep` cells; a row of `old` that `new` has is replaced in place, one `new` lacks stays, and rows
    only `new` has follow. When rows of `old` stay, so do the paragraphs after its table that `new` lacks (the
    machines those rows were measured on); a paragraph that differs from one of `new` only after "Load average"
    is the same machine's, and `new`'s replaces it. A table whose header changed is not merged: `new` stands."""
    old_lines, new_lines = old.rstrip().splitlines(), new.rstrip().splitlines()
    old_span, new_span = _table_span(old_lines), _table_span(new_lines)
    if old_span is None or new_span is None or old_lines[old_span[0] - 2] != new_lines[new_span[0] - 2]:
        return new
    fresh = {_key(line, keep): line for line in new_lines[slice(*new_span)]}
    if len(fresh) != new_span[1] - new_span[0]:
        raise ValueError(f"rows of the new table share their first {keep} cells")
    rows, placed, stayed = [], set(), False
    for line in old_lines[slice(*old_span)]:
        k = _key(line, keep)
        if k not in fresh:
            rows.append(line)
            stayed = True
        elif k not in placed:  # the measured row takes the place of the first old one of its key
            rows.append(fresh[k])
            placed.add(k)
    rows += [line for k, line in fresh.items() if k not in placed]
    merged = "\n".join(new_lines[: new_span[0]] + rows + new_lines[new_span[1]:])
    if not stayed:
        return merged
    ours = {_machine(p) for p in _paragraphs(new_lines[new_span[1]:])}
    after = [p for p in _paragraphs(old_lines[old_span[1]:]) if _machine(p) not in ours]
    return "\n\n".join([merged, *after])


def _key(line: str, keep: int) -> tuple[str, ...]:
    return tuple(_cells(line)[:keep])


def _paragraphs(lines: list[str]) -> list[str]:
    return [p.strip() for p in "\n".join(lines).split("\n\n") if p.strip()]


def _machine(paragraph: str) -> str:
    """A footer paragraph without what changes from run to run (its load averages)."""
    return paragraph.split("Load average")[0].strip()


def publish(args: argparse.Namespace, name: str, body: str, when: bool = True, keep: int = 0) -> None:
    """Write `body` as section `name` of docs/results.md when `when`, never with --quick; `keep`: as in
    update_section (the number of leading columns that name a row, for tables that grow run by run)."""
    if args.quick:
        print(f"(--quick: cut-down sizes, so the figures above mean nothing; docs/results.md left as it is, "
              f"section {name!r} not written)")
    elif when:
        update_section(name, body, keep=keep)
        print(f"wrote section {name!r} of {RESULTS_MD.relative_to(ROOT)}")


def save_text(path: Path | None, text: str) -> None:
    """Also keep the printed table in a file (--out of the timing scripts), if one was named."""
    if path is not None:
        write_text(path, text.rstrip() + "\n")
        print(f"wrote {path}")


# Measured runs: train a recipe through fmnist.pipeline.train_run (the path of `fmnist train`), record the row.


def measure_run(recipe: Recipe, seed: int, precision: str, ds: Dataset, out: Path, device: str = "auto",
                compile: bool = False) -> dict:
    """Train `recipe` with its own validation protocol into the run directory `out`, evaluate once on the test set
    (fp32, as `fmnist evaluate` does); the result row. With `compile` (torch.compile), `compile_seconds` is what
    the first epoch took beyond the median of the others (compilation happens in its first steps), and
    `train_seconds` excludes it."""
    load_before = load_average()
    options = TrainOptions(seed=seed, precision=precision, device=device, compile=compile)
    cfg = RunConfig(recipe=recipe, options=options, out=out)
    shutil.rmtree(out, ignore_errors=True)  # a run of an earlier version of the recipe, not in the results file
    with timed(device) as wall:
        run = train_run(cfg, dataset=ds)
    m = run.metrics
    small = recipe.augment.small_epochs(recipe.epochs)
    compile_seconds = first_epoch_extra([h.seconds for h in run.train.history], small) if compile else 0.0
    return {
        "recipe": recipe.name, "seed": seed, "epochs": recipe.epochs, "validation": recipe.validation,
        "test_accuracy": m.test_accuracy, "train_seconds": m.train_seconds - compile_seconds,
        "seconds_per_epoch": (m.train_seconds - compile_seconds) / max(1, m.epochs), "compiled": compile,
        "compile_seconds": compile_seconds,
        "wall_seconds": wall.seconds, "precision": m.precision, "precision_asked": precision, "threads": m.threads,
        "device": m.device, "fused_kernels": m.fused_kernels, "load_before": load_before,
        "load_after": load_average(), "machine": machine(), "date": now(), "recipe_config": recipe.to_dict(),
    }


def first_epoch_extra(epoch_seconds: Sequence[float], small: int = 0) -> float:
    """How much longer the first epoch took than the median of the others (0 with fewer than two epochs). With
    `small` downsized epochs first (progressive resizing), each size is compiled apart: the sum of the extra of
    the first epoch of each size over the others of that size (a size with one epoch adds nothing)."""
    if small:
        return first_epoch_extra(epoch_seconds[:small]) + first_epoch_extra(epoch_seconds[small:])
    if len(epoch_seconds) < 2:
        return 0.0
    return max(0.0, epoch_seconds[0] - statistics.median(epoch_seconds[1:]))


def current(row: dict) -> bool:
    """Whether a result row was measured with its recipe as the registry defines it now (rows written before the
    recipe's configuration was recorded with them are taken as current)."""
    if "recipe_config" not in row:
        return True
    return row.get("recipe") in RECIPES and _same(_trained_on(row["recipe_config"]),
                                                  _trained_on(RECIPES[row["recipe"]].to_dict()))


def _trained_on(config: dict) -> dict:
    """A recipe configuration with per-epoch test-set validation counted as none: either way the model trains on
    the whole training set and is the same (benchmarks.reproduce_seeds validates as each seed did, which is
    not always as the registry's recipe does)."""
    return {**config, "validation": "none"} if config.get("validation") == "test" else config


def _same(a: dict, b: dict) -> bool:
    """Two recipe configurations are the same once read back as recipes and then as JSON: tuples and lists alike,
    and a setting added after a row was recorded counts as its default (new settings default to the behaviour
    from before them). A configuration that no longer reads as a recipe is not the same."""
    try:
        a, b = (Recipe.from_dict(c).to_dict() for c in (a, b))
    except UsageError:
        return False
    return json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)


def measured_earlier(path: Path, recipe: Recipe, seed: int, precision: str, device: str = "auto",
                     compile: bool = False) -> dict | None:
    """The row already recorded in `path` for this recipe, seed, epochs, effective precision and device, if any."""
    dev = resolve_device(device)
    amp = resolve_precision(recipe.precision if precision == "recipe" else precision, dev)
    wanted = "fp32" if amp is None else "bf16"
    for r in read_results(path):
        if (r["recipe"], r["seed"], r["epochs"], r["precision"], r.get("device", "cpu").split(":")[0]) == \
                (recipe.name, seed, recipe.epochs, wanted, dev.type) and r.get("compiled", False) == compile \
                and _same(r.get("recipe_config", recipe.to_dict()), recipe.to_dict()):
            return r
    return None


def measure_runs(path: Path, recipe: Recipe, runs: int, precision: str, ds: Dataset, group: str,
                 device: str = "auto", compile: bool = False) -> None:
    """Seeds 0..runs-1 of `recipe`: each read back from `path` if measured earlier, else trained (run directory
    <path's folder>/<group>/<recipe>-<precision>-s<seed>), evaluated and appended to `path`; a line per run."""
    for seed in range(runs):
        done = measured_earlier(path, recipe, seed, precision, device, compile)
        if done:
            print(f"{recipe.name} seed {seed}: {done['test_accuracy'] * 100:.2f}% (measured earlier)")
            continue
        out = Path(path).parent / group / f"{recipe.name}-{precision}{'-compiled' if compile else ''}-s{seed}"
        row = measure_run(recipe, seed, precision, ds, out, device=device, compile=compile)
        append_result(path, row)
        print(f"{recipe.name} seed {seed}: {row['test_accuracy'] * 100:.2f}% in {row['train_seconds']:.1f}s "
              f"({row['seconds_per_epoch']:.2f} s/epoch, {row['precision']}, {row['device']}, "
              + (f"compile {row['compile_seconds']:.1f}s apart, " if compile else "") +
              f"load {row['load_before']:.1f})", flush=True)


if __name__ == "__main__":
    raise SystemExit("benchmarks.kit is a helper module of every benchmark script, not a script; the scripts are the other "
                     "modules of benchmarks/ (`python -m benchmarks.NAME --help`)")

"""The seeds' Keras code and fmnist, timed in turns on the same machine: the seed reproduction's speed target (2x).

Each round runs the Keras `baseline` (seed 002: 10 epochs, batch 32, no validation), then ours with the same
protocol, then the Keras MiniVGGNet for a few epochs (test set as validation_data, as seeds 000/001 do), then
ours likewise. Every job is a fresh process and only one runs at a time, so both sides see the same machine
within a minute of each other; the speed-up is the ratio of the medians over the rounds.

    python3 -m venv /tmp/keras && /tmp/keras/bin/pip install tensorflow-cpu rich      # once
    .venv/bin/python -m benchmarks.side_by_side --keras-python /tmp/keras/bin/python
    .venv/bin/python -m benchmarks.side_by_side --systems baseline --rounds 3          # more rounds of one
    .venv/bin/python -m benchmarks.side_by_side --quick       # ours only, 1 epoch on 2,000 images: checks the script
    .venv/bin/python -m benchmarks.side_by_side --quick --keras-python /tmp/keras/bin/python   # both sides, short

Our side trains with `fmnist.train.loop.fit` and reports the fp32 test accuracy `fmnist evaluate` would print
for the model (fmnist.inference.evaluate through a Predictor; flip TTA where the recipe has it); the Keras side
is benchmarks/keras_reference.py in the Keras Python (PYTHONPATH=src, for fmnist's verified arrays). Results go
to runs/bench/side_by_side.json (or --out) and, unless --quick, the "keras" section of docs/results.md. Without
--keras-python, --quick runs our side only and says that Keras was skipped; the full run looks for
/tmp/keras/bin/python.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

import torch

from benchmarks import kit
from fmnist.checkpoint import ModelMeta
from fmnist.config import TrainOptions
from fmnist.inference import Predictor, evaluate
from fmnist.recipes import get_recipe
from fmnist.train.loop import TrainData, fit

DEFAULT_KERAS = "/tmp/keras/bin/python"
SYSTEMS = ("baseline", "minivgg")


def time_ours(system: str, epochs: int, quick: bool, device: str) -> dict:
    """Our engine on `system` with the seed's protocol; the same fields keras_reference.py prints."""
    ds = kit.dataset(quick)
    recipe = get_recipe(system).replace(epochs=epochs)
    test = (ds.test.images, ds.test.labels)
    val = test if system == "minivgg" else None  # seeds 000/001 validate on the test set every epoch
    data = TrainData((ds.train.images, ds.train.labels), val, len(ds.classes))
    result = fit(recipe, data, TrainOptions(device=device))
    meta = ModelMeta.for_recipe(recipe, list(ds.classes), dataset=ds.name)
    acc = evaluate(Predictor(result.model, meta, device=result.device), *test)["accuracy"]
    epoch_seconds = [h.seconds for h in result.history]
    per_epoch = statistics.median(epoch_seconds) if system == "minivgg" else result.seconds / epochs
    return {"system": system, "epochs": epochs, "train_seconds": result.seconds, "epoch_seconds": epoch_seconds,
            "seconds_per_epoch": per_epoch, "test_accuracy": acc, "precision": result.precision,
            "fused_kernels": result.extras.get("fused_kernels", []), "quick": quick,
            "versions": f"fmnist, PyTorch {torch.__version__}"}


def run_json(cmd: list[str], env_path: str | None = None) -> dict:
    """Run one timing job in its own process (from the repository root) and parse the JSON line it prints last."""
    env = dict(os.environ)
    if env_path:
        env["PYTHONPATH"] = env_path
    out = subprocess.run(cmd, check=True, capture_output=True, text=True, env=env, cwd=kit.ROOT).stdout
    return json.loads(out.strip().splitlines()[-1])


def job(side: str, system: str, epochs: int, args) -> dict:
    """One timing job of `side`, in a fresh process."""
    quick = ["--quick"] if args.quick else []
    if side == "keras":
        cmd = [args.keras_python, "-m", "benchmarks.keras_reference", "--system", system, "--epochs", str(epochs),
               "--json"]
        if args.quick:
            cmd += ["--limit", str(kit.QUICK_LIMIT), "--test-limit", str(kit.QUICK_TEST)]
        return run_json(cmd, env_path=str(kit.ROOT / "src"))
    return run_json([sys.executable, "-m", "benchmarks.side_by_side", "--ours", system, "--epochs", str(epochs),
                     "--device", args.device, *quick])


def main(argv: list[str] | None = None) -> None:
    parser = kit.parser(__doc__, out_help="the results file (default runs/bench/side_by_side.json)")
    parser.add_argument("--keras-python", default=None,
                        help=f"a Python with tensorflow + keras (default {DEFAULT_KERAS})")
    parser.add_argument("--rounds", type=kit.positive, default=None, help="default 2 (1 with --quick)")
    parser.add_argument("--baseline-epochs", type=kit.positive, default=None,
                        help=f"default 10 ({kit.QUICK_EPOCHS} with --quick)")
    parser.add_argument("--minivgg-epochs", type=kit.positive, default=None,
                        help=f"per side per round (median epoch time); default 3 ({kit.QUICK_EPOCHS} with --quick)")
    parser.add_argument("--ours", metavar="SYSTEM", help=argparse.SUPPRESS)  # internal: one timing job, JSON out
    parser.add_argument("--epochs", type=kit.positive, default=10, help=argparse.SUPPRESS)
    parser.add_argument("--render", action="store_true", help="only rewrite the table from the results file")
    parser.add_argument("--systems", nargs="+", choices=SYSTEMS, default=list(SYSTEMS))
    args = parser.parse_args(argv)
    kit.begin(args)  # a timing job (--ours) too: it is a process of its own
    results = args.out or kit.bench_dir(args.quick) / "side_by_side.json"

    if args.ours:
        print(json.dumps(time_ours(args.ours, args.epochs, args.quick, args.device)), flush=True)
        return
    if args.render:
        section = render(kit.read_results(results))
        print(section)
        kit.publish(args, "keras", section)
        return
    sides = ["keras", "fmnist"]
    quick = args.quick  # an explicit value holds under --quick too
    args.rounds = args.rounds or (1 if quick else 2)
    args.baseline_epochs = args.baseline_epochs or (kit.QUICK_EPOCHS if quick else 10)
    args.minivgg_epochs = args.minivgg_epochs or (kit.QUICK_EPOCHS if quick else 3)
    if args.quick:
        kit.clear_quick(results)
        if args.keras_python is None:
            sides = ["fmnist"]
            print("Keras skipped: no --keras-python given (--quick runs our side only)")
    args.keras_python = args.keras_python or DEFAULT_KERAS
    if "keras" in sides and not Path(args.keras_python).exists():
        sys.exit(f"no Python at {args.keras_python}; make one with: python3 -m venv /tmp/keras && "
                 "/tmp/keras/bin/pip install tensorflow-cpu rich")
    jobs = [(name, epochs) for name, epochs in (("baseline", args.baseline_epochs), ("minivgg", args.minivgg_epochs))
            if name in args.systems]
    started = kit.now()
    for r in range(args.rounds):
        for system, epochs in jobs:
            for side in sides:
                load = kit.load_average()
                row = job(side, system, epochs, args)
                row.update(side=side, round=r, load_before=load, machine=kit.machine(), date=kit.now())
                kit.append_result(results, row)
                print(f"round {r + 1} {side:6s} {system:8s}: {row['seconds_per_epoch']:.2f} s/epoch, "
                      f"{row['train_seconds']:.1f} s, {row['test_accuracy'] * 100:.2f}% test after {epochs} epochs "
                      f"(load {load:.1f})", flush=True)
    section = render([row for row in kit.read_results(results) if row.get("date", "") >= started[:10]])
    print()
    print(section)
    kit.publish(args, "keras", section)


def side_cells(rs: list[dict]) -> tuple[str, str]:
    """(median s/epoch with each round's in brackets, test accuracies) of one side's jobs, or dashes."""
    if not rs:
        return kit.NONE, kit.NONE
    each = " / ".join(f"{r['seconds_per_epoch']:.2f}" for r in rs)
    acc = " / ".join(f"{r['test_accuracy'] * 100:.2f}" for r in rs)
    return f"{statistics.median(r['seconds_per_epoch'] for r in rs):.2f} ({each})", acc


def render(rows: list[dict]) -> str:
    """Medians per side and system, the speed-up, and every round's figures (dashes for a side not run)."""
    cells = []
    for system in SYSTEMS:
        keras, ours = ([r for r in rows if r["system"] == system and r["side"] == side] for side in ("keras", "fmnist"))
        if not (keras or ours):
            continue
        (k_time, k_acc), (o_time, o_acc) = side_cells(keras), side_cells(ours)
        medians = per_round = kit.NONE
        if keras and ours:
            k_med, o_med = (statistics.median(r["seconds_per_epoch"] for r in rs) for rs in (keras, ours))
            # The k-th Keras job of a system pairs with the k-th of ours: they ran back to back.
            ratios = [k["seconds_per_epoch"] / f["seconds_per_epoch"] for k, f in zip(keras, ours, strict=False)]
            medians = f"**{k_med / o_med:.2f}x**"
            per_round = " / ".join(f"{r:.2f}" for r in ratios) + f" (**{statistics.median(ratios):.2f}x**)"
        cells.append([f"`{system}`", (keras or ours)[0]["epochs"], k_time, o_time, medians, per_round, k_acc, o_acc,
                      min(len(keras), len(ours))])
    header = ["system", "epochs", "Keras s/epoch", "fmnist s/epoch", "speed-up, medians", "speed-up per round (median)",
              "Keras test %", "fmnist test %", "rounds"]
    versions = sorted({r["versions"] for r in rows})
    return "\n".join([
        "## Side by side with the seeds' Keras code (the seed reproduction's speed target)",
        "",
        "`python -m benchmarks.side_by_side` runs, in turns, the seeds' own Keras models (`keras_reference.py`) and",
        "ours with the same protocol on the same verified arrays, one process at a time: `baseline` for 10 epochs on",
        "the full training set without validation (seed 002's final run), MiniVGGNet for a few epochs with the test",
        "set as validation data (seeds 000/001; an epoch's time includes that validation). Seconds per epoch are",
        "the median over the rounds (each round's figure in brackets, in order). Two speed-ups: Keras' median over",
        "ours, and each round's Keras time over ours from the same round (the machine's speed drifts by tens of",
        "percent from minute to minute, and a round's two jobs run within a minute of each other) with their",
        "median. Test accuracy is after the epochs timed, one figure per round.",
        "",
        kit.markdown(header, cells),
        "",
        f"{'; '.join(versions)}. Machine: {rows[-1]['machine']}; load average before each job "
        f"{kit.loads_line(rows)}; {rows[0]['date']} to {rows[-1]['date']}.",
    ])


if __name__ == "__main__":
    kit.run(main)

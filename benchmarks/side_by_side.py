"""The seeds' Keras code and fmnist, timed in turns on the same machine: issue 3's speed target (2x).

Each round runs the Keras `baseline` (seed 002: 10 epochs, batch 32, no validation), then ours with the same
protocol, then the Keras MiniVGGNet for a few epochs (test set as validation_data, as seeds 000/001 do), then
ours likewise. Every job is a fresh process and only one runs at a time, so both sides see the same machine
within a minute of each other; the speed-up is the ratio of the medians over the rounds.

    python3 -m venv /tmp/keras && /tmp/keras/bin/pip install tensorflow-cpu rich      # once
    .venv/bin/python benchmarks/side_by_side.py --keras-python /tmp/keras/bin/python
    .venv/bin/python benchmarks/side_by_side.py --keras-python /tmp/keras/bin/python --quick   # 1 round, short
    .venv/bin/python benchmarks/side_by_side.py --systems baseline --rounds 3                  # more rounds of one

Results go to runs/bench/side_by_side.json and (unless --quick) the "keras" section of docs/results.md.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import ROOT, append_result, load_average, machine, read_results, update_section  # noqa: E402

HERE = Path(__file__).resolve().parent


def time_ours(system: str, epochs: int) -> dict:
    """Our engine on `system` with the seed's protocol; the same fields keras_reference.py prints."""
    import torch

    from fmnist.data import load_dataset
    from fmnist.engine.trainer import TrainOptions, evaluate_tensors, fit, to_device_tensors
    from fmnist.recipes import get_recipe

    ds = load_dataset()
    recipe = get_recipe(system).replace(epochs=epochs)
    test = (ds.test.images, ds.test.labels)
    val = test if system == "minivgg" else None  # seeds 000/001 validate on the test set every epoch
    result = fit(recipe, (ds.train.images, ds.train.labels), val, TrainOptions(), num_classes=10)
    xt, yt = to_device_tensors(*test, result.device, recipe.mean, recipe.std, channels_last=True)
    _, acc = evaluate_tensors(result.model, xt, yt, amp=None if result.precision == "fp32" else torch.bfloat16)
    epoch_seconds = [h.seconds for h in result.history]
    per_epoch = statistics.median(epoch_seconds) if system == "minivgg" else result.seconds / epochs
    return {"system": system, "epochs": epochs, "train_seconds": result.seconds, "epoch_seconds": epoch_seconds,
            "seconds_per_epoch": per_epoch, "test_accuracy": acc, "precision": result.precision,
            "fused_kernels": result.extras.get("fused_kernels", []),
            "versions": f"fmnist, PyTorch {torch.__version__}"}


def run_json(cmd: list[str], env_path: str | None = None) -> dict:
    """Run one timing job in its own process and parse the JSON line it prints last."""
    env = dict(os.environ)
    if env_path:
        env["PYTHONPATH"] = env_path
    out = subprocess.run(cmd, check=True, capture_output=True, text=True, env=env, cwd=ROOT).stdout
    return json.loads(out.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--keras-python", default="/tmp/keras/bin/python", help="a Python with tensorflow + keras")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--baseline-epochs", type=int, default=10)
    parser.add_argument("--minivgg-epochs", type=int, default=3, help="per side per round (median epoch time)")
    parser.add_argument("--quick", action="store_true", help="1 round, 1 baseline and 2 MiniVGGNet epochs; docs untouched")
    parser.add_argument("--ours", metavar="SYSTEM", help=argparse.SUPPRESS)  # internal: one timing job, JSON out
    parser.add_argument("--epochs", type=int, default=10, help=argparse.SUPPRESS)
    parser.add_argument("--results", type=Path, default=ROOT / "runs" / "bench" / "side_by_side.json")
    parser.add_argument("--render", action="store_true", help="only rewrite the table from the results file")
    parser.add_argument("--systems", nargs="+", choices=["baseline", "minivgg"], default=["baseline", "minivgg"])
    args = parser.parse_args()

    if args.ours:
        print(json.dumps(time_ours(args.ours, args.epochs)), flush=True)
        return
    if args.render:
        rows = read_results(args.results)
        print(render(rows))
        update_section("keras", render(rows))
        return
    if not Path(args.keras_python).exists():
        sys.exit(f"no Python at {args.keras_python}; make one with: python3 -m venv /tmp/keras && "
                 "/tmp/keras/bin/pip install tensorflow-cpu rich")
    if args.quick:
        args.rounds, args.baseline_epochs, args.minivgg_epochs = 1, 1, 2
    results = args.results.with_name("side_by_side-quick.json") if args.quick else args.results
    jobs = [(name, epochs) for name, epochs in (("baseline", args.baseline_epochs), ("minivgg", args.minivgg_epochs))
            if name in args.systems]
    for r in range(args.rounds):
        for system, epochs in jobs:
            for side in ("keras", "fmnist"):
                load = load_average()
                if side == "keras":
                    cmd = [args.keras_python, str(HERE / "keras_reference.py"), "--system", system, "--epochs", str(epochs), "--json"]
                    row = run_json(cmd, env_path=str(ROOT / "src"))
                else:
                    row = run_json([sys.executable, str(HERE / "side_by_side.py"), "--ours", system, "--epochs", str(epochs)])
                row.update(side=side, round=r, load_before=load, machine=machine(), date=time.strftime("%Y-%m-%d %H:%M"))
                append_result(results, row)
                print(f"round {r + 1} {side:6s} {system:8s}: {row['seconds_per_epoch']:.2f} s/epoch, "
                      f"{row['train_seconds']:.1f} s, {row['test_accuracy'] * 100:.2f}% test after {epochs} epochs "
                      f"(load {load:.1f})", flush=True)
    table = render([row for row in read_results(results) if row.get("date", "") >= time.strftime("%Y-%m-%d")])
    print(table)
    if not args.quick:
        update_section("keras", table)


def render(rows: list[dict]) -> str:
    """Medians per side and system, the speed-up, and every round's figures."""
    lines = [
        "## Side by side with the seeds' Keras code (issue 3's speed target)",
        "",
        "`benchmarks/side_by_side.py` runs, in turns, the seeds' own Keras models (`keras_reference.py`) and ours",
        "with the same protocol on the same verified arrays, one process at a time: `baseline` for 10 epochs on the",
        "full training set without validation (seed 002's final run), MiniVGGNet for a few epochs with the test",
        "set as validation data (seeds 000/001; an epoch's time includes that validation). Seconds per epoch are",
        "the median over the rounds (each round's figure in brackets, in order). Two speed-ups: Keras' median over",
        "ours, and each round's Keras time over ours from the same round (the machine's speed drifts by tens of",
        "percent from minute to minute, and a round's two jobs run within a minute of each other) with their",
        "median. Test accuracy is after the epochs timed, one figure per round.",
        "",
        "| system | epochs | Keras s/epoch | fmnist s/epoch | speed-up, medians | speed-up per round (median) | Keras test % | fmnist test % | rounds |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for system in ("baseline", "minivgg"):
        by_side = {side: [r for r in rows if r["system"] == system and r["side"] == side] for side in ("keras", "fmnist")}
        if not all(by_side.values()):
            continue
        med = {side: statistics.median(r["seconds_per_epoch"] for r in rs) for side, rs in by_side.items()}
        acc = {side: " / ".join(f"{r['test_accuracy'] * 100:.2f}" for r in rs) for side, rs in by_side.items()}
        each = {side: " / ".join(f"{r['seconds_per_epoch']:.2f}" for r in rs) for side, rs in by_side.items()}
        # The k-th Keras job of a system pairs with the k-th of ours: they ran back to back.
        ratios = [k["seconds_per_epoch"] / f["seconds_per_epoch"] for k, f in zip(by_side["keras"], by_side["fmnist"])]
        per_round = " / ".join(f"{r:.2f}" for r in ratios)
        lines.append(
            f"| `{system}` | {by_side['keras'][0]['epochs']} | {med['keras']:.2f} ({each['keras']}) | "
            f"{med['fmnist']:.2f} ({each['fmnist']}) | **{med['keras'] / med['fmnist']:.2f}x** | "
            f"{per_round} (**{statistics.median(ratios):.2f}x**) | {acc['keras']} | {acc['fmnist']} | "
            f"{min(len(v) for v in by_side.values())} |"
        )
    versions = sorted({r["versions"] for r in rows})
    loads = [r["load_before"] for r in rows]
    lines += ["", f"{'; '.join(versions)}. Machine: {rows[-1]['machine']}; load average before each job "
              f"{min(loads):.1f} to {max(loads):.1f}; {rows[0]['date']} to {rows[-1]['date']}."]
    return "\n".join(lines)


if __name__ == "__main__":
    main()

"""The web service under load, and the inference backends side by side.

    python -m benchmarks.serve_load                  # backends table + HTTP load table
    python -m benchmarks.serve_load --hostile        # and the hostile mix (10,000 requests, 32 clients, 10% bad)
    python -m benchmarks.serve_load --write          # the tables into docs/results.md
    python -m benchmarks.serve_load --quick          # a few requests per configuration (smoke test)
    python -m benchmarks.serve_load --model runs/main

Backends: images/s at batch 1, 64 and 1024 and single-image latency of `Predictor.predict_proba` (uint8 in,
probabilities out: normalization and the model's flip test-time augmentation included) for torch eager fp32,
torch bf16 autocast and ONNX Runtime, in turns in this process.
HTTP: `fmnist serve` in a child process; N keep-alive clients each send M requests on loopback (benchmarks.
http_load), for 28x28 PNGs and for photo-sized JPEGs (640x480, through the photo pipeline), torch vs onnx,
micro-batching on vs off (--max-batch 1: one model call per request). Client and server share the machine's
cores, as they would on one small host. Without --model, a `fast`-architecture model with fresh weights is
served (speed does not depend on the weights).
"""

from __future__ import annotations

import statistics
import threading
import time
from pathlib import Path

import numpy as np
import torch

from benchmarks import kit
from benchmarks.http_load import Request, Server, bomb_png, multipart, post, run_load
from benchmarks.photo_synth import photo
from fmnist.checkpoint import ModelMeta, resolve_model_path, save_model
from fmnist.data import DEFAULT_DATASET, get_spec, load_split
from fmnist.export import load_predictor
from fmnist.imaging import encode_image
from fmnist.inference import Predictor
from fmnist.models import build_model
from fmnist.recipes import get_recipe

BATCHES = [1, 64, 1024]


def model_file(args) -> Path:
    if args.model is not None:
        return resolve_model_path(args.model)
    main = kit.ROOT / "runs" / "main" / "model.safetensors"
    if main.exists() and not args.quick:
        return main
    path = kit.bench_dir(args.quick) / "serve-model.safetensors"
    if not path.exists():
        recipe = get_recipe("fast")
        torch.manual_seed(0)
        model = build_model(recipe.model, in_channels=1, num_classes=10, **recipe.model_args).eval()
        save_model(path, model, ModelMeta.for_recipe(recipe, list(get_spec(DEFAULT_DATASET).classes), dataset="fashion-mnist"))
    return path


def backends_table(path: Path, quick: bool) -> list[list[str]]:
    predictors = {"torch eager fp32": Predictor.from_file(path)}
    bf16 = Predictor.from_file(path)
    bf16.amp = torch.bfloat16
    predictors["torch bf16"] = bf16
    predictors["torch fp32, BN folded (as served)"] = load_predictor(path, "torch", serving=True)
    predictors["ONNX Runtime"] = load_predictor(path, "onnx")
    rng = np.random.default_rng(0)
    seconds, reps = (0.2, 20) if quick else (2.0, 300)
    results: dict[str, dict] = {name: {} for name in predictors}
    for batch in BATCHES:  # in turns: every backend at one batch size before the next size
        x = rng.integers(0, 255, (batch, 28, 28), dtype=np.uint8)
        for name, p in predictors.items():
            for _ in range(3):
                p.predict_proba(x)
            n, start = 0, time.perf_counter()
            while n == 0 or time.perf_counter() - start < seconds:
                p.predict_proba(x)
                n += 1
            results[name][batch] = n * batch / (time.perf_counter() - start)
    one = rng.integers(0, 255, (1, 28, 28), dtype=np.uint8)
    for name, p in predictors.items():
        times = []
        for _ in range(reps):
            t = time.perf_counter()
            p.predict_proba(one)
            times.append((time.perf_counter() - t) * 1e3)
        q = statistics.quantiles(times, n=100)
        results[name]["p50"], results[name]["p99"] = q[49], q[98]
    rows = []
    for name, r in results.items():
        rows.append([name, *(f"{r[b]:,.0f}" for b in BATCHES), f"{r['p50']:.2f}", f"{r['p99']:.2f}"])
        print(f"{name:>33}: " + ", ".join(f"batch {b} {r[b]:,.0f} img/s" for b in BATCHES)
              + f"; one image p50 {r['p50']:.2f} ms, p99 {r['p99']:.2f} ms", flush=True)
    ratio = results["torch eager fp32"]["p50"] / results["ONNX Runtime"]["p50"]
    print(f"ONNX Runtime single-image latency: {ratio:.1f}x lower than torch eager fp32 (target: at least 3x)")
    return rows


def payloads(quick: bool) -> dict[str, bytes]:
    """Request bodies: test-set 28x28 PNGs, and photo-like 640x480 JPEGs made from test images."""
    test = load_split("test", download=False)
    rng = np.random.default_rng(0)
    pngs = [multipart(f"t{i}.png", encode_image(test.images[i]), "image/png") for i in range(64)]
    jpegs = []
    for i in range(4 if quick else 16):
        img = photo(test.images[i], "white", rng).convert("RGB").resize((640, 480))
        jpegs.append(multipart(f"p{i}.jpg", encode_image(np.asarray(img), "JPEG"), "image/jpeg"))
    return {"png": pngs, "jpeg": jpegs}


def plan(bodies: list[bytes], clients: int, per_client: int) -> list[list[Request]]:
    return [[Request("normal", post("/v1/predict", bodies[(c * per_client + i) % len(bodies)]))
             for i in range(per_client)] for c in range(clients)]


def load_table(path: Path, bodies: dict[str, list[bytes]], quick: bool) -> list[list[str]]:
    configs = []  # (payload, backend, batching, clients, requests per client)
    for clients in ((8,) if quick else (16, 32)):
        for backend in ("torch", "onnx"):
            for batching in (True, False):
                configs.append(("png", backend, batching, clients, 10 if quick else 250))
    for backend in ("torch", "onnx"):
        configs.append(("jpeg", backend, True, 4 if quick else 16, 3 if quick else 20))
    rows, rps = [], {}
    for payload, backend, batching, clients, m in configs:
        options = ["--backend", backend] + ([] if batching else ["--max-batch", "1"])
        with Server(path, *options) as server:
            run_load(server.url, plan(bodies[payload], clients, 5))  # warm the connections and code paths
            r = run_load(server.url, plan(bodies[payload], clients, m))
        p50, p95, p99 = r.quantiles_ms()
        bad = r.errors + r.count_status(lambda s: s != 200)
        rps[(payload, backend, batching, clients)] = r.rps()
        label = "png 28x28" if payload == "png" else "jpeg 640x480"
        rows.append([label, backend, "on" if batching else "off", str(clients), f"{r.count:,}", f"{r.rps():,.0f}",
                     f"{p50:.1f}", f"{p95:.1f}", f"{p99:.1f}", str(bad)])
        print(f"{label:>12} {backend:>5} batching {rows[-1][2]:>3}, {clients:>2} clients: {r.rps():,.0f} req/s, "
              f"p50/p95/p99 {p50:.1f}/{p95:.1f}/{p99:.1f} ms, {bad} errors of {r.count:,}", flush=True)
    for backend in ("torch", "onnx"):
        c = 8 if quick else 32
        on, off = rps[("png", backend, True, c)], rps[("png", backend, False, c)]
        print(f"micro-batching at {c} clients, {backend}: {on / off:.2f}x the requests/s of one call per request "
              "(target: at least 2x)")
    return rows


def hostile_plan(bodies: list[bytes], clients: int, total: int, rng: np.random.Generator) -> list[list[Request]]:
    """`total` requests, 10% of them hostile: decompression bombs, truncated and non-images, bodies over the
    size limit (declared or streamed), and slow bodies that trickle in slower than the request timeout."""
    bomb = multipart("bomb.png", bomb_png(30000, 30000), "image/png")
    truncated = multipart("cut.png", encode_image(np.full((28, 28), 9, np.uint8))[:50], "image/png")
    text = multipart("notes.png", b"not an image at all", "image/png")
    kinds = {
        "bomb": lambda: Request("bomb", post("/v1/predict", bomb)),
        "truncated": lambda: Request("truncated", post("/v1/predict", truncated)),
        "not image": lambda: Request("not image", post("/v1/predict", text)),
        # Over the 10 MB limit: the headers declare 11 MB; the client keeps sending until the server answers.
        "oversize": lambda: Request("oversize", post("/v1/predict", b"\0" * 4096, content_length=11 * 1024 * 1024),
                                    trickle=[b"\0" * 4096] * 64, pause_s=0.001),
        "slow body": lambda: Request("slow body", post("/v1/predict", b"", content_length=4096),
                                     trickle=[b"\0" * 64] * 8, pause_s=0.5),
    }
    weights = {"bomb": 3, "truncated": 3, "not image": 2, "oversize": 1.5, "slow body": 0.5}  # percent
    names = list(weights)
    p = np.array([weights[n] for n in names]) / 100
    per_client = total // clients
    out = []
    for c in range(clients):
        reqs = []
        for i in range(per_client):
            u = rng.random()
            cum = np.cumsum(p)
            k = int(np.searchsorted(cum, u, side="right"))
            reqs.append(kinds[names[k]]() if k < len(names) else
                        Request("normal", post("/v1/predict", bodies[(c * per_client + i) % len(bodies)])))
        out.append(reqs)
    return out


def hostile(path: Path, bodies: list[bytes], quick: bool) -> str:
    clients, total = (8, 200) if quick else (32, 10_000)
    rng = np.random.default_rng(0)
    with Server(path, "--timeout", "2", "--backend", "onnx") as server:
        run_load(server.url, plan(bodies, clients, 20))  # warm-up
        rss0 = server.rss_mb()
        calm = run_load(server.url, plan(bodies, clients, total // clients // 4), max_seconds=600)
        r = run_load(server.url, hostile_plan(bodies, clients, total, rng), max_seconds=900, timeout_s=30)
        rss1 = server.rss_mb()
        # Shutdown with requests in flight: send them, then SIGTERM at once; each must still be answered.
        inflight: dict = {}
        t = threading.Thread(target=lambda: inflight.setdefault("r", run_load(server.url, plan(bodies, 16, 1))))
        t.start()
        time.sleep(0.05)
        code = server.terminate()
        t.join(30)
    answered = inflight["r"].count_status(lambda s: s == 200) if "r" in inflight else 0
    five = r.count_status(lambda s: s >= 500)
    lines = [f"{r.count:,} requests from {clients} clients in {r.seconds:.1f} s"
             + (" (**stopped at the time limit**)" if r.stopped_early else "") + "; statuses by kind:"]
    for kind, statuses in sorted(r.statuses.items()):
        lines.append(f"- {kind}: " + ", ".join(f"{s}: {n}" for s, n in sorted(statuses.items())))
    cp50, _, cp99 = calm.quantiles_ms()
    hp50, _, hp99 = r.quantiles_ms()
    lines += [
        f"- connection errors or timeouts (no status): {r.errors}"
        + (f" ({', '.join(f'{k}: {n}' for k, n in sorted(r.errors_by_kind.items()))})" if r.errors else ""),
        f"- 5xx responses: **{five}**",
        f"- normal requests, p50/p99 ms: {cp50:.1f}/{cp99:.1f} in a normal-only load with as many clients vs "
        f"{hp50:.1f}/{hp99:.1f} among the hostile ones",
        f"- server memory: {rss0:.0f} MB after warm-up, {rss1:.0f} MB after the hostile load ({(rss1 / rss0 - 1) * 100:+.1f}%)",
        f"- SIGTERM with 16 requests in flight: exit code {code}, {answered} of 16 answered 200",
    ]
    text = "\n".join(lines)
    print(text)
    return text


def main() -> None:
    p = kit.parser(__doc__, "also write the tables to this file")
    p.add_argument("--model", type=Path, default=None, help="model file or run directory to serve")
    p.add_argument("--hostile", action="store_true", help="also run the hostile mix")
    p.add_argument("--write", action="store_true", help="write the tables into docs/results.md")
    args = p.parse_args()
    threads = kit.begin(args)
    path = model_file(args)
    print(f"model: {path}")
    backend_rows = backends_table(path, args.quick)
    bodies = payloads(args.quick)
    load_rows = load_table(path, bodies, args.quick)
    hostile_text = hostile(path, bodies["png"], args.quick) if args.hostile or args.quick else None
    section = [
        "## The web service under load (benchmarks.serve_load)",
        "",
        f"Machine: {kit.machine()}, {threads} threads; {kit.now()}. Model: `{path.name}` (fast architecture). "
        "Client and server share the cores.",
        "",
        "Inference backends, `predict_proba` on uint8 images (normalization and flip TTA included): images/s, and "
        "the latency of one image in ms.",
        "",
        kit.markdown(["backend", *(f"batch {b}" for b in BATCHES), "p50 ms", "p99 ms"], backend_rows, "lrrrrr"),
        "",
        "HTTP load on loopback (`fmnist serve`, keep-alive clients, each request one image):",
        "",
        kit.markdown(["payload", "backend", "batching", "clients", "requests", "req/s", "p50 ms", "p95 ms", "p99 ms",
                      "errors"], load_rows, "llllrrrrrr"),
    ]
    if hostile_text:
        section += ["", "Hostile mix (`--hostile`, server `--timeout 2`):", "", hostile_text]
    body = "\n".join(section)
    print()
    print(body)
    kit.save_text(args.out, body)
    kit.publish(args, "serve-load", body, when=args.write)


if __name__ == "__main__":
    kit.run(main)

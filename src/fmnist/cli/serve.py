"""`fmnist serve MODEL`: the model behind an HTTP API (FastAPI on uvicorn) with a page to try it at `/`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from fmnist.cli.common import DataDirOption, err, settings


def serve(
    ctx: typer.Context,
    model: Annotated[Path, typer.Argument(help="A model.safetensors file, a run directory, or a .onnx file.")],
    host: Annotated[str, typer.Option(help="Address to listen on; 0.0.0.0 opens it to the network.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port; 0 picks a free one.", min=0, max=65535)] = 8000,
    backend: Annotated[str, typer.Option(help=(
        "auto (ONNX Runtime on the CPU when installed, the fastest; else PyTorch), torch or onnx."))] = "auto",
    max_batch: Annotated[int, typer.Option(help=(
        "Images per model call, gathered from waiting requests (a request is never split: a larger one runs "
        "alone); 1 turns micro-batching off."))] = 64,
    batch_delay_ms: Annotated[float, typer.Option(help="How long a batch waits for more requests, in ms.")] = 2.0,
    queue_size: Annotated[int, typer.Option(help="Requests that may wait for the model before 503s.")] = 512,
    max_request_mb: Annotated[float, typer.Option(help="Largest request body, in MB.")] = 10.0,
    max_images: Annotated[int, typer.Option(help="Images per request.")] = 64,
    max_pixels: Annotated[int, typer.Option(help="Pixels per image (larger ones are refused unread).")] = 40_000_000,
    timeout: Annotated[float, typer.Option(help="Seconds a request may take to arrive, and to be answered.")] = 10.0,
    threads: Annotated[Optional[int], typer.Option(help="Threads for the model (default: every core).", min=1,
                                                   show_default=False)] = None,
    data_dir: DataDirOption = None,
) -> None:
    """Serve a model: POST /v1/predict, GET /v1/model, /healthz, /readyz, /metrics, /docs, and a page at /.

    The gallery and model card use the model's test set when it is on this machine (nothing is downloaded).
    Stop with Ctrl-C or SIGTERM: requests in flight are answered first.
    """
    from fmnist.errors import UsageError
    from fmnist.export import load_predictor
    from fmnist.runtime import configure_process, resolve_device
    from fmnist.serve import ServeSettings, create_app
    from fmnist.serve.card import card_for
    from fmnist.serve.server import bind, url_of
    from fmnist.serve.server import serve as run_server

    s = settings(ctx, data_dir=data_dir)
    if not 0 < max_request_mb <= 1024:
        raise UsageError(f"--max-request-mb must be more than 0 and at most 1024, got {max_request_mb:g}")
    options = ServeSettings(max_request_bytes=int(max_request_mb * 1024 * 1024), max_pixels=max_pixels,
                            max_images=max_images, request_timeout_s=timeout, max_batch=max_batch,
                            batch_delay_ms=batch_delay_ms, queue_size=queue_size)
    sock = bind(host, port)  # before loading: a port in use fails at once
    configure_process(threads)
    # Idle ONNX Runtime threads sleep rather than spin: the event loop needs the cores between model calls.
    predictor = load_predictor(model, backend=backend, device=resolve_device(s.device), spin=False, serving=True)
    card, note = card_for(predictor, model, s.data_dir)
    if note:
        err.print(note, markup=False, soft_wrap=True)
    app = create_app(predictor, options, card, model_name=model.name)
    batching = f"batches of up to {max_batch}, {batch_delay_ms:g} ms" if max_batch > 1 else "no batching"
    err.print(f"serving {model} ({predictor.backend}, {batching}) on {url_of(sock)}/  (Ctrl-C to stop)",
              markup=False, soft_wrap=True)
    run_server(app, sock)


def register(app: typer.Typer) -> None:
    """Attach `serve`."""
    app.command("serve")(serve)

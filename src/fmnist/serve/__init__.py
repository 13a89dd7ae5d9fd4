"""The web service: `fmnist serve MODEL` puts a model behind an HTTP API and a page to try it.

settings (limits and batching, validated), errors (every failure as JSON with a 4xx/5xx status), upload (request
bodies read into memory under limits, multipart parsed), batcher (concurrent requests run as one model call),
metrics (Prometheus), card (model card and test-set gallery), app (the FastAPI application), server (uvicorn).
"""

from fmnist.serve.app import create_app
from fmnist.serve.card import ModelCard, build_card
from fmnist.serve.server import serve
from fmnist.serve.settings import ServeSettings

__all__ = ["ModelCard", "ServeSettings", "build_card", "create_app", "serve"]

"""Every failure of the service as `{"error": {"code": ..., "message": ...}}` with its HTTP status."""

from __future__ import annotations

import json

from starlette.responses import Response


class ServeError(Exception):
    """A failure to answer with `status` and a machine-readable `code`; `headers` are added (e.g. Retry-After)."""

    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.headers = status, code, message, headers or {}


def error_response(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> Response:
    """The JSON response of an error."""
    body = json.dumps({"error": {"code": code, "message": message}}).encode()
    return Response(body, status_code=status, media_type="application/json", headers=headers)


def bad_request(message: str) -> ServeError:
    return ServeError(400, "bad_request", message)


def unprocessable_image(message: str) -> ServeError:
    return ServeError(422, "bad_image", message)


def too_large(code: str, message: str) -> ServeError:
    return ServeError(413, code, message)


def overloaded(message: str, retry_after_s: int = 1) -> ServeError:
    return ServeError(503, "overloaded", message, {"Retry-After": str(retry_after_s)})

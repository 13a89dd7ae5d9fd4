"""What the service allows and how it batches: one validated record, set from `fmnist serve`'s options."""

from __future__ import annotations

from dataclasses import dataclass

from PIL import Image

from fmnist.errors import UsageError

MB = 1024 * 1024


# The `fmnist serve` option of a setting whose name differs from it (the others are --max-batch for max_batch).
OPTION = {"request_timeout_s": "--timeout", "max_request_bytes": "--max-request-mb (as bytes: 1024 is 0.001 MB)"}


@dataclass(frozen=True)
class ServeSettings:
    """Limits and micro-batching of the service. Defaults suit one model on a small CPU machine."""

    max_request_bytes: int = 10 * MB  # a request body over this is refused (413) before it is read in full
    max_pixels: int = 40_000_000  # per image, from its header, before decoding (a 20000x20000 PNG is 400M)
    max_images: int = 64  # images per request
    request_timeout_s: float = 10.0  # from the request's start: the body read and the answer ready within it
    # Images per model call, gathered from waiting requests (a request is never split: a larger one runs alone);
    # 1 turns micro-batching off (one call per request).
    max_batch: int = 64
    batch_delay_ms: float = 2.0  # how long the first request of a batch waits for others to join it
    queue_size: int = 512  # requests waiting for the model; beyond this the service answers 503
    inline_bytes: int = 16 * 1024  # images this small and at most 64x64 are decoded on the event loop

    def __post_init__(self) -> None:
        checks = [
            ("max_request_bytes", self.max_request_bytes >= 1024, "at least 1024 bytes"),
            # Pillow refuses larger images as decompression bombs whatever is asked here.
            ("max_pixels", 1 <= self.max_pixels <= Image.MAX_IMAGE_PIXELS,
             f"between 1 and {Image.MAX_IMAGE_PIXELS} (the most pixels Pillow decodes)"),
            ("max_images", 1 <= self.max_images <= 10_000, "between 1 and 10000"),
            ("request_timeout_s", 0 < self.request_timeout_s <= 3600, "between 0 and 3600 seconds"),
            ("max_batch", 1 <= self.max_batch <= 4096, "between 1 and 4096"),
            ("batch_delay_ms", 0 <= self.batch_delay_ms <= 1000, "between 0 and 1000 ms"),
            ("queue_size", 1 <= self.queue_size <= 1_000_000, "between 1 and 1000000"),
        ]
        for name, ok, allowed in checks:
            if not ok:
                raise UsageError(f"{OPTION.get(name, '--' + name.replace('_', '-'))} must be {allowed}, "
                                 f"got {getattr(self, name)}")

    @property
    def batching(self) -> bool:
        return self.max_batch > 1

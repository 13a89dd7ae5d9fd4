"""A Rich progress bar per epoch, fed by the trainer's callbacks (always on stderr)."""

from __future__ import annotations

import contextlib
import os
import signal
import threading
from collections.abc import Iterator

from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from fmnist.cli.common import err
from fmnist.train.loop import Callbacks
from fmnist.train.stats import EpochStats


class EpochProgress(Callbacks):
    """One bar per epoch showing running loss and accuracy; a summary line when the epoch ends."""

    def __init__(self, label: str = "", enabled: bool = True, stop: "StopOnSignal | None" = None) -> None:
        self.label = label
        self.enabled = enabled
        self.stop = stop
        self.progress: Progress | None = None
        self.task = None

    def note(self, message: str) -> None:
        if self.enabled:
            err.print(message, markup=False, soft_wrap=True)

    def epoch_start(self, epoch: int, epochs: int, steps: int) -> None:
        if not self.enabled or not err.is_terminal:  # a bar in a log file is only the blank line it leaves
            return
        self.progress = Progress(
            TextColumn(f"{escape(self.label)}epoch {epoch}/{epochs}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[stats]}"),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=err,
            transient=True,
        )
        self.progress.start()
        self.task = self.progress.add_task("train", total=steps, stats="")

    def step(self, step: int, loss: float, acc: float) -> None:
        if self.progress is not None:
            self.progress.update(self.task, completed=step, stats=f"loss {loss:.4f} acc {acc * 100:.2f}%")

    def epoch_end(self, stats: EpochStats) -> None:
        self.close()
        if not self.enabled:
            return
        val = ""
        if stats.val_acc is not None:
            val = f"  val loss {stats.val_loss:.4f} acc {stats.val_acc * 100:.2f}%"
        err.print(
            f"{self.label}epoch {stats.epoch}: loss {stats.train_loss:.4f} acc {stats.train_acc * 100:.2f}%{val}"
            f"  lr {stats.lr:.3g}  {stats.seconds:.1f}s", markup=False,
        )

    def should_stop(self) -> bool:
        if self.stop is None or not self.stop.requested:
            return False
        self.close()
        return True

    def close(self) -> None:
        if self.progress is not None:
            self.progress.stop()  # shows the terminal's cursor again
            self.progress = None


_LAST_SIGNAL = [signal.SIGINT]  # the signal that last asked a command to stop


def interrupt_exit_code() -> int:
    """The exit code of a command a signal stopped, as a shell reports one the signal ended: 128 + its number
    (130 after Ctrl-C, 143 after SIGTERM)."""
    return 128 + int(_LAST_SIGNAL[0])


class StopOnSignal:
    """Ctrl-C (SIGINT) or SIGTERM asks training to stop after the step in progress and write its checkpoint; a
    second signal ends the process at once (exit 130, or 143 after SIGTERM), as a user pressing Ctrl-C twice expects."""

    def __init__(self) -> None:
        self.requested = False

    def _handle(self, signum: int, frame: object) -> None:
        _LAST_SIGNAL[0] = signum
        if self.requested:
            err.print("quit at once: the run keeps the checkpoint of its last finished epoch, if it finished one "
                      "(resume it with `fmnist train --resume RUN`)")
            os._exit(interrupt_exit_code())
        self.requested = True
        err.print("stopping after this step to write a checkpoint (press Ctrl-C again to quit at once)")

    @contextlib.contextmanager
    def installed(self) -> Iterator[None]:
        """Handle SIGINT and SIGTERM while the block runs (in the main thread only), then restore the handlers."""
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        _LAST_SIGNAL[0] = signal.SIGINT  # what a command stopped some other way (Ctrl-C in a library) reports
        previous = {sig: signal.signal(sig, self._handle) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)



@contextlib.contextmanager
def sigterm_as_ctrl_c() -> Iterator[None]:
    """While the block runs (main thread only), SIGTERM (`kill PID`, a container stopping) is handled like Ctrl-C:
    a KeyboardInterrupt, so a sweep or cross-validation keeps what finished and says how to continue."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    def interrupt(signum: int, frame: object) -> None:
        _LAST_SIGNAL[0] = signum
        raise KeyboardInterrupt

    _LAST_SIGNAL[0] = signal.SIGINT  # a KeyboardInterrupt not raised by `interrupt` is Ctrl-C's
    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)

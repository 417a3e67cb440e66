"""Signals that stop a run cleanly, so a stopped run loses no finished step.

Ctrl-C (SIGINT), `kill` or SLURM before a kill (SIGTERM), and SLURM's `--signal` (SIGUSR1,
or SIGUSR2, submitit's preemption and time-limit signal) all ask the loop to stop: it
finishes its step, saves a checkpoint and writes status `interrupted`, then hands the
signal on (`hand_on`). A handler some other program put there first gets it: under
submitit that one requeues the job with the same arguments, and the requeued job resumes
from the checkpoint. Otherwise the run exits with 128 + the signal's number, as a process
killed by it would. Outside the training steps (loading data, the final test evaluation)
a signal stops the run at once: a resume redoes that part. A second signal while stopping
stops at once (KeyboardInterrupt): every file is written atomically, so nothing is torn.
"""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Any

log = logging.getLogger("tokentango.interrupt")

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGUSR1, signal.SIGUSR2)


class RunInterrupted(Exception):
    """The run stopped on a signal after saving its checkpoint (status `interrupted`)."""

    def __init__(self, signum: int, step: int) -> None:
        self.signum, self.step = signum, step
        super().__init__(f"interrupted by {signal.Signals(signum).name} at step {step}")

    @property
    def exit_code(self) -> int:
        return 128 + self.signum


class StopNow(BaseException):
    """Raised by the handler outside `deferred()`, or by the loop on a noted signal. Not an
    Exception, like KeyboardInterrupt: code that wraps errors (Hydra's instantiate, a
    data loader) must let it through."""

    def __init__(self, signum: int) -> None:
        self.signum = signum
        super().__init__(signal.Signals(signum).name)


class StopRequests:
    """While entered (in the main thread), a stop signal raises StopNow; inside
    `deferred()` it is only noted in `signum`, for the loop to act on after its step. A
    second signal raises KeyboardInterrupt at once."""

    def __init__(self) -> None:
        self.signum: int | None = None
        self._previous: dict[int, Any] = {}
        self._deferring = False

    def __enter__(self) -> StopRequests:
        if threading.current_thread() is threading.main_thread():  # signals reach only it
            self._previous = {s: signal.signal(s, self._note) for s in STOP_SIGNALS}
        return self

    def __exit__(self, *exc: object) -> None:
        self.restore()

    @contextmanager
    def deferred(self) -> Iterator[None]:
        self._deferring = True
        try:
            yield
        finally:
            self._deferring = False
        # Reached only when the block ended normally: a signal noted during the last step's
        # evaluation still stops the run.
        if self.signum is not None:
            raise StopNow(self.signum)

    def restore(self) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous = {}

    def _note(self, signum: int, frame: FrameType | None) -> None:
        if self.signum is not None:
            self.restore()
            raise KeyboardInterrupt(f"second signal ({signal.Signals(signum).name})")
        self.signum = signum
        if not self._deferring:
            raise StopNow(signum)
        log.warning("%s: stopping after this step (checkpoint, status interrupted)",
                    signal.Signals(signum).name)  # fmt: skip

    def hand_on(self, step: int) -> None:
        """After the checkpoint: give the signal to the handler that was there before (if
        a program installed one: submitit's requeues the job and exits), then raise
        RunInterrupted."""
        assert self.signum is not None
        previous = self._previous.get(self.signum)
        self.restore()
        if callable(previous) and previous is not signal.default_int_handler:
            previous(self.signum, None)
        raise RunInterrupted(self.signum, step)

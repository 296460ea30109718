"""Pipeline jobs off the event loop: one worker thread per running job, one CancelToken per job."""

from __future__ import annotations

import asyncio
import os
import sys
import threading
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Generic, TypeVar

from cra.pipeline.engine import Cancelled, CancelToken

T = TypeVar("T")


class JobCancelled(Exception):
    """The job was cancelled before or while it ran."""


class Job(Generic[T]):
    """A running pipeline job: await `result()`; `cancel()` from any thread."""

    def __init__(self, job_id: str, token: CancelToken, future: asyncio.Future[T]) -> None:
        self.id = job_id
        self.token = token
        self._future = future

    def cancel(self) -> None:
        self.token.cancel()

    @property
    def cancelled(self) -> bool:
        return self.token.cancelled

    @property
    def done(self) -> bool:
        return self._future.done()

    async def result(self) -> T:
        """The job's return value; raises `JobCancelled` when it stopped because of a cancel."""
        try:
            # shield: cancelling the awaiting coroutine must not orphan the worker's result.
            return await asyncio.shield(self._future)
        except Cancelled:
            raise JobCancelled(f"job {self.id} was cancelled") from None


# Jobs (and the llama.cpp threads they start, which inherit it) run this much nicer than the event loop, so that
# the editor's requests are answered at once even when generation keeps every core busy.
JOB_NICENESS = 5


def _lower_priority() -> None:
    """Make the calling worker thread nicer. Linux only: elsewhere `setpriority` would apply to the whole process."""
    if sys.platform != "linux" or JOB_NICENESS <= 0:
        return
    try:
        tid = threading.get_native_id()
        os.setpriority(os.PRIO_PROCESS, tid, os.getpriority(os.PRIO_PROCESS, tid) + JOB_NICENESS)
    except OSError:
        pass


class JobRunner:
    """Runs `fn(token)` in worker threads; at most `max_workers` jobs compute at once, the rest queue."""

    def __init__(self, max_workers: int = 1) -> None:
        self._executor = ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="cra-job",
                                            initializer=_lower_priority)
        self._jobs: dict[str, Job[object]] = {}
        self._lock = threading.Lock()

    def start(self, fn: Callable[[CancelToken], T], *, job_id: str | None = None) -> Job[T]:
        token = CancelToken()
        job_id = job_id or uuid.uuid4().hex

        def run() -> T:
            if token.cancelled:  # cancelled while queued behind another job
                raise Cancelled("cancelled before it started")
            return fn(token)

        future = asyncio.get_running_loop().run_in_executor(self._executor, run)
        job: Job[T] = Job(job_id, token, future)
        with self._lock:
            self._jobs[job_id] = job  # type: ignore[assignment]
        future.add_done_callback(lambda _: self._forget(job_id))
        return job

    def _forget(self, job_id: str) -> None:
        with self._lock:
            self._jobs.pop(job_id, None)

    @property
    def running(self) -> list[Job[object]]:
        with self._lock:
            return list(self._jobs.values())

    def cancel_all(self) -> int:
        jobs = self.running
        for job in jobs:
            job.cancel()
        return len(jobs)

    async def wait_all(self, timeout: float) -> bool:
        """Wait for every job to finish (after a cancel); False when some still run after `timeout` seconds."""
        pending = [job._future for job in self.running]
        if not pending:
            return True
        done, still = await asyncio.wait(pending, timeout=timeout)
        return not still

    def close(self) -> None:
        self.cancel_all()
        self._executor.shutdown(wait=False, cancel_futures=True)

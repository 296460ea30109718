"""Parse many files on every CPU: forked worker processes and this one pull files, largest first, from one
shared counter. tree-sitter parsing holds the GIL, so threads would not help."""

from __future__ import annotations

import gc
import mmap
import multiprocessing
import os
import queue
import struct
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import msgspec

from cra.pipeline.context import cparse
from cra.pipeline.context.symbols import FileIndex

MAX_PROCESSES = 4
PARALLEL_MIN_BYTES = 2 * 1024 * 1024  # below this, starting processes costs more than it saves


def cpus() -> int:
    """CPUs this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


@contextmanager
def no_gc() -> Iterator[None]:
    """Cyclic GC paused: indexing allocates ~10^6 objects that form no cycles, and each collection would
    re-scan all of them."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def process_count(pending: list[tuple[str, bytes]], processes: int | None = None) -> int:
    """How many processes `parse_all` uses, this one included: `processes` if given (default: one per CPU, at
    most MAX_PROCESSES), and 1 for little work or where processes cannot be forked."""
    count = min(MAX_PROCESSES, cpus()) if processes is None else processes
    count = min(count, len(pending))
    if count <= 1 or sum(len(data) for _, data in pending) < PARALLEL_MIN_BYTES:
        return 1
    if "fork" not in multiprocessing.get_all_start_methods():
        return 1  # spawned workers would re-import the whole program and receive every file's bytes by pickle
    return count


def parse_all(pending: list[tuple[str, bytes]], processes: int = 1) -> list[FileIndex]:
    """`cparse.parse_source` of each (path, data), in order, in `processes` processes (see `process_count`)."""
    if processes > 1:
        try:
            return _Forked(pending).run(processes - 1)
        except (OSError, ImportError):
            pass  # no processes or semaphores here (sandboxes, restricted hosts): parse in this process instead
    return [cparse.parse_source(rel, data) for rel, data in pending]


class _Counter:
    """An int shared by forked processes: anonymous shared memory under a lock (multiprocessing.Value would
    import ctypes, which costs more than the whole counter is used for)."""

    def __init__(self, context: Any, start: int) -> None:
        self._memory = mmap.mmap(-1, 8)  # anonymous: shared with children forked after this
        self._lock = context.Lock()
        struct.pack_into("q", self._memory, 0, start)

    def claim(self, total: int) -> int | None:
        """The current value, which is then incremented; None once it reached `total`."""
        with self._lock:
            (position,) = struct.unpack_from("q", self._memory, 0)
            if position >= total:
                return None
            struct.pack_into("q", self._memory, 0, position + 1)
        return position


def _worker(pending: list[tuple[str, bytes]], order: list[int], counter: _Counter, results: Any) -> None:
    """A forked worker: parse claimed files and send each result (msgpack) as soon as it is ready."""
    gc.disable()
    encoder = msgspec.msgpack.Encoder()
    while (position := counter.claim(len(order))) is not None:
        index = order[position]
        rel, data = pending[index]
        results.put((index, encoder.encode(cparse.parse_source(rel, data))))
    results.put(None)
    results.close()
    results.join_thread()  # a queue's feeder thread writes while this process parses: never blocked on a reader


class _Forked:
    """One parallel parse: this process and forked workers claim files from a shared counter."""

    def __init__(self, pending: list[tuple[str, bytes]]) -> None:
        self.pending = pending
        # Largest first, so that no big file starts last and leaves the other processes idle at the end.
        self.order = sorted(range(len(pending)), key=lambda i: -len(pending[i][1]))
        self.context = multiprocessing.get_context("fork")
        # Position 0, the largest file, is this process's: its result needs no transfer.
        self.counter = _Counter(self.context, 1)
        self.results = self.context.Queue()
        self.done: dict[int, FileIndex] = {}
        self.finished = 0  # workers that reported the end of their work
        self.decoder = msgspec.msgpack.Decoder(FileIndex)

    def run(self, worker_count: int) -> list[FileIndex]:
        cparse.parser(), cparse.query()  # built once here, inherited by the workers
        workers: list[Any] = []
        try:
            for _ in range(worker_count):
                worker = self.context.Process(
                    target=_worker, args=(self.pending, self.order, self.counter, self.results), daemon=True
                )
                try:
                    worker.start()
                except OSError:
                    break  # fewer workers (none: this process parses everything)
                workers.append(worker)
            self._parse_here()
            self._collect(workers)
        finally:
            for worker in workers:
                if worker.is_alive():
                    worker.terminate()  # only after an error here: a finished worker has exited
                worker.join()
            self.results.close()
        # Files a worker claimed but never delivered (it died) are parsed here.
        return [self.done.get(i) or cparse.parse_source(*self.pending[i]) for i in range(len(self.pending))]

    def _parse_here(self) -> None:
        position: int | None = 0
        while position is not None:
            index = self.order[position]
            self.done[index] = cparse.parse_source(*self.pending[index])
            self._drain()  # decoding as results arrive leaves little to decode once parsing ends
            position = self.counter.claim(len(self.order))

    def _collect(self, workers: list[Any]) -> None:
        while self.finished < len(workers):
            try:
                self._receive(self.results.get(timeout=0.5))
            except queue.Empty:
                if not any(worker.is_alive() for worker in workers):
                    break  # a worker died
        self._drain()  # results sent just before a worker exited

    def _drain(self) -> None:
        while True:
            try:
                self._receive(self.results.get_nowait())
            except queue.Empty:
                return

    def _receive(self, item: tuple[int, bytes] | None) -> None:
        if item is None:
            self.finished += 1
        else:
            self.done[item[0]] = self.decoder.decode(item[1])

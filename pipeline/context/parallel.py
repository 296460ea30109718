"""Parse many files on every CPU: forked worker processes and this one pull files, largest first, from one
shared counter. tree-sitter parsing holds the GIL, so threads would not help."""

from __future__ import annotations

import gc
import multiprocessing
import os
import queue
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import msgspec

from pipeline.context import cparse
from pipeline.context.symbols import FileIndex

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


def parse_all(pending: list[tuple[str, bytes]], processes: int | None = None) -> list[FileIndex]:
    """`cparse.parse_source` of each (path, data), in order. `processes`: how many processes parse, this one
    included (default: one per CPU, at most MAX_PROCESSES)."""
    count = min(MAX_PROCESSES, cpus()) if processes is None else processes
    count = min(count, len(pending))
    if count <= 1 or sum(len(data) for _, data in pending) < PARALLEL_MIN_BYTES:
        return [cparse.parse_source(rel, data) for rel, data in pending]
    if "fork" not in multiprocessing.get_all_start_methods():
        # Spawned workers would re-import the whole program and receive every file's bytes by pickle.
        return [cparse.parse_source(rel, data) for rel, data in pending]
    try:
        return _parse_forked(pending, count)
    except OSError:
        # No processes allowed here (sandboxes, restricted hosts): parse in this process instead.
        return [cparse.parse_source(rel, data) for rel, data in pending]


def _claim(counter: Any, total: int) -> int | None:
    """The next unclaimed position in the largest-first order, or None when all are taken."""
    with counter.get_lock():
        position = counter.value
        if position >= total:
            return None
        counter.value = position + 1
    return position


def _worker(pending: list[tuple[str, bytes]], order: list[int], counter: Any, results: Any) -> None:
    """A forked worker: parse claimed files and send each result (msgpack) as soon as it is ready."""
    gc.disable()
    encoder = msgspec.msgpack.Encoder()
    while (position := _claim(counter, len(order))) is not None:
        index = order[position]
        rel, data = pending[index]
        results.put((index, encoder.encode(cparse.parse_source(rel, data))))
    results.put(None)
    results.close()
    results.join_thread()  # a queue's feeder thread writes while this process parses: never blocked on a reader


def _parse_forked(pending: list[tuple[str, bytes]], count: int) -> list[FileIndex]:
    context = multiprocessing.get_context("fork")
    # Largest first, so that no big file starts last and leaves the other processes idle at the end.
    order = sorted(range(len(pending)), key=lambda i: -len(pending[i][1]))
    counter = context.Value("i", 1)  # position 0, the largest file, is this process's: its result needs no transfer
    results = context.Queue()
    cparse.parser(), cparse.query()  # built once here, inherited by the workers
    workers = [
        context.Process(target=_worker, args=(pending, order, counter, results), daemon=True) for _ in range(count - 1)
    ]
    for worker in workers:
        worker.start()
    done: dict[int, FileIndex] = {}
    decoder = msgspec.msgpack.Decoder(FileIndex)
    finished = 0

    def receive(item: tuple[int, bytes] | None) -> None:
        nonlocal finished
        if item is None:
            finished += 1
        else:
            done[item[0]] = decoder.decode(item[1])

    position: int | None = 0
    while position is not None:
        rel, data = pending[order[position]]
        done[order[position]] = cparse.parse_source(rel, data)
        # Decode what the workers sent meanwhile, so that little is left to decode once parsing ends.
        while True:
            try:
                receive(results.get_nowait())
            except queue.Empty:
                break
        position = _claim(counter, len(order))
    while finished < len(workers):
        try:
            receive(results.get(timeout=0.5))
        except queue.Empty:
            if not any(worker.is_alive() for worker in workers):
                break  # a worker died (its files are parsed below)
    while True:  # results a worker sent just before exiting
        try:
            receive(results.get_nowait())
        except queue.Empty:
            break
    for worker in workers:
        worker.join()
    results.close()
    return [done[i] if i in done else cparse.parse_source(*pending[i]) for i in range(len(pending))]

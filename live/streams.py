"""How many live-demo streams play at once on the server, and for how long.

A Motion-JPEG stream holds one request thread for as long as it plays. gunicorn's gthread
worker (config/gunicorn.py) answers every other request on its other threads, so capping
the streams below a process's thread count leaves threads for the annotators, and a
length limit gives every thread back in the end.

The cap counts the streams of every server process on the machine, whichever worker a
request reaches: a stream holds an exclusive lock on one of LIVE_MAX_STREAMS slot files in
LIVE_SLOT_DIR (``fcntl.flock``). A process that ends, however it ends, gives its slots back
with it: the kernel drops its locks.
"""
from __future__ import annotations

import fcntl
import os
import threading
import time
from pathlib import Path
from typing import Callable, Iterator

from django.conf import settings


class StreamSlots:
    """The slots of the streams this process plays, taken and given back under a lock."""

    def __init__(self, folder: Callable[[], Path] = lambda: Path(settings.LIVE_SLOT_DIR)):
        self._folder = folder
        self._lock = threading.Lock()
        self._held: list[int] = []  # file descriptors of the slot files this process locked

    @property
    def playing(self) -> int:
        """Streams playing in this process."""
        return len(self._held)

    def _slot(self, number: int) -> int:
        folder = self._folder()
        folder.mkdir(parents=True, exist_ok=True)
        return os.open(folder / f"slot-{number}.lock", os.O_RDWR | os.O_CREAT, 0o600)

    def in_use(self, limit: int) -> int:
        """Streams playing on the server, in any process (of the first ``limit`` slots)."""
        busy = 0
        for number in range(limit):
            fd = self._slot(number)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                busy += 1
            else:
                fcntl.flock(fd, fcntl.LOCK_UN)
            finally:
                os.close(fd)
        return busy

    def take(self, limit: int) -> bool:
        """Take a free slot if fewer than ``limit`` streams play on the server; False when
        all are in use."""
        with self._lock:
            for number in range(limit):
                fd = self._slot(number)
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    os.close(fd)
                    continue
                self._held.append(fd)
                return True
            return False

    def give_back(self) -> None:
        with self._lock:
            if self._held:
                os.close(self._held.pop())  # closing the file drops its lock


SLOTS = StreamSlots()


class LimitedStream:
    """The parts of a stream until ``seconds`` have passed since it started.

    ``release`` runs exactly once: when the parts run out, the time is up, reading fails, or
    the server closes the response (the viewer went away). Django's StreamingHttpResponse
    calls ``close`` when it is closed, also when iteration never started.
    """

    def __init__(self, parts: Iterator[bytes], seconds: float, release: Callable[[], None],
                 clock: Callable[[], float] = time.monotonic):
        self._parts = parts
        self._release = release
        self._clock = clock
        self._deadline = clock() + seconds
        self._closed = False

    def __iter__(self):
        return self

    def __next__(self) -> bytes:
        if self._closed or self._clock() >= self._deadline:
            self.close()
            raise StopIteration
        try:
            return next(self._parts)
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            close = getattr(self._parts, "close", None)
            if close is not None:
                close()  # a generator's close ends the video reader, which releases the source
        finally:
            self._release()

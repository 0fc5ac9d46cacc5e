"""How many live-demo streams play at once in a server process, and for how long.

A Motion-JPEG stream holds one request thread for as long as it plays. gunicorn's gthread
worker (config/gunicorn.py) answers every other request on its other threads, so capping
the streams of a process below its thread count leaves threads for the annotators, and a
length limit gives every thread back in the end.
"""
from __future__ import annotations

import threading
import time
from typing import Callable, Iterator


class StreamSlots:
    """A counter of the streams playing in this process, taken and given back under a lock."""

    def __init__(self):
        self._lock = threading.Lock()
        self._playing = 0

    @property
    def playing(self) -> int:
        return self._playing

    def take(self, limit: int) -> bool:
        """Take a slot if fewer than ``limit`` streams play; False when all are in use."""
        with self._lock:
            if self._playing >= limit:
                return False
            self._playing += 1
            return True

    def give_back(self) -> None:
        with self._lock:
            self._playing = max(0, self._playing - 1)


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

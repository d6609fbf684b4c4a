"""Drive a blocking iterator (a backend's token stream) from asyncio without blocking the event loop.

The iterator runs in its own thread and hands items to the loop through a queue. ``next(timeout)`` waits for one
item at most ``timeout`` seconds (a hung backend becomes a timeout, not a stuck request); ``cancel()`` makes the
thread stop after the item it is waiting for and close the iterator *in that thread* (a generator cannot be
closed from another thread while it runs), which for the hf backend stops ``model.generate`` within one token.

Example:
    >>> import asyncio
    >>> async def main():
    ...     it = ThreadedIterator(lambda: iter(["a", "b"]))
    ...     return [await it.next(1.0) for _ in range(3)]
    >>> asyncio.run(main())
    [('item', 'a'), ('item', 'b'), ('end', None)]
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any


class ThreadedIterator:
    """Runs ``make()`` and iterates it in a daemon thread; create it inside a running event loop."""

    def __init__(self, make: Callable[[], Iterator[Any]], *, name: str = "clinforge-serve-gen",
                 progress_every: float = 0.0):
        # ``None`` items are progress marks (a token was generated): with ``progress_every`` > 0 at most one per that
        # many seconds crosses to the event loop, which then wakes a few times a second instead of once per token
        # (each crossing costs the loop a wake-up and the GIL); cancellation is still checked at every item
        self._progress_every = progress_every
        self._loop = asyncio.get_running_loop()
        self._queue: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()
        self._cancel = threading.Event()
        self.finished = threading.Event()
        self._make = make
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def _put(self, kind: str, value: Any) -> None:
        try:
            self._loop.call_soon_threadsafe(self._queue.put_nowait, (kind, value))
        except RuntimeError:  # the loop is closed (server shut down): nobody is waiting any more
            pass

    def _run(self) -> None:
        iterator: Any = None
        try:
            iterator = self._make()
            last = time.monotonic()
            for item in iterator:
                if self._cancel.is_set():
                    break
                if item is None and self._progress_every:
                    now = time.monotonic()
                    if now - last < self._progress_every:
                        continue
                    last = now
                self._put("item", item)
                if self._cancel.is_set():
                    break
            self._put("end", None)
        except BaseException as exc:  # handed to the awaiting request, which answers with an error
            self._put("error", exc)
        finally:
            close = getattr(iterator, "close", None)
            if close is not None:
                try:
                    close()
                except Exception:
                    pass
            self.finished.set()

    async def next(self, timeout: float) -> tuple[str, Any]:
        """``("item", x)``, ``("end", None)`` or ``("error", exc)``; raises ``TimeoutError`` after ``timeout`` s."""
        try:  # an item that is already there needs no waiter task and no timer (the common case in a stream)
            return self._queue.get_nowait()
        except asyncio.QueueEmpty:
            return await asyncio.wait_for(self._queue.get(), timeout)

    def cancel(self) -> None:
        """Ask the thread to stop; returns at once (the thread ends after the item it is producing)."""
        self._cancel.set()

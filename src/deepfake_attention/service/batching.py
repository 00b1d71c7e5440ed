"""A small dynamic batching queue: concurrent requests share the model's forward passes.

One worker thread owns the model. It takes the first waiting request, then collects more until
it holds ``max_batch`` requests or ``max_wait_s`` has passed since the first arrived, runs *one*
``predict`` over all their face crops and hands every request back its own slice. Requests whose
caller gave up (timed out, disconnected) before their batch started are skipped. The event loop
never runs model code: it awaits a :class:`concurrent.futures.Future`.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

from ..detector import FacePrediction

PredictFn = Callable[[Sequence[np.ndarray]], list[FacePrediction]]
_STOP = object()
log = logging.getLogger("deepfake_attention.service")


@dataclass
class _Request:
    crops: Sequence[np.ndarray]
    future: Future


@dataclass(frozen=True)
class BatchStats:
    """Counters since start: forward passes, requests and crops they served."""

    batches: int
    requests: int
    crops: int


class BatchQueue:
    """Batches ``predict(crops)`` calls from many callers into few calls on one worker thread.

    Args:
        predict: the model call, e.g. ``lambda crops: detector.predict(crops, cam=True)``; it is
            only ever called from the worker thread, so it needs no locking.
        max_batch: most requests per forward pass (N).
        max_wait_s: longest wait for more requests after the first of a batch arrived (T).
    """

    def __init__(self, predict: PredictFn, *, max_batch: int, max_wait_s: float) -> None:
        if max_batch < 1:
            raise ValueError(f"max_batch must be >= 1, got {max_batch}")
        if max_wait_s < 0:
            raise ValueError(f"max_wait_s must be >= 0 seconds, got {max_wait_s}")
        self._predict, self.max_batch, self.max_wait_s = predict, max_batch, max_wait_s
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="deepfake-attention-model", daemon=True)
        self._closed = False
        self._batches = self._requests = self._crops = 0
        self._thread.start()

    @property
    def alive(self) -> bool:
        """True while the worker thread runs."""
        return self._thread.is_alive() and not self._closed

    def stats(self) -> BatchStats:
        return BatchStats(self._batches, self._requests, self._crops)

    def submit(self, crops: Sequence[np.ndarray]) -> Future:
        """Queue crops for the next batch; the future resolves to one prediction per crop."""
        if self._closed:
            raise RuntimeError("the batch queue is closed")
        future: Future = Future()
        if len(crops) == 0:
            future.set_result([])
            return future
        self._queue.put(_Request(list(crops), future))
        return future

    async def predict(self, crops: Sequence[np.ndarray]) -> list[FacePrediction]:
        """Await the predictions of ``crops``; cancelling the await withdraws a still-queued request."""
        return await asyncio.wrap_future(self.submit(crops))

    def predict_blocking(self, crops: Sequence[np.ndarray], *, cam: bool = True) -> list[FacePrediction]:
        """Like :meth:`predict`, for callers on other threads (for example a video job's analysis).
        ``cam`` is accepted for ``Detector.predict`` compatibility; the queue's own setting applies."""
        return self.submit(crops).result()

    def close(self, timeout: float = 10.0) -> None:
        """Stop the worker after the requests already queued; idempotent."""
        if not self._closed:
            self._closed = True
            self._queue.put(_STOP)
            self._thread.join(timeout)

    def _collect(self, first: _Request) -> tuple[list[_Request], bool]:
        batch, stop = [first], False
        deadline = time.monotonic() + self.max_wait_s
        while len(batch) < self.max_batch:
            remaining = deadline - time.monotonic()
            try:
                item = self._queue.get(timeout=remaining) if remaining > 0 else self._queue.get_nowait()
            except queue.Empty:
                break
            if item is _STOP:
                stop = True
                break
            batch.append(item)
        return batch, stop

    def _run(self) -> None:
        stop = False
        while not stop:
            first = self._queue.get()
            if first is _STOP:
                break
            batch, stop = self._collect(first)
            live = [req for req in batch if req.future.set_running_or_notify_cancel()]
            if not live:
                continue
            crops = [crop for req in live for crop in req.crops]
            try:
                predictions = self._predict(crops)
            except BaseException as error:  # handed to every waiting caller, not swallowed
                log.error("model call failed", extra={"event": "model_error", "error": repr(error)})
                for req in live:
                    req.future.set_exception(error)
                continue
            self._batches, self._requests, self._crops = self._batches + 1, self._requests + len(live), self._crops + len(crops)
            cursor = 0
            for req in live:
                req.future.set_result(predictions[cursor : cursor + len(req.crops)])
                cursor += len(req.crops)
        self._drain()

    def _drain(self) -> None:
        """Fail requests that raced with :meth:`close` so that no caller waits forever."""
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                return
            if item is not _STOP and item.future.set_running_or_notify_cancel():
                item.future.set_exception(RuntimeError("the service is shutting down"))

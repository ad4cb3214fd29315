"""Store writes taken off a room's path and done one after another, in the order they were asked for.

Room hooks are synchronous (an event published, a command sent) and must never wait for the disk;
what they record goes through one :class:`SerialWriter`, whose order is the order things happened in
(a reply's webhook is enqueued before its room's ``room.closed``). Readers ``flush()`` first so they
see everything recorded before they asked. A job may also wait a little to be written together with
others (``submit(job, within=...)``: the transcript's lines, one transaction and one fsync for many)
without losing its place: anything submitted after it, a flush included, queues it first.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable

log = logging.getLogger("bridge.rooms")

Job = Callable[[], Awaitable[object]]


class SerialWriter:
    def __init__(self, name: str) -> None:
        self.name = name
        self._queue: asyncio.Queue[tuple[Job, asyncio.Future[None]]] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        self._held: list[tuple[Job, asyncio.Future[None]]] = []  # submitted ``within`` a delay, not queued yet
        self._timer: asyncio.TimerHandle | None = None

    def submit(self, job: Job, *, within: float = 0.0) -> asyncio.Future[None]:
        """Run ``job`` after every job submitted before it; the future is done once it ran (a failing
        job is logged, never raised into a room). ``within``: it may wait up to that many seconds
        before it is queued, unless another job is submitted first (which queues it, in its place)."""
        loop = asyncio.get_running_loop()
        done: asyncio.Future[None] = loop.create_future()
        if within > 0:
            self._held.append((job, done))
            if self._timer is None:
                self._timer = loop.call_later(within, self._release)
            return done
        self._release()
        self._queue.put_nowait((job, done))
        return done

    def _release(self) -> None:
        """Queue the held jobs now, in the order they were submitted."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        held, self._held = self._held, []
        for item in held:
            self._queue.put_nowait(item)

    async def flush(self) -> None:
        """Wait until everything submitted so far is written."""
        if self._task is None:  # not running (tests of a part alone): write in place
            await self._drain_now()
            return
        await asyncio.shield(self.submit(_nothing))

    async def _drain_now(self) -> None:
        self._release()
        while not self._queue.empty():
            await self._one(*self._queue.get_nowait())

    async def _one(self, job: Job, done: asyncio.Future[None]) -> None:
        try:
            await job()
        except Exception:  # one bad record must not stop the others
            log.exception("%s: a write failed", self.name)
        if not done.done():
            done.set_result(None)

    async def _run(self) -> None:
        while True:
            job, done = await self._queue.get()
            await self._one(job, done)
            if job is _stop:
                return

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        """Write in the background; on the way out, write what is left first (a job is never cut
        off half-way: the stop marker queues behind it)."""
        task = self._task = asyncio.create_task(self._run(), name=f"writer-{self.name}")
        try:
            yield
        finally:
            # Wait for the stop marker to be *written*, whoever takes it from the queue, not for the task
            # to see it: a drain in place (``flush`` while no task ran) also takes from the queue, and a
            # test teardown once hung with the task waiting on an empty one.
            stopped = self.submit(_stop)
            try:
                await asyncio.wait({stopped, task}, return_when=asyncio.FIRST_COMPLETED)
                task.cancel()  # idle on the queue by now, if not done
                await asyncio.gather(task, return_exceptions=True)
            finally:
                self._task = None
            await self._drain_now()


async def _nothing() -> None:
    return None


async def _stop() -> None:
    return None

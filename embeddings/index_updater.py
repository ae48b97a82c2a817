"""The one background indexer: callers ask for an index update and go on answering.

A channel post, ``/ingest`` or a feed poll stores its article and calls
:meth:`IndexUpdater.request`, which only sets a flag: it never waits for the index. The
updater's task applies what was asked, one update at a time:

- requests made within ``debounce`` of the first, or while an update runs, are applied
  together in one (follow-up) update: a burst of channel posts costs one or two updates,
  not one each;
- an update that fails is logged and kept in ``last_error``; the task goes on, and the
  next request or watch tick tries again (the store still differs from the index);
- every ``watch_every`` seconds it compares the store's corpus version with the live
  index's, so that articles written by another process (``newsbot poll`` or ``ingest``
  from cron, on the same SQLite file) reach this process's index without anyone asking.
  When that process saved an index of the store as it is now, it is loaded instead of
  re-done here (:meth:`SearchService.refresh_from_disk`).

Searches never wait for any of it: an update builds a new index pair beside the live one
and swaps it in (``embeddings.search``).

What a one-article update costs, on 3,133 chunks of RealTime QA news with the hash
embedder (so no model time), median of 15 updates, ``IndexReport.stages`` counted in
process CPU time (AMD EPYC, 2 cores shared with other jobs: wall times there swing 2-4x)::

    stage              before    after   (ms of CPU)
    read store             14        6
    embed (hash)           14       16
    keyword index         196       37
    save                   22       11
    whole update          257       79   (wall: 483 -> 100 ms)

Before, every update read every chunk's text, rebuilt BM25 with bm25s' per-document
Python loops and wrote the document frequencies out beside the matrix. Now it reads the
chunk ids and only the rows and texts of new chunks (``IndexBuilder.rows``), computes the
BM25 matrix in a few vectorized steps with the same scores bit for bit
(``keyword_index._bm25_matrix``) and derives document frequencies from it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

from embeddings.indexer import IndexReport, Progress
from embeddings.search import SearchService

log = logging.getLogger(__name__)


class IndexUpdater:
    """One background task applies index updates; callers only ask (never wait)."""

    def __init__(
        self, search: SearchService, *, debounce: float = 0.5, watch_every: float = 5.0
    ) -> None:
        self.search = search
        self.debounce = debounce
        self.watch_every = watch_every
        self.last_report: IndexReport | None = None
        self.last_error: BaseException | None = None
        self._task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()  # a request arrived (or a rebuild was asked for)
        self._idle = asyncio.Event()  # nothing pending, nothing running
        self._idle.set()
        self._pending = False
        self._rebuild = False
        self._running = False
        # Callers of rebuild(): their futures and progress callbacks, for the next update.
        self._waiters: list[asyncio.Future[IndexReport]] = []
        self._progress: list[Progress] = []

    # -- asking -------------------------------------------------------------------------

    def start(self) -> None:
        """Start the background task in the running loop (again after :meth:`stop`)."""
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._run(), name="index-updater")

    async def stop(self) -> None:
        """Cancel the task. An update in progress is abandoned safely: its store writes
        are transactions, its index directory is swapped whole or not at all, and the
        live index stays the one it was. Callers still waiting in :meth:`rebuild` are
        cancelled."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for waiter in self._waiters:
            waiter.cancel()
        self._waiters, self._progress = [], []

    def request(self, *, rebuild: bool = False) -> None:
        """Ask for an update (or a full rebuild); returns at once. Requests made while one
        is pending or running are applied together. Call it from the event loop."""
        self._pending = True
        self._rebuild = self._rebuild or rebuild
        self._idle.clear()
        self._wake.set()

    async def rebuild(self, progress: Progress | None = None) -> IndexReport:
        """Ask for a full rebuild and return its report once it is done (``/reindex`` runs
        this in a task of its own). ``progress`` is called, from worker threads too, as
        (stage, done, total). Raises what the rebuild raised."""
        self._require_task()
        future: asyncio.Future[IndexReport] = asyncio.get_running_loop().create_future()
        self._waiters.append(future)
        if progress is not None:
            self._progress.append(progress)
        self.request(rebuild=True)
        return await future

    async def settled(self) -> None:
        """Return once nothing is pending or running (for tests and the CLI)."""
        if not self._idle.is_set():
            self._require_task()
        await self._idle.wait()

    @property
    def busy(self) -> bool:
        """Whether an update is running or asked for."""
        return self._running or self._pending

    def _require_task(self) -> None:
        if self._task is None or self._task.done():
            raise RuntimeError("the index updater is not running: call start() first")

    # -- the task -----------------------------------------------------------------------

    async def _run(self) -> None:
        while True:
            if not self._pending:
                try:
                    await asyncio.wait_for(self._wake.wait(), self.watch_every)
                except TimeoutError:
                    await self._watch()
                    if not self._pending:
                        continue
            if self.debounce > 0:
                await asyncio.sleep(self.debounce)  # requests meanwhile join this update
            await self._apply_pending()

    async def _watch(self) -> None:
        """Ask for an update when the store changed without anyone asking (another
        process wrote to it, or a caller forgot to)."""
        try:
            version = await self.search.store.corpus_version()
        except Exception as exc:
            log.warning("the index updater could not read the corpus version: %s", exc)
            self.last_error = exc
            return
        if version != self.search.indexed_version:
            log.info(
                "the corpus changed (version %s -> %d): updating the index",
                self.search.indexed_version,
                version,
            )
            self.request()

    async def _apply_pending(self) -> None:
        """One update for everything asked so far; what is asked meanwhile waits for the
        next one."""
        rebuild, waiters, callbacks = self._rebuild, self._waiters, self._progress
        self._pending, self._rebuild, self._waiters, self._progress = False, False, [], []
        self._wake.clear()
        self._running = True
        try:
            report = await self._apply(rebuild, callbacks)
        except asyncio.CancelledError:
            for waiter in waiters:
                waiter.cancel()
            raise
        except Exception as exc:
            # Remembered, never fatal: the next request or watch tick tries again.
            log.exception("index update failed (tried again on the next request)")
            self.last_error = exc
            for waiter in waiters:
                if not waiter.done():
                    waiter.set_exception(exc)
        else:
            self.last_error = None
            if report is not None:
                self.last_report = report
            for waiter in waiters:
                if not waiter.done():
                    if report is not None:
                        waiter.set_result(report)
                    else:  # cannot happen: a rebuild never loads from disk
                        waiter.set_exception(RuntimeError("no rebuild was made"))
        finally:
            self._running = False
            if not self._pending:
                self._idle.set()

    async def _apply(self, rebuild: bool, callbacks: list[Progress]) -> IndexReport | None:
        """Load what another process saved when it is current, else update; None when it
        was loaded."""
        if not rebuild and await self.search.refresh_from_disk():
            return None

        def progress(stage: str, done: int, total: int) -> None:
            for callback in callbacks:
                try:
                    callback(stage, done, total)
                except Exception:  # a broken progress message must not stop the build
                    log.warning("index progress callback failed", exc_info=True)

        started = time.perf_counter()
        report = await self.search.update(rebuild=rebuild, progress=progress if callbacks else None)
        log.info(
            "index %s: %d chunks (+%d, -%d, %d embedded) in %.2f s",
            "rebuilt" if report.rebuilt else "updated",
            report.chunks,
            report.added,
            report.removed,
            report.embedded,
            time.perf_counter() - started,
        )
        return report

"""The background index updater, index updates that read only what changed, and the index
directory shared by several processes (locks, leftovers of killed saves).

No test waits by sleeping: an update held open blocks inside a gated embedder until the
test opens the gate, and what the updater did is observed through a queue the service
fills as each update or load finishes.
"""

from __future__ import annotations

import asyncio
import fcntl
import os
import subprocess
import sys
import threading
from collections.abc import Sequence
from datetime import date
from pathlib import Path
from typing import Any

import bm25s
import numpy as np
import pytest

from corpus.models import ArticleDraft
from corpus.store import Store
from embeddings.embedder import HashEmbedder, ProgressCallback
from embeddings.index_dir import IndexDirectory
from embeddings.index_updater import IndexUpdater
from embeddings.indexer import IndexReport, Progress
from embeddings.keyword_index import KeywordIndex
from embeddings.search import SearchService
from embeddings.token_cache import TokenCache
from tests.conftest import ROOT

GATE = "Gated"  # an article whose title starts so is held in the embedder until released
WAIT = 30.0  # seconds before a test gives up waiting for an event (a hang, not a timing)
NEVER = 3600.0  # a watch interval that never comes within a test


def draft(title: str, text: str, day: str = "2023-06-01") -> ArticleDraft:
    return ArticleDraft(
        title=title, text=text, published_at=date.fromisoformat(day), source="Desk (fictional)"
    )


ARTICLES = [
    draft("Harbour crane", "The harbour crane at Vell was repaired on Monday."),
    draft("Orchard frost", "Frost damaged the apple orchards of Kell overnight."),
    draft("Library hours", "The Kell library opens late on Thursdays from June."),
]


class GatedEmbedder(HashEmbedder):
    """The hash embedder, counting what it embeds; a batch with a text of a ``GATE``
    article blocks until the test sets ``release`` (searches embed only their query)."""

    def __init__(self) -> None:
        super().__init__()
        self.entered = threading.Event()
        self.release = threading.Event()
        self.texts = 0
        self.fail_next = 0  # batches (not queries) that raise before embedding

    def embed(
        self, texts: Sequence[str], *, progress: ProgressCallback | None = None
    ) -> np.ndarray:
        is_batch = any("\n" in t for t in texts)  # chunk texts are "title\ntext"
        if is_batch and self.fail_next:
            self.fail_next -= 1
            raise RuntimeError("the embedder failed (on purpose)")
        if any(t.startswith(GATE) for t in texts):
            self.entered.set()
            if not self.release.wait(WAIT):
                raise TimeoutError("the test never opened the gate")
        self.texts += len(texts)
        return super().embed(texts, progress=progress)


class ObservedSearch(SearchService):
    """A search service that reports each update ("updated", "failed") and each index
    loaded from disk ("loaded") on a queue, and counts them."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.events: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()
        self.updates = 0
        self.loads = 0

    async def update(self, rebuild: bool = False, progress: Progress | None = None) -> IndexReport:
        self.updates += 1
        try:
            report = await super().update(rebuild=rebuild, progress=progress)
        except Exception as exc:
            self.events.put_nowait(("failed", exc))
            raise
        self.events.put_nowait(("updated", report))
        return report

    async def refresh_from_disk(self) -> bool:
        loaded = await super().refresh_from_disk()
        if loaded:
            self.loads += 1
            self.events.put_nowait(("loaded", None))
        return loaded

    async def next_event(self) -> tuple[str, Any]:
        return await asyncio.wait_for(self.events.get(), WAIT)

    def forget(self) -> None:
        """Reset the counters and drop what happened so far (the service's own open)."""
        self.updates = self.loads = 0
        while not self.events.empty():
            self.events.get_nowait()


async def opened(store: Store, root: Path, embedder: GatedEmbedder) -> ObservedSearch:
    svc = ObservedSearch(store, embedder, IndexDirectory(root / "index"))
    await svc.open()
    svc.forget()
    return svc


async def titles(svc: SearchService, query: str) -> list[str]:
    return [h.article.title for h in await svc.search(query, 5)]


@pytest.fixture
async def seeded(store: Store) -> Store:
    for article in ARTICLES:
        await store.save_article(article)
    return store


async def test_requests_during_an_update_coalesce_into_one_follow_up(
    seeded: Store, tmp_path: Path
) -> None:
    embedder = GatedEmbedder()
    svc = await opened(seeded, tmp_path, embedder)
    updater = IndexUpdater(svc, debounce=0, watch_every=NEVER)
    updater.start()
    try:
        await seeded.save_article(draft(f"{GATE} ferry", "Ferry crews in Vell walked out."))
        updater.request()
        assert await asyncio.to_thread(embedder.entered.wait, WAIT)  # update 1 is held
        for i in range(5):  # five channel posts while it runs
            await seeded.save_article(draft(f"Market day {i}", f"Stall {i} sold turnips {i}."))
            updater.request()
        assert updater.busy and svc.updates == 1
        embedder.release.set()
        await asyncio.wait_for(updater.settled(), WAIT)
        assert svc.updates == 2  # the held one and exactly one follow-up for all five
        assert updater.last_report is not None and updater.last_report.added == 5
        assert updater.last_error is None and not updater.busy
        assert "Market day 3" in await titles(svc, "stall 3 sold turnips 3")
    finally:
        embedder.release.set()
        await updater.stop()


async def test_request_returns_at_once_and_searches_answer_during_a_held_rebuild(
    seeded: Store, tmp_path: Path
) -> None:
    embedder = GatedEmbedder()
    svc = await opened(seeded, tmp_path, embedder)
    updater = IndexUpdater(svc, debounce=0, watch_every=NEVER)
    updater.start()
    try:
        await seeded.save_article(draft(f"{GATE} bridge", "The old bridge at Kell reopened."))
        progress: list[tuple[str, int, int]] = []
        rebuild = asyncio.create_task(updater.rebuild(lambda *p: progress.append(p)))
        assert await asyncio.to_thread(embedder.entered.wait, WAIT)  # the rebuild is held
        # A handler stores a post and asks for an update: neither waits for the rebuild.
        await seeded.save_article(draft("Ferry strike", "Ferry crews in Vell walked out."))
        updater.request()  # returns at once: the rebuild is still held (below)
        # Searches answer from the live index meanwhile, the rebuild still held open.
        assert (await titles(svc, "harbour crane repaired"))[0] == "Harbour crane"
        assert (await titles(svc, "apple orchards frost"))[0] == "Orchard frost"
        assert not rebuild.done() and not embedder.release.is_set()
        assert updater.busy and svc.busy
        embedder.release.set()
        report = await asyncio.wait_for(rebuild, WAIT)
        assert report.rebuilt and report.embedded == 1
        assert progress and progress[-1][0] == "indexing"
        await asyncio.wait_for(updater.settled(), WAIT)
        assert svc.updates == 2  # the rebuild, then one update for the post
        assert (await titles(svc, "old bridge kell reopened"))[0] == f"{GATE} bridge"
        assert (await titles(svc, "ferry crews walked out"))[0] == "Ferry strike"
    finally:
        embedder.release.set()
        await updater.stop()


async def test_stop_abandons_a_held_update_safely(seeded: Store, tmp_path: Path) -> None:
    embedder = GatedEmbedder()
    svc = await opened(seeded, tmp_path, embedder)
    updater = IndexUpdater(svc, debounce=0, watch_every=NEVER)
    updater.start()
    try:
        await seeded.save_article(draft(f"{GATE} ferry", "Ferry crews in Vell walked out."))
        rebuild = asyncio.create_task(updater.rebuild())
        assert await asyncio.to_thread(embedder.entered.wait, WAIT)  # held in the embedder
        await asyncio.wait_for(updater.stop(), WAIT)  # returns with the update still held
        assert not embedder.release.is_set()
        with pytest.raises(asyncio.CancelledError):
            await rebuild
        assert not svc.busy and (await titles(svc, "harbour crane"))[0] == "Harbour crane"
    finally:
        embedder.release.set()  # the abandoned worker thread finishes; its result is dropped
    # Nothing was left half-done: a new update brings the index up to date.
    report = await svc.update()
    assert report.added == 1 and not report.rebuilt
    assert (await titles(svc, "ferry crews walked out"))[0] == f"{GATE} ferry"
    index = tmp_path / "index"
    assert [p.name for p in index.iterdir() if p.name.startswith((".tmp-", ".link-"))] == []


async def test_a_failed_update_is_kept_and_tried_again_on_the_next_request(
    seeded: Store, tmp_path: Path
) -> None:
    embedder = GatedEmbedder()
    svc = await opened(seeded, tmp_path, embedder)
    updater = IndexUpdater(svc, debounce=0, watch_every=NEVER)
    updater.start()
    try:
        embedder.fail_next = 1
        await seeded.save_article(draft("Ferry strike", "Ferry crews in Vell walked out."))
        updater.request()
        await asyncio.wait_for(updater.settled(), WAIT)
        assert isinstance(updater.last_error, RuntimeError) and updater.last_report is None
        assert "Ferry strike" not in await titles(svc, "ferry crews walked out")
        updater.request()  # the task survived the failure
        await asyncio.wait_for(updater.settled(), WAIT)
        assert updater.last_error is None and updater.last_report is not None
        assert svc.updates == 2
        assert (await titles(svc, "ferry crews walked out"))[0] == "Ferry strike"
    finally:
        await updater.stop()


async def test_a_failed_rebuild_raises_to_its_caller_and_the_watch_tries_again(
    seeded: Store, tmp_path: Path
) -> None:
    embedder = GatedEmbedder()
    svc = await opened(seeded, tmp_path, embedder)
    updater = IndexUpdater(svc, debounce=0, watch_every=0.05)
    await seeded.save_article(draft("Ferry strike", "Ferry crews in Vell walked out."))
    # Two failures: the rebuild's, and one of an update the watch asks for (before or
    # after the rebuild: the watch may come first).
    embedder.fail_next = 2
    updater.start()
    try:
        with pytest.raises(RuntimeError, match="on purpose"):
            await asyncio.wait_for(updater.rebuild(), WAIT)
        assert isinstance(updater.last_error, RuntimeError)
        # Nobody asks again: the store still differs from the index, and the watch sees it.
        kinds = [(await svc.next_event())[0] for _ in range(3)]
        assert kinds == ["failed", "failed", "updated"]
        assert updater.last_error is None and updater.last_report is not None
        assert (await titles(svc, "ferry crews walked out"))[0] == "Ferry strike"
    finally:
        await updater.stop()


async def test_the_watch_picks_up_an_article_another_process_wrote(
    seeded: Store, tmp_path: Path
) -> None:
    embedder = GatedEmbedder()
    svc = await opened(seeded, tmp_path, embedder)
    updater = IndexUpdater(svc, debounce=0, watch_every=0.05)
    updater.start()
    try:
        # Another process (`newsbot poll` from cron): its own connection to the same file,
        # and no index update of its own. Nobody calls request().
        other = await Store.open(seeded.path)
        try:
            await other.save_article(draft("Ferry strike", "Ferry crews in Vell walked out."))
        finally:
            await other.close()
        kind, report = await svc.next_event()
        assert kind == "updated" and report.added == 1 and not report.rebuilt
        assert (await titles(svc, "ferry crews walked out"))[0] == "Ferry strike"
    finally:
        await updater.stop()


async def test_an_index_another_process_saved_is_loaded_not_redone(
    seeded: Store, tmp_path: Path
) -> None:
    embedder = GatedEmbedder()
    svc = await opened(seeded, tmp_path, embedder)
    before = embedder.texts
    # Another process (`newsbot ingest` from cron) ingests and indexes into the same
    # database and index directory.
    other_store = await Store.open(seeded.path)
    try:
        other = SearchService(other_store, HashEmbedder(), IndexDirectory(tmp_path / "index"))
        assert await other.open() is None  # it loads this process's index
        for i in range(3):
            await other_store.save_article(draft(f"Ferry {i}", f"Ferry crews {i} walked out."))
        report = await other.update()
        assert report.embedded == 3
    finally:
        await other_store.close()
    updater = IndexUpdater(svc, debounce=0, watch_every=0.05)
    updater.start()
    try:
        kind, _ = await svc.next_event()
        assert kind == "loaded"
        assert embedder.texts == before and svc.updates == 0  # nothing embedded here
        assert svc.count == 6
        assert (await titles(svc, "ferry crews 2 walked out"))[0] == "Ferry 2"
    finally:
        await updater.stop()
    # A change the other process did not index is updated here (no watch this time, so
    # the count is exact): the other's vectors are reused, only the new chunk embedded.
    updater = IndexUpdater(svc, debounce=0, watch_every=NEVER)
    updater.start()
    try:
        await seeded.save_article(draft("Library late", "Late opening at the Kell library."))
        updater.request()
        await asyncio.wait_for(updater.settled(), WAIT)
        assert svc.updates == 1 and updater.last_report is not None
        assert updater.last_report.embedded == 1 and updater.last_report.added == 1
    finally:
        await updater.stop()


async def test_an_update_reads_only_the_texts_of_new_chunks(seeded: Store, tmp_path: Path) -> None:
    for i in range(40):
        await seeded.save_article(draft(f"Notice {i}", f"Notice number {i} about pier {i}."))
    svc = await opened(seeded, tmp_path, GatedEmbedder())  # every chunk's tokens cached
    texts_read: list[str] = []
    fetchall = seeded.fetchall

    async def counting(sql: str, params: Any = ()) -> list[Any]:
        rows = await fetchall(sql, params)
        texts_read.extend(c for r in rows for c in r if isinstance(c, str) and "pier" in c)
        return rows

    seeded.fetchall = counting  # type: ignore[method-assign]
    try:
        await seeded.save_article(draft("Notice new", "Notice number 99 about pier 99."))
        report = await svc.update()
    finally:
        del seeded.fetchall
    assert report.added == 1 and report.embedded == 1
    # Before: every chunk's text (44 chunks), on every update.
    assert texts_read == ["Notice number 99 about pier 99."]
    assert (await titles(svc, "pier 99"))[0] == "Notice new"
    # A deleted article leaves the index on the next such update.
    rows = await seeded.fetchall("SELECT id FROM articles WHERE title = 'Notice 7'")
    await seeded.delete_article(rows[0][0])
    await svc.update()
    assert "Notice 7" not in await titles(svc, "notice number 7 pier 7")


def test_the_keyword_matrix_is_bm25s_own() -> None:
    rng = np.random.default_rng(7)
    words = [f"w{i}" for i in range(60)]
    texts = [" ".join(rng.choice(words, rng.integers(1, 30))) for _ in range(400)]
    cache = TokenCache()
    ours = KeywordIndex.build(list(range(400)), texts, [str(i) for i in range(400)], cache)
    theirs = bm25s.BM25(k1=1.2, b=0.75)
    tokens = [cache.ids(str(i), t) for i, t in enumerate(texts)]
    theirs.index((tokens, dict(cache.vocab)), show_progress=False)
    assert ours._retriever is not None
    for name in ("data", "indices", "indptr"):
        mine, own = ours._retriever.scores[name], theirs.scores[name]
        assert mine.dtype == own.dtype and np.array_equal(mine, own), name
    assert ours._retriever.vocab_dict == theirs.vocab_dict
    assert ours.doc_freq == {w: int(n) for w, n in _doc_freq(tokens, cache).items()}


def _doc_freq(tokens: list[np.ndarray], cache: TokenCache) -> dict[str, int]:
    words = list(cache.vocab)
    counts: dict[str, int] = {}
    for doc in tokens:
        for t in set(doc.tolist()):
            counts[words[t]] = counts.get(words[t], 0) + 1
    return counts


# -- the index directory: locks and leftovers of killed saves ------------------------------


async def indexed(store: Store, root: Path) -> IndexDirectory:
    svc = SearchService(store, HashEmbedder(), IndexDirectory(root))
    await svc.open()
    return svc.directory


async def test_leftovers_of_a_killed_save_are_removed_and_the_index_loads(
    seeded: Store, tmp_path: Path
) -> None:
    root = tmp_path / "index"
    directory = await indexed(seeded, root)
    current = os.readlink(root / "current")
    # What saves killed at each step leave: a half-written build, a link never swapped
    # in, a build renamed but never linked.
    (root / ".tmp-build-1").mkdir()
    (root / ".tmp-build-1" / "dense.faiss").write_bytes(b"half")
    (root / ".link-build-2").symlink_to("build-2")
    (root / "build-3").mkdir()
    loaded = IndexDirectory(root).load()
    assert loaded is not None and loaded.dense.count == 3
    assert sorted(p.name for p in root.iterdir()) == [".lock", current, "current"]
    assert directory.read_manifest() == loaded.manifest


SLOW_SAVER = """
import sys
from pathlib import Path
from embeddings.index_dir import IndexDirectory
from embeddings.keyword_index import KeywordIndex

directory = IndexDirectory(Path(sys.argv[1]))
index = directory.load()
real_save = KeywordIndex.save

def held_save(self, path):
    real_save(self, path)
    print("writing", flush=True)  # the lock is held and its .tmp- directory exists
    sys.stdin.readline()  # never answered: this process is killed here

KeywordIndex.save = held_save
directory.save(index)
"""


async def test_a_live_writers_work_is_kept_and_a_killed_ones_removed(
    seeded: Store, tmp_path: Path
) -> None:
    root = tmp_path / "index"
    await indexed(seeded, root)
    writer = subprocess.Popen(
        [sys.executable, "-c", SLOW_SAVER, str(root)],
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert writer.stdout is not None
        line = await asyncio.wait_for(asyncio.to_thread(writer.stdout.readline), WAIT)
        assert line == "writing\n"
        tmp = [p for p in root.iterdir() if p.name.startswith(".tmp-build-")]
        assert len(tmp) == 1
        # Another process opens the index meanwhile: it neither removes the writer's
        # work nor fails (it loads once the writer lets go of the lock, which here is by
        # dying: so the load goes to a thread, and the writer is killed below).
        assert IndexDirectory(root).clean() == []
        assert tmp[0].exists()
        load = asyncio.create_task(asyncio.to_thread(IndexDirectory(root).load))
        writer.kill()  # kill -9, in the middle of the save
        assert writer.wait(WAIT) == -9
        loaded = await asyncio.wait_for(load, WAIT)
    finally:
        if writer.poll() is None:
            writer.kill()
            writer.wait()
    assert loaded is not None and loaded.dense.count == 3
    assert not tmp[0].exists()
    assert [p.name for p in root.iterdir() if p.name.startswith((".tmp-", ".link-"))] == []


def test_cleaning_leaves_the_work_of_a_writer_holding_the_lock(tmp_path: Path) -> None:
    root = tmp_path / "index"
    root.mkdir()
    (root / ".tmp-build-9").mkdir()  # a writer's, alive: it holds the lock
    fd = os.open(root / ".lock", os.O_RDWR | os.O_CREAT)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        assert IndexDirectory(root).clean() == []  # does not wait, removes nothing
        assert (root / ".tmp-build-9").exists()
    finally:
        os.close(fd)  # the writer is gone (closing, like dying, releases the lock)
    assert IndexDirectory(root).clean() == [".tmp-build-9"]

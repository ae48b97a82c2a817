"""Index and search: incremental updates, deletes, manifests, model changes, live rebuilds.

Most tests use the deterministic HashEmbedder (the model is beside the point); the
ranking test uses the real packaged model on the sample corpus.
"""

from __future__ import annotations

import asyncio
import json
from datetime import date
from pathlib import Path

import numpy as np

from bot.services import Services
from bot.settings import Settings
from corpus.ingest import ingest_results
from corpus.models import ArticleDraft
from corpus.readers import read_path
from corpus.store import Store
from embeddings.dense_index import DenseIndex
from embeddings.embedder import HashEmbedder
from embeddings.index_dir import IndexDirectory
from embeddings.search import SearchFilters, SearchService


def draft(
    title: str,
    text: str,
    day: str = "2023-06-01",
    url: str | None = None,
    source: str = "Desk (fictional)",
) -> ArticleDraft:
    return ArticleDraft(
        title=title, text=text, published_at=date.fromisoformat(day), url=url, source=source
    )


async def service(
    store: Store, root: Path, embedder: HashEmbedder | None = None, **kw
) -> SearchService:
    svc = SearchService(store, embedder or HashEmbedder(), IndexDirectory(root / "index"), **kw)
    await svc.open()
    return svc


async def test_incremental_add_and_delete(store: Store, tmp_path: Path) -> None:
    a = await store.save_article(
        draft("Harbour crane", "The harbour crane at Vell was repaired on Monday.")
    )
    svc = await service(store, tmp_path)
    assert [h.article.id for h in await svc.search("harbour crane repaired")] == [a]
    b = await store.save_article(
        draft("Orchard frost", "Frost damaged the apple orchards of Kell overnight.")
    )
    report = await svc.update()
    assert not report.rebuilt and report.added == 1 and report.embedded == 1
    assert (await svc.search("apple orchards frost"))[0].article.id == b
    await store.delete_article(b)
    # Deleted before the index knows: the store check keeps it out of results.
    assert all(h.article.id != b for h in await svc.search("apple orchards frost"))
    report = await svc.update()
    assert report.removed >= 1
    assert all(h.article.id != b for h in await svc.search("apple orchards frost"))


async def test_changed_article_reembeds_only_changed_chunks(store: Store, tmp_path: Path) -> None:
    url = "https://example.org/a"
    await store.save_article(
        draft("Bridge", "The old bridge reopened. Traffic resumed at noon.", url=url)
    )
    svc = await service(store, tmp_path)
    existing = await store.article_by_url(url)
    assert existing
    await store.save_article(
        draft("Bridge", "The old bridge closed again. Traffic stopped at noon.", url=url),
        replace_id=existing.id,
    )
    report = await svc.update()
    assert report.embedded == 1  # the one changed chunk
    hits = await svc.search("bridge closed again")
    assert "closed again" in hits[0].chunk.text


async def test_stale_manifest_is_brought_up_to_date_on_open(store: Store, tmp_path: Path) -> None:
    await store.save_article(draft("One", "A glacier in Norrvik retreated twelve metres."))
    await service(store, tmp_path)
    await store.save_article(draft("Two", "A comet was seen over Osterby on Friday night."))
    svc = await service(store, tmp_path)  # a new process would do this
    manifest = json.loads((tmp_path / "index" / "current" / "manifest.json").read_text())
    assert manifest["corpus_version"] == await store.corpus_version()
    assert manifest["count"] == 2 and manifest["model"] == "hash-embedder"
    assert (await svc.search("comet Osterby"))[0].article.title == "Two"


async def test_model_change_rebuilds_and_reembeds(store: Store, tmp_path: Path) -> None:
    await store.save_article(draft("One", "A glacier in Norrvik retreated twelve metres."))
    await service(store, tmp_path, HashEmbedder(dim=64, name="model-a"))
    svc = await service(store, tmp_path, HashEmbedder(dim=32, name="model-b"))
    manifest = json.loads((tmp_path / "index" / "current" / "manifest.json").read_text())
    assert manifest["model"] == "model-b" and manifest["dimension"] == 32
    assert await store.vectors_for("model-b", [c.content_hash for c in await store.all_chunks()])
    assert svc.count == 1


async def test_date_and_source_filters(store: Store, tmp_path: Path) -> None:
    await store.save_article(
        draft("Early", "Storm warning for the coast of Vell.", "2023-01-05", source="A (fictional)")
    )
    await store.save_article(
        draft(
            "Late",
            "Storm warning for the coast of Vell again.",
            "2023-03-05",
            source="B (fictional)",
        )
    )
    svc = await service(store, tmp_path)
    until = await svc.search("storm warning Vell", filters=SearchFilters(until=date(2023, 2, 1)))
    assert [h.article.title for h in until] == ["Early"]
    since = await svc.search("storm warning Vell", filters=SearchFilters(since=date(2023, 2, 1)))
    assert [h.article.title for h in since] == ["Late"]
    source = await svc.search("storm warning", filters=SearchFilters(sources=("b (fictional)",)))
    assert [h.article.title for h in source] == ["Late"]


async def test_at_most_two_chunks_per_article(store: Store, tmp_path: Path) -> None:
    sentence = "The river Oss flooded the valley town of Brae again this spring. "
    await store.save_article(draft("Floods", sentence * 120))
    await store.save_article(draft("Other", "The river Oss is low in summer."))
    svc = await service(store, tmp_path)
    hits = await svc.search("river Oss flooded", k=10)
    per_article: dict[int, int] = {}
    for h in hits:
        per_article[h.article.id] = per_article.get(h.article.id, 0) + 1
    assert max(per_article.values()) <= 2 and len(per_article) == 2


async def test_searches_during_rebuild_never_fail(store: Store, tmp_path: Path) -> None:
    for i in range(60):
        await store.save_article(
            draft(f"Story {i}", f"Item {i}: the council of Dunmere voted on plan {i}.")
        )
    svc = await service(store, tmp_path)
    results: list[int] = []

    async def searcher() -> None:
        for _ in range(40):
            results.append(len(await svc.search("council Dunmere voted")))
            await asyncio.sleep(0)

    await asyncio.gather(svc.update(rebuild=True), searcher(), svc.update(rebuild=True), searcher())
    assert len(results) == 80 and all(n > 0 for n in results)


def test_dense_index_drops_minus_one_and_filters_removed() -> None:
    vectors = np.eye(4, dtype=np.float32)
    for kind in ("flat", "hnsw"):
        index = DenseIndex.build(4, kind, np.array([10, 11, 12, 13]), vectors)
        assert [i for i, _ in index.search(vectors[0], 10)][0] == 10
        assert all(i != -1 for i, _ in index.search(vectors[0], 10))
        index.remove([10])
        assert all(i != 10 for i, _ in index.search(vectors[0], 10))


async def test_corrupt_index_is_rebuilt(store: Store, tmp_path: Path) -> None:
    await store.save_article(draft("One", "A glacier in Norrvik retreated twelve metres."))
    await service(store, tmp_path)
    (tmp_path / "index" / "current" / "dense.faiss").write_bytes(b"garbage")
    svc = await service(store, tmp_path)
    assert (await svc.search("glacier Norrvik"))[0].article.title == "One"


async def test_seed_passage_ranks_first_with_the_real_model(copy_data_dir: Path) -> None:
    services = await Services.open(Settings.from_env(data_dir=str(copy_data_dir)))
    try:
        hits = await services.search.search("who signed with Zolotov?", k=5)
        assert "Radan inked the deal" in hits[0].chunk.text
        assert hits[0].article.source == "IFP Media Wire"
        assert services.embedder.name.split("@")[0] == "all-MiniLM-L6-v2"  # older: "name@precision"
    finally:
        await services.close()


async def test_ingest_then_search_cli_shapes(
    samples_dir: Path, store: Store, tmp_path: Path
) -> None:
    report = await ingest_results(store, read_path(samples_dir))
    assert len(report.added) == 13
    svc = await service(store, tmp_path)
    assert svc.count == (await store.stats()).chunks


def test_dense_filter_returns_only_allowed_ids() -> None:
    rng = np.random.default_rng(3)
    vectors = rng.standard_normal((500, 16)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    ids = np.arange(1000, 1500)
    allowed = ids[::37]
    for kind in ("flat", "hnsw"):
        index = DenseIndex.build(16, kind, ids, vectors)
        for row in range(0, 500, 25):
            found = [i for i, _ in index.search(vectors[row], 50, allowed)]
            assert found and set(found) <= set(allowed.tolist()), (kind, row)


def test_fast_scan_finds_what_exact_search_finds(monkeypatch) -> None:
    import embeddings.dense_index as dense_index

    monkeypatch.setattr(dense_index, "SCAN_MIN", 100)
    rng = np.random.default_rng(11)
    centers = rng.standard_normal((20, 32)).astype(np.float32)
    vectors = centers[rng.integers(0, 20, 3000)] + 0.6 * rng.standard_normal((3000, 32))
    vectors = (vectors / np.linalg.norm(vectors, axis=1, keepdims=True)).astype(np.float32)
    ids = np.arange(5000, 8000)
    fast = DenseIndex.build(32, "flat", ids, vectors)
    fast.prepare()
    assert fast._scan is not None
    monkeypatch.setattr(dense_index, "SCAN_MIN", 10**9)
    exact = DenseIndex.build(32, "flat", ids, vectors)
    monkeypatch.setattr(dense_index, "SCAN_MIN", 100)
    queries = vectors[rng.integers(0, 3000, 20)] + 0.3 * rng.standard_normal((20, 32))
    for allowed in (None, ids[ids % 4 != 0], ids[::10]):  # none, 75%, 10% (exact fallback)
        prepared = fast.id_filter(allowed) if allowed is not None else None
        for q in queries.astype(np.float32):
            want = exact.search(q, 50, allowed)
            assert fast.search(q, 50, prepared) == want
            assert fast.search(q, 50, allowed) == want
    # A copy-on-write update keeps the codebook and still finds the same.
    updated = fast.copy()
    updated.remove(ids[:500])
    updated.prepare(fast)
    assert updated._scan is not None and updated._scan.trained_on == 3000
    exact.remove(ids[:500])
    for q in queries.astype(np.float32):
        assert updated.search(q, 20) == exact.search(q, 20)


async def test_cached_rows_never_outlive_a_store_change(store: Store, tmp_path: Path) -> None:
    a = await store.save_article(draft("Crane", "The harbour crane at Vell was repaired."))
    await store.save_article(draft("Crane again", "Vell's harbour crane broke down again."))
    svc = await service(store, tmp_path)
    first = await svc.search("harbour crane Vell", k=5)
    assert {h.article.id for h in first} == {a, a + 1}
    assert await svc.search("harbour crane Vell", k=5) == first  # from the row cache
    await store.delete_article(a)  # the index is not updated: the store decides
    assert [h.article.id for h in await svc.search("harbour crane Vell", k=5)] == [a + 1]
    await store.save_article(
        draft("Crane, corrected", "Vell's harbour crane broke down twice."), replace_id=a + 1
    )
    assert await svc.search("harbour crane Vell", k=5) == []  # its old chunks are gone
    await svc.update()
    hits = await svc.search("harbour crane Vell", k=5)
    assert [h.article.title for h in hits] == ["Crane, corrected"]
    assert hits[0].article.text[hits[0].chunk.start : hits[0].chunk.end] == hits[0].chunk.text


async def test_filters_are_prepared_once_per_index_version(store: Store, tmp_path: Path) -> None:
    for day in ("2023-01-05", "2023-02-05", "2023-03-05"):
        await store.save_article(draft(f"Storm {day}", f"Storm warning for Vell on {day}.", day))
    svc = await service(store, tmp_path)
    until = SearchFilters(until=date(2023, 2, 10))
    titles = [h.article.title for h in await svc.search("storm warning Vell", filters=until)]
    assert titles and set(titles) == {"Storm 2023-01-05", "Storm 2023-02-05"}
    live = svc._live
    assert live is not None and len(live.filters) == 1
    await svc.search("storm Vell", filters=SearchFilters(until=date(2023, 2, 10)))
    assert len(live.filters) == 1  # the same filter, reused
    await store.save_article(draft("Storm late", "Storm warning for Vell, late.", "2023-02-08"))
    await svc.update()
    assert svc._live is not live and not svc._live.filters  # a new version starts afresh
    titles = [h.article.title for h in await svc.search("storm warning Vell", filters=until)]
    assert "Storm late" in titles

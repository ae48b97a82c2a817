"""The SQLite store and ingest: migrations, dedupe, replacement, deletes, atomicity, stats."""

from __future__ import annotations

import json
import shutil
import sqlite3
from datetime import date
from pathlib import Path

import pytest

import corpus.store as store_module
from corpus.chunking import chunk_spans
from corpus.ingest import ingest_one, ingest_results
from corpus.migrations import MIGRATIONS
from corpus.models import ArticleDraft, ChunkSpan, IngestReport
from corpus.readers import read_path
from corpus.store import Store

SEED_NAME = "iran-russia-police-2023-06-29.txt"


def rows(db_path: Path, sql: str, params: tuple = ()) -> list[tuple]:
    """Query the database file with a separate, plain sqlite3 connection."""
    con = sqlite3.connect(db_path)
    try:
        return con.execute(sql, params).fetchall()
    finally:
        con.close()


def draft(
    text: str = "The harbour reopened on Monday. Boats came back the same day.",
    title: str = "Harbour reopens",
    url: str | None = "https://ledger.example/harbour",
    published: date | None = date(2023, 6, 1),
    source: str = "Northern Ledger (fictional)",
    origin: str = "test",
) -> ArticleDraft:
    return ArticleDraft(
        title=title,
        text=text,
        published_at=published,
        source=source,
        url=url,
        authors=("Ana Kovic", "Tomas Reel"),
        origin=origin,
    )


def long_text(words: int = 400, tag: str = "") -> str:
    sentences = [
        f"Sentence {tag}{i} tells of the harbour and its quay number {i}."
        for i in range(words // 10)
    ]
    return " ".join(sentences)


# -- migrations and connection settings ------------------------------------------------------


async def test_migrations_are_applied(store: Store) -> None:
    assert rows(store.path, "PRAGMA user_version") == [(len(MIGRATIONS),)]
    tables = {r[0] for r in rows(store.path, "SELECT name FROM sqlite_master WHERE type='table'")}
    assert {"articles", "chunks", "meta", "chunk_vectors"} <= tables
    assert await store.corpus_version() == 0


async def test_reopening_is_a_no_op(tmp_data_dir: Path) -> None:
    path = tmp_data_dir / "nested" / "newsbot.db"  # parent directories are created
    first = await Store.open(path)
    article_id = await first.save_article(draft())
    version = await first.corpus_version()
    await first.close()
    schema = rows(path, "SELECT type, name, sql FROM sqlite_master ORDER BY name")

    second = await Store.open(path)
    try:
        assert rows(path, "PRAGMA user_version") == [(len(MIGRATIONS),)]
        assert rows(path, "SELECT type, name, sql FROM sqlite_master ORDER BY name") == schema
        assert await second.corpus_version() == version
        assert (await second.get_article(article_id)) is not None
        assert rows(path, "SELECT COUNT(*) FROM meta") == [(1,)]
    finally:
        await second.close()


async def test_a_partly_migrated_database_gets_the_rest(tmp_data_dir: Path) -> None:
    path = tmp_data_dir / "old.db"
    con = sqlite3.connect(path)
    con.executescript(MIGRATIONS[0] + "\nPRAGMA user_version = 1;")
    con.close()
    opened = await Store.open(path)
    try:
        assert rows(path, "PRAGMA user_version") == [(len(MIGRATIONS),)]
        names = {r[0] for r in rows(path, "SELECT name FROM sqlite_master WHERE type='table'")}
        assert "chunk_vectors" in names
    finally:
        await opened.close()


async def test_wal_and_foreign_keys(store: Store) -> None:
    assert rows(store.path, "PRAGMA journal_mode") == [("wal",)]  # persistent in the file
    # foreign_keys is per connection: ask the store's own connection
    async with store._db.execute("PRAGMA foreign_keys") as cur:
        assert await cur.fetchone() == (1,)


async def test_article_round_trip(store: Store) -> None:
    d = draft()
    article_id = await store.save_article(d)
    article = await store.get_article(article_id)
    assert article is not None
    assert article.title == d.title
    assert article.text == d.text
    assert article.url == d.url
    assert article.source == d.source
    assert article.authors == ("Ana Kovic", "Tomas Reel")
    assert article.published_at == date(2023, 6, 1)
    assert article.language == "en"
    assert (await store.article_by_url(d.url or "")) == article
    assert (await store.article_by_hash(article.content_hash)) == article
    assert await store.get_articles([article_id, 999]) == {article_id: article}
    assert rows(store.path, "SELECT origin FROM articles") == [("test",)]


# -- ingest: duplicates and replacement --------------------------------------------------------


async def test_ingesting_the_samples_twice(store: Store, samples_dir: Path) -> None:
    first = await ingest_results(store, read_path(samples_dir))
    assert len(first.added) == 13
    assert first.updated == first.duplicates == first.failed == []
    version = await store.corpus_version()
    chunk_ids = await store.chunk_ids()

    second = await ingest_results(store, read_path(samples_dir))
    assert second.added == second.updated == second.failed == []
    assert sorted(second.duplicates) == sorted(str(p) for p in samples_dir.glob("*.txt"))
    assert await store.corpus_version() == version, "duplicates change nothing"
    assert await store.chunk_ids() == chunk_ids
    assert rows(store.path, "SELECT COUNT(*) FROM articles") == [(13,)]


async def test_same_normalized_text_under_another_name_is_a_duplicate(
    store: Store, samples_dir: Path, tmp_path: Path
) -> None:
    original = samples_dir / SEED_NAME
    report = await ingest_results(store, read_path(original))
    assert len(report.added) == 1

    raw = original.read_text(encoding="utf-8")
    # another file name, typographic quotes, extra spaces and a different case
    variant = raw.replace("Iran's police chief Brigadier", "IRAN\u2019S police  chief   Brigadier")
    variant = variant.replace("\n\n", "\n\n\n")
    assert variant != raw
    copy = tmp_path / "copy-of-the-seed.txt"
    copy.write_text(variant, encoding="utf-8")

    again = await ingest_results(store, read_path(copy))
    assert again.added == [] and again.updated == [] and again.failed == []
    assert again.duplicates == [str(copy)]
    assert rows(store.path, "SELECT COUNT(*) FROM articles") == [(1,)]


async def test_same_url_same_text_is_a_duplicate(store: Store) -> None:
    report = IngestReport()
    first_id = await ingest_one(store, draft(), report)
    again_id = await ingest_one(store, draft(origin="again"), report)
    assert again_id == first_id
    assert report.added == [first_id]
    assert report.duplicates == ["again"]


async def test_changed_text_at_the_same_url_replaces_the_article(store: Store) -> None:
    report = IngestReport()
    old = draft(text=long_text(tag="old-"))
    article_id = await ingest_one(store, old, report)
    assert article_id is not None
    old_chunks = await store.chunks_of(article_id)
    assert len(old_chunks) >= 2
    version = await store.corpus_version()

    new_text = long_text(500, tag="new-")
    new_id = await ingest_one(store, draft(text=new_text, title="Harbour reopens, updated"), report)

    assert new_id == article_id, "the article keeps its id"
    assert report.updated == [article_id]
    article = await store.get_article(article_id)
    assert article is not None
    assert article.text == new_text and article.title == "Harbour reopens, updated"
    new_chunks = await store.chunks_of(article_id)
    assert [c.text for c in new_chunks] == [
        new_text[s.start : s.end] for s in chunk_spans(new_text)
    ]
    assert all("new-" in c.text for c in new_chunks)
    old_ids = {c.id for c in old_chunks}
    remaining = {r[0] for r in rows(store.path, "SELECT id FROM chunks")}
    assert not old_ids & remaining, "the old chunk rows are gone"
    assert remaining == {c.id for c in new_chunks}
    assert await store.corpus_version() > version
    assert rows(store.path, "SELECT COUNT(*) FROM articles") == [(1,)]


async def test_a_new_title_alone_updates_the_article(store: Store) -> None:
    report = IngestReport()
    article_id = await ingest_one(store, draft(), report)
    await ingest_one(store, draft(title="Harbour reopens after storm"), report)
    assert report.updated == [article_id]
    article = await store.get_article(article_id)
    assert article is not None and article.title == "Harbour reopens after storm"


async def test_text_moved_to_another_url_is_a_duplicate(store: Store) -> None:
    report = IngestReport()
    first_id = await ingest_one(store, draft(url="https://a.example/1"), report)
    await ingest_one(store, draft(text="Other text. Entirely.", url="https://a.example/2"), report)
    # the second URL now gets the first article's text: that text is already stored
    again = await ingest_one(store, draft(url="https://a.example/2", origin="moved"), report)
    assert again == first_id
    assert report.duplicates == ["moved"]
    assert rows(store.path, "SELECT COUNT(*) FROM articles") == [(2,)]


# -- deletes -----------------------------------------------------------------------------------


async def test_delete_cascades_to_chunks(store: Store) -> None:
    keep = await store.save_article(draft(text=long_text(tag="keep-"), url="https://a.example/k"))
    gone = await store.save_article(draft(text=long_text(tag="gone-"), url="https://a.example/g"))
    assert rows(store.path, "SELECT COUNT(*) FROM chunks WHERE article_id = ?", (gone,))[0][0] >= 2
    version = await store.corpus_version()

    assert await store.delete_article(gone) is True
    assert await store.get_article(gone) is None
    assert await store.chunks_of(gone) == []
    assert rows(store.path, "SELECT COUNT(*) FROM chunks WHERE article_id = ?", (gone,)) == [(0,)]
    assert await store.corpus_version() == version + 1
    assert await store.chunks_of(keep), "other articles keep their chunks"

    assert await store.delete_article(gone) is False
    assert await store.corpus_version() == version + 1, "a no-op delete changes nothing"


# -- atomicity ----------------------------------------------------------------------------------


async def test_a_failure_inside_the_transaction_leaves_no_rows(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Two chunks with the same ordinal break UNIQUE(article_id, ordinal) while the chunks
    # are inserted, i.e. after the article row was written in the same transaction.
    def clashing_spans(text: str, *args: object, **kwargs: object) -> list[ChunkSpan]:
        return [ChunkSpan(0, 0, 3), ChunkSpan(0, 4, 8)]

    monkeypatch.setattr(store_module, "chunk_spans", clashing_spans)
    version = await store.corpus_version()
    with pytest.raises(sqlite3.IntegrityError):
        await store.save_article(draft())
    assert rows(store.path, "SELECT COUNT(*) FROM articles") == [(0,)]
    assert rows(store.path, "SELECT COUNT(*) FROM chunks") == [(0,)]
    assert await store.corpus_version() == version

    # the store is still usable: no transaction or lock was left behind
    monkeypatch.undo()
    article_id = await store.save_article(draft())
    assert await store.chunks_of(article_id)


async def test_a_failed_replacement_keeps_the_old_article(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    article_id = await store.save_article(draft(text=long_text(tag="old-")))
    before_article = await store.get_article(article_id)
    before_chunks = await store.chunks_of(article_id)

    def failing_hash(title: str, text: str) -> str:
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(store_module, "chunk_hash", failing_hash)
    with pytest.raises(RuntimeError):
        await store.save_article(draft(text=long_text(tag="new-")), replace_id=article_id)
    assert await store.get_article(article_id) == before_article
    assert await store.chunks_of(article_id) == before_chunks


async def test_ingest_records_a_storage_failure_and_goes_on(
    store: Store, monkeypatch: pytest.MonkeyPatch, samples_dir: Path
) -> None:
    real_spans = store_module.chunk_spans

    def spans_failing_for_one(text: str, *args: object, **kwargs: object) -> list[ChunkSpan]:
        if "Zolotov" in text and "Radan inked" in text:
            return [ChunkSpan(0, 0, 3), ChunkSpan(0, 4, 8)]  # the seed article fails
        return real_spans(text, *args, **kwargs)

    monkeypatch.setattr(store_module, "chunk_spans", spans_failing_for_one)
    report = await ingest_results(store, read_path(samples_dir))
    assert len(report.added) == 12
    assert report.failed == [(str(samples_dir / SEED_NAME), "could not store it (IntegrityError)")]
    titles = {t for (t,) in rows(store.path, "SELECT title FROM articles")}
    assert not any("inks agreement" in t for t in titles)
    assert rows(store.path, "SELECT COUNT(*) FROM articles") == [(12,)]
    orphans = "SELECT COUNT(*) FROM chunks WHERE article_id NOT IN (SELECT id FROM articles)"
    assert rows(store.path, orphans) == [(0,)]


async def test_a_batch_with_bad_files_still_lands_the_good_ones(
    store: Store, samples_dir: Path, tmp_path: Path
) -> None:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    for path in sorted(samples_dir.glob("0[1-3]-*.txt")):
        shutil.copy(path, inbox / path.name)
    (inbox / "empty.txt").write_bytes(b"")
    (inbox / "binary.json").write_bytes(b"\x00\x01\x02\x03")
    (inbox / "latin1.md").write_bytes(b"---\ntitle: Caf\xe9\ndate: 2023-01-01\n---\nBody.")
    (inbox / "broken.json").write_text('[{"title": ', encoding="utf-8")
    (inbox / "undated.json").write_text(json.dumps({"title": "T", "text": "B."}), encoding="utf-8")
    # a lone surrogate survives json.loads and cannot be stored as UTF-8: it becomes U+FFFD
    (inbox / "surrogate.jsonl").write_text(
        '{"title": "T", "text": "bad \\udc80 text", "date": "2023-01-01"}\n'
        + json.dumps({"title": "Fine", "text": "A fine line.", "date": "2023-01-02"})
        + "\n",
        encoding="utf-8",
    )

    report = await ingest_results(store, read_path(inbox))
    assert len(report.added) == 5
    failed = dict(report.failed)
    assert set(failed) == {
        str(inbox / "empty.txt"),
        str(inbox / "binary.json"),
        str(inbox / "latin1.md"),
        str(inbox / "broken.json"),
        str(inbox / "undated.json"),
    }
    assert all(reason and "\n" not in reason for reason in failed.values())
    assert rows(store.path, "SELECT COUNT(*) FROM articles") == [(5,)]
    assert rows(store.path, "SELECT text FROM articles WHERE title = 'T'") == [("bad \ufffd text",)]
    stats = await store.stats()
    assert stats.articles == 5


async def test_on_item_sees_every_result(store: Store, samples_dir: Path, tmp_path: Path) -> None:
    (tmp_path / "bad.json").write_text("{", encoding="utf-8")
    shutil.copy(samples_dir / SEED_NAME, tmp_path / "good.txt")
    seen: list[object] = []
    await ingest_results(store, read_path(tmp_path), seen.append)
    assert len(seen) == 2


# -- stats and listing ----------------------------------------------------------------------------


async def test_stats(store: Store, samples_dir: Path) -> None:
    empty = await store.stats()
    assert (empty.articles, empty.chunks, empty.sources) == (0, 0, ())
    assert empty.first_date is None and empty.last_date is None

    await ingest_results(store, read_path(samples_dir))
    stats = await store.stats()
    assert stats.articles == 13
    assert stats.chunks == rows(store.path, "SELECT COUNT(*) FROM chunks")[0][0]
    assert stats.chunks >= 13
    assert stats.first_date == date(2023, 5, 18)
    assert stats.last_date == date(2023, 8, 25)
    assert stats.corpus_version == 13
    assert dict(stats.sources) == {
        "Caspian Desk (fictional)": 4,
        "Northern Ledger (fictional)": 4,
        "Sample Wire (fictional)": 4,
        "IFP Media Wire": 1,
    }
    counts = [n for _, n in stats.sources]
    assert counts == sorted(counts, reverse=True)


async def test_list_articles_newest_first(store: Store, samples_dir: Path) -> None:
    await ingest_results(store, read_path(samples_dir))
    listed = await store.list_articles(limit=5)
    assert len(listed) == 5
    dates = [a.published_at for a in listed]
    assert dates == sorted(dates, reverse=True)  # type: ignore[type-var]
    assert listed[0].published_at == date(2023, 8, 25)
    page2 = await store.list_articles(limit=5, offset=5)
    assert not {a.id for a in listed} & {a.id for a in page2}
    assert len(await store.all_articles()) == 13


async def test_chunk_rows_for_index_carry_article_fields(store: Store) -> None:
    article_id = await store.save_article(draft(text=long_text(tag="x-")))
    index_rows = await store.chunk_rows_for_index()
    chunks = await store.chunks_of(article_id)
    assert [r.chunk_id for r in index_rows] == [c.id for c in chunks]
    assert all(
        r.title == "Harbour reopens" and r.published_at == date(2023, 6, 1) for r in index_rows
    )
    assert all(r.source == "Northern Ledger (fictional)" for r in index_rows)
    assert set((await store.get_chunks([c.id for c in chunks])).values()) == set(chunks)

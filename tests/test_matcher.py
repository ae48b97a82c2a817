"""Topic matching for subscriptions: the real model on the sample corpus, and the
vectorized matcher against a plain per-subscription reference with the hash embedder."""

from __future__ import annotations

import random
import shutil
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, date, datetime
from pathlib import Path

import numpy as np
import pytest
import pytest_asyncio

from bot.services import Services
from bot.settings import Settings
from bot.subscriptions.matcher import (
    DEFAULT_THRESHOLD,
    SEMANTIC_WEIGHT,
    TopicMatch,
    TopicMatcher,
    query_terms,
)
from corpus.models import Article
from corpus.subscription_repo import Subscription, SubscriptionRepo
from corpus.text import sentence_spans
from embeddings.embedder import Embedder, HashEmbedder, ProgressCallback
from embeddings.tokenize import term_set, tokenize

SEED_TOPIC = "Iran Russia security cooperation"
FOOTBALL_TOPIC = "football transfer Moscow club striker"
NOTHING_TOPIC = "boiling point of water"
CHAT = 501

module_loop = pytest.mark.asyncio(loop_scope="module")


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def services(
    sample_data_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Services]:
    """The indexed sample corpus (a private copy: the tests write subscriptions)."""
    data = tmp_path_factory.mktemp("matcher") / "data"
    shutil.copytree(sample_data_dir, data, symlinks=True)
    opened = await Services.open(Settings(data_dir=data))
    try:
        yield opened
    finally:
        await opened.close()


class CountingEmbedder:
    """Wraps an embedder and counts the texts it embeds."""

    def __init__(self, inner: Embedder) -> None:
        self.inner = inner
        self.texts: list[str] = []

    @property
    def name(self) -> str:
        return self.inner.name

    @property
    def dim(self) -> int:
        return self.inner.dim

    def embed(
        self, texts: Sequence[str], *, progress: ProgressCallback | None = None
    ) -> np.ndarray:
        self.texts.extend(texts)
        return self.inner.embed(texts, progress=progress)


async def fresh_repo(services: Services) -> SubscriptionRepo:
    """The repository with no subscriptions left by earlier tests, and the test chat."""
    async with services.store.transaction() as db:
        await db.execute("DELETE FROM subscriptions")
    repo = SubscriptionRepo(services.store)
    await repo.upsert_chat(CHAT, "private")
    return repo


async def article_ids(services: Services) -> dict[str, int]:
    """Sample article ids by a short key: seed, football, museum, belarus, flood."""
    keys = {
        "seed": "inks agreement with Russia",
        "football": "Arash Nouri",
        "museum": "Moscow museum opens",
        "flood": "flood drill",
        "belarus": "Belarus",
    }
    out = {}
    for article in await services.store.all_articles():
        for key, words in keys.items():
            if words in article.title:
                out[key] = article.id
    assert set(out) == set(keys), out
    return out


async def matched_articles(
    matcher: TopicMatcher, services: Services
) -> dict[int, list[TopicMatch]]:
    """Article id -> its matches, over the whole sample corpus."""
    out = {}
    for article in await services.store.all_articles():
        found = await matcher.match_article(services.store, article.id)
        if found:
            out[article.id] = found
    return out


# -- the real model on the sample corpus ------------------------------------------------------


@module_loop
async def test_seed_topic_matches_the_seed_article_with_a_cooperation_quote(
    services: Services,
) -> None:
    repo = await fresh_repo(services)
    sub = await repo.add(CHAT, "topic", query=SEED_TOPIC)
    matcher = TopicMatcher(services.embedder, services.search.idf)
    await matcher.prepare(repo)
    ids = await article_ids(services)
    found = await matched_articles(matcher, services)

    assert ids["seed"] in found
    (match,) = found[ids["seed"]]
    assert (match.subscription_id, match.chat_id) == (sub.id, CHAT)
    assert match.score >= DEFAULT_THRESHOLD
    assert match.score == pytest.approx(
        SEMANTIC_WEIGHT * match.semantic + (1 - SEMANTIC_WEIGHT) * match.keyword, abs=1e-5
    )
    seed = await services.store.get_article(ids["seed"])
    assert seed is not None and match.quote is not None
    assert match.quote in sentence_spans(seed.text)
    quote = seed.text[match.quote[0] : match.quote[1]]
    assert "cooperation" in quote or "memorandum" in quote, quote
    for unrelated in ("football", "museum", "flood"):
        assert ids[unrelated] not in found, unrelated


@module_loop
async def test_unrelated_topic_matches_its_story_not_the_seed(services: Services) -> None:
    repo = await fresh_repo(services)
    await repo.add(CHAT, "topic", query=FOOTBALL_TOPIC)
    matcher = TopicMatcher(services.embedder, services.search.idf)
    await matcher.prepare(repo)
    ids = await article_ids(services)
    found = await matched_articles(matcher, services)
    assert ids["football"] in found
    assert ids["seed"] not in found


@module_loop
async def test_topic_about_nothing_in_the_corpus_matches_nothing(services: Services) -> None:
    repo = await fresh_repo(services)
    await repo.add(CHAT, "topic", query=NOTHING_TOPIC)
    matcher = TopicMatcher(services.embedder, services.search.idf)
    await matcher.prepare(repo)
    assert await matched_articles(matcher, services) == {}


@module_loop
async def test_prepare_stores_query_vectors_and_embeds_each_topic_once(
    services: Services,
) -> None:
    repo = await fresh_repo(services)
    seed = await repo.add(CHAT, "topic", query=SEED_TOPIC)
    football = await repo.add(CHAT, "topic", query=FOOTBALL_TOPIC)
    counting = CountingEmbedder(services.embedder)
    matcher = TopicMatcher(counting, services.search.idf)

    await matcher.prepare(repo)
    assert sorted(counting.texts) == sorted([SEED_TOPIC, FOOTBALL_TOPIC])
    stored = await repo.query_vectors(services.embedder.name)
    assert set(stored) == {seed.id, football.id}
    vector = np.frombuffer(stored[seed.id], dtype=np.float32)
    assert vector.shape == (services.embedder.dim,)
    assert np.linalg.norm(vector) == pytest.approx(1.0, abs=1e-3)

    await matcher.prepare(repo)
    assert len(counting.texts) == 2  # nothing new
    fresh = CountingEmbedder(services.embedder)
    restarted = TopicMatcher(fresh, services.search.idf)
    await restarted.prepare(repo)  # a restart loads the stored vectors
    assert fresh.texts == [] and len(restarted) == 2

    third = await repo.add(CHAT, "topic", query=NOTHING_TOPIC)
    await matcher.prepare(repo)
    assert counting.texts[2:] == [NOTHING_TOPIC]  # only the new topic
    await repo.remove(CHAT, football.id)
    await matcher.prepare(repo)
    assert {s.id for s in matcher.subscriptions} == {seed.id, third.id}
    assert len(counting.texts) == 3


@module_loop
async def test_paused_chats_are_not_matched(services: Services) -> None:
    repo = await fresh_repo(services)
    await repo.add(CHAT, "topic", query=SEED_TOPIC)
    matcher = TopicMatcher(services.embedder, services.search.idf)
    await matcher.prepare(repo)
    assert len(matcher) == 1
    await repo.pause_chat(CHAT, "blocked")
    try:
        await matcher.prepare(repo)
        assert len(matcher) == 0
    finally:
        await repo.resume_chat(CHAT)


@module_loop
async def test_add_and_remove_keep_matching_in_sync(services: Services) -> None:
    repo = await fresh_repo(services)
    seed_sub = await repo.add(CHAT, "topic", query=SEED_TOPIC)
    matcher = TopicMatcher(services.embedder, services.search.idf)
    await matcher.prepare(repo)
    ids = await article_ids(services)

    football_sub = Subscription(9001, 777, "topic", FOOTBALL_TOPIC, None)
    matcher.add(football_sub)  # embedded here, without a reload
    football = await matcher.match_article(services.store, ids["football"])
    assert [(m.subscription_id, m.chat_id) for m in football] == [(9001, 777)]
    assert [
        m.subscription_id for m in await matcher.match_article(services.store, ids["seed"])
    ] == [seed_sub.id]

    matcher.remove(seed_sub.id)
    assert await matcher.match_article(services.store, ids["seed"]) == []
    assert len(await matcher.match_article(services.store, ids["football"])) == 1
    matcher.remove(9001)
    matcher.remove(12345)  # unknown ids are ignored
    assert len(matcher) == 0
    assert await matcher.match_article(services.store, ids["football"]) == []

    vector = services.embedder.embed([SEED_TOPIC])[0]
    matcher.add(Subscription(seed_sub.id, CHAT, "topic", SEED_TOPIC, None), vector)
    assert len(await matcher.match_article(services.store, ids["seed"])) == 1


@module_loop
async def test_missing_chunk_vectors_are_embedded_and_stored(services: Services) -> None:
    hashed = CountingEmbedder(HashEmbedder(dim=32, name="hash-matcher-test"))
    matcher = TopicMatcher(hashed, lambda term: 1.0, threshold=0.3)
    matcher.add(Subscription(1, 1, "topic", "Radan Zolotov memorandum", None))
    ids = await article_ids(services)
    chunks = await services.store.chunks_of(ids["seed"])
    hashed.texts.clear()

    found = await matcher.match_article(services.store, ids["seed"])
    assert [m.subscription_id for m in found] == [1]
    assert len(hashed.texts) == len(chunks)
    assert hashed.texts[0].startswith("Iran’s police chief inks agreement")  # title\ntext
    stored = await services.store.vectors_for(hashed.name, [c.content_hash for c in chunks])
    assert len(stored) == len({c.content_hash for c in chunks})
    await matcher.match_article(services.store, ids["seed"])
    assert len(hashed.texts) == len(chunks)  # the second time they come from the store
    assert await matcher.match_article(services.store, 10**9) == []


# -- the vectorized matcher against a per-subscription reference ------------------------------

WORDS = [f"topic{chr(97 + i // 26)}{chr(97 + i % 26)}" for i in range(120)]


def make_article(text: str, title: str = "Synthetic report") -> Article:
    return Article(
        id=1,
        url=None,
        title=title,
        source="test",
        authors=(),
        published_at=date(2023, 7, 1),
        language="en",
        text=text,
        content_hash="x",
        ingested_at=datetime(2023, 7, 1, tzinfo=UTC),
    )


def idf(term: str) -> float:
    """A deterministic, uneven IDF."""
    return 1.0 + (sum(map(ord, term)) % 5) / 2


def reference(
    subs: list[Subscription], vectors: np.ndarray, article: Article, chunks: np.ndarray
) -> dict[int, float]:
    """Subscription id -> score, computed one subscription at a time."""
    article_terms = set(tokenize(f"{article.title}\n{article.text}"))
    out = {}
    for sub, vector in zip(subs, vectors, strict=True):
        semantic = max(float(np.dot(vector, c)) for c in chunks)
        terms = set(tokenize(sub.query))
        total = sum(idf(t) for t in terms)
        keyword = sum(idf(t) for t in terms if t in article_terms) / total if total else 0.0
        out[sub.id] = SEMANTIC_WEIGHT * semantic + (1 - SEMANTIC_WEIGHT) * keyword
    return out


def test_thousand_subscriptions_match_in_one_call_with_the_right_chats() -> None:
    rng = random.Random(3)
    embedder = HashEmbedder(dim=64)
    subs = [
        Subscription(i + 1, 10_000 + i // 2, "topic", " ".join(rng.sample(WORDS, 3)), None)
        for i in range(1000)
    ]
    vectors = embedder.embed([s.query for s in subs])
    sentences = [" ".join(rng.sample(WORDS[:40], 6)).capitalize() + "." for _ in range(8)]
    article = make_article(" ".join(sentences[:4]) + "\n\n" + " ".join(sentences[4:]))
    chunks = embedder.embed(
        [
            f"{article.title}\n{' '.join(sentences[:4])}",
            f"{article.title}\n{' '.join(sentences[4:])}",
        ]
    )
    threshold = 0.45
    matcher = TopicMatcher(embedder, idf, threshold=threshold)
    for sub, vector in zip(subs, vectors, strict=True):
        matcher.add(sub, vector)

    found = matcher.match(article, chunks)

    expected = reference(subs, vectors, article, chunks)
    wanted = {i for i, score in expected.items() if score >= threshold + 1e-5}
    borderline = {i for i, score in expected.items() if abs(score - threshold) <= 1e-5}
    got = {m.subscription_id for m in found}
    assert 20 <= len(wanted) <= 900, len(wanted)
    assert wanted <= got <= wanted | borderline
    by_id = {s.id: s for s in subs}
    assert all(m.chat_id == by_id[m.subscription_id].chat_id for m in found)
    assert [m.score for m in found] == sorted((m.score for m in found), reverse=True)
    for m in found:
        assert m.score == pytest.approx(expected[m.subscription_id], abs=1e-4)
        assert m.quote in sentence_spans(article.text)

    # removing half keeps the rest (rows move around inside) matched to the right chats
    for sub in subs[::2]:
        matcher.remove(sub.id)
    kept = {m.subscription_id: m.chat_id for m in matcher.match(article, chunks)}
    assert set(kept) == {i for i in got if i % 2 == 0}
    assert all(kept[i] == by_id[i].chat_id for i in kept)


def test_quote_is_the_sentence_with_most_topic_terms_earliest_on_ties() -> None:
    text = (
        "Nothing relevant opens this story. Officials discussed ferries and ports. "
        "The Caspian ferry deal was signed by shippers. A Caspian ferry line was also praised."
    )
    embedder = HashEmbedder(dim=64)
    matcher = TopicMatcher(embedder, lambda term: 1.0, threshold=-1.0)
    matcher.add(Subscription(1, 1, "topic", "Caspian ferry deal", None))
    matcher.add(Subscription(2, 2, "topic", "ferry ports", None))
    matcher.add(Subscription(3, 3, "topic", "volcano eruption", None))
    article = make_article(text)
    found = {m.subscription_id: m for m in matcher.match(article, embedder.embed([text]))}
    quote = {i: text[m.quote[0] : m.quote[1]] for i, m in found.items() if m.quote}
    assert quote[1] == "The Caspian ferry deal was signed by shippers."
    assert quote[2] == "Officials discussed ferries and ports."
    assert quote[3] == "Nothing relevant opens this story."  # no overlap anywhere: the first


def test_an_article_without_sentences_gets_no_quote() -> None:
    embedder = HashEmbedder(dim=64)
    matcher = TopicMatcher(embedder, lambda term: 1.0, threshold=0.5)
    matcher.add(Subscription(1, 1, "topic", "ferry deal", None))
    article = make_article("", title="Ferry deal signed")
    (match,) = matcher.match(article, embedder.embed(["Ferry deal signed\n"]))
    assert match.keyword == 1.0 and match.quote is None


def test_feed_subscriptions_and_wrong_vectors_are_refused() -> None:
    matcher = TopicMatcher(HashEmbedder(dim=8), lambda term: 1.0)
    with pytest.raises(ValueError):
        matcher.add(Subscription(1, 1, "feed", "", 3))
    with pytest.raises(ValueError):
        matcher.add(Subscription(2, 1, "topic", "x", None), np.ones(9, dtype=np.float32))
    assert matcher.match(make_article("Some text."), np.ones((1, 8), dtype=np.float32)) == []


def test_term_set_equals_the_tokenizer_and_query_terms_keep_order(samples_dir: Path) -> None:
    for path in sorted(samples_dir.glob("*.txt")):
        text = path.read_text(encoding="utf-8")
        assert term_set(text) == set(tokenize(text)), path.name
    assert term_set("Russia’s don’t ‘quoted’ O'Brien") == set(
        tokenize("Russia’s don’t ‘quoted’ O'Brien")
    )
    assert query_terms("Iran Russia security cooperation, Iran's security") == (
        "iran",
        "russia",
        "secur",
        "cooper",
    )

"""BM25 keyword index: rebuilt from cached tokens, with the same results as from scratch."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import numpy as np

from corpus.models import ArticleDraft
from corpus.store import Store
from embeddings.embedder import HashEmbedder
from embeddings.index_dir import IndexDirectory
from embeddings.keyword_index import KeywordIndex
from embeddings.search import SearchService
from embeddings.token_cache import TokenCache
from embeddings.tokenize import tokenize

TEXTS = {
    "crane": "Harbour crane\nThe harbour crane at Vell was repaired on Monday.",
    "frost": "Orchard frost\nFrost damaged the apple orchards of Kell overnight.",
    "ferry": "Ferry strike\nFerry crews in Vell walked out over pay on Tuesday.",
    "empty": "",
}
QUERIES = ["harbour crane repaired", "apple frost", "Vell ferry pay", "crews walked out"]


def results(index: KeywordIndex) -> list[list[tuple[int, float]]]:
    return [index.search(q, 3) for q in QUERIES]


def test_cached_rebuild_tokenizes_nothing_and_matches_a_fresh_build() -> None:
    ids, keys, texts = [1, 2, 3, 4], list(TEXTS), list(TEXTS.values())
    cache = TokenCache()
    first = KeywordIndex.build(ids, texts, keys, cache)
    assert cache.tokenized == 4
    again = KeywordIndex.build(ids, texts, keys, cache)
    assert cache.tokenized == 4  # every text came from the cache
    fresh = KeywordIndex.build(ids, texts)
    assert results(first) == results(again) == results(fresh)
    assert results(fresh)[0][0][0] == 1 and results(fresh)[1][0][0] == 2
    assert again.doc_freq == fresh.doc_freq
    assert again.idf("vell") == fresh.idf("vell") < again.idf("orchard")


def test_removed_texts_leave_the_cache_and_the_results() -> None:
    cache = TokenCache()
    KeywordIndex.build([1, 2, 3], list(TEXTS.values())[:3], list(TEXTS)[:3], cache)
    index = KeywordIndex.build([1, 3], [TEXTS["crane"], TEXTS["ferry"]], ["crane", "ferry"], cache)
    assert len(cache) == 2 and cache.tokenized == 3
    assert index.search("apple orchards frost", 3) == []
    assert "orchard" not in index.doc_freq


def test_a_cache_of_mostly_deleted_words_starts_afresh() -> None:
    cache = TokenCache()
    many = [f"Story {i}\nword{i}a word{i}b word{i}c" for i in range(20)]
    KeywordIndex.build(list(range(20)), many, [str(i) for i in range(20)], cache)
    index = KeywordIndex.build([0], many[:1], ["0"], cache)
    assert len(cache.vocab) == 0 and len(cache) == 0  # cleared after this build
    assert index.search("word0b", 1)[0][0] == 0  # the build itself is whole
    KeywordIndex.build([0], many[:1], ["0"], cache)
    assert cache.tokenized == 21


async def test_index_updates_tokenize_only_new_chunks(store: Store, tmp_path: Path) -> None:
    day = date(2023, 6, 1)
    for title, text in [("Harbour crane", "The crane was repaired."), ("Frost", "Frost hit.")]:
        await store.save_article(ArticleDraft(title=title, text=text, published_at=day))
    svc = SearchService(store, HashEmbedder(), IndexDirectory(tmp_path / "index"))
    await svc.open()  # no index on disk yet: this first build fills the cache
    tokens = svc._builder.tokens
    before = tokens.tokenized
    await store.save_article(
        ArticleDraft(title="Ferry", text="Ferry crews walked out.", published_at=date(2023, 6, 2))
    )
    await svc.update()
    assert tokens.tokenized == before + 1
    assert (await svc.search("ferry crews walked out"))[0].article.title == "Ferry"


def test_search_scores_as_bm25s_does_and_filters_by_mask() -> None:
    rng = np.random.default_rng(5)
    words = [f"w{i}" for i in range(40)]
    texts = [" ".join(rng.choice(words, 12)) for _ in range(300)]
    ids = list(range(1000, 1300))
    index = KeywordIndex.build(ids, texts)
    retriever = index._retriever
    assert retriever is not None
    for query in ["w1 w2 w3", "w7 w7 w30", "w39", "w5 w11 w17 w23 w29"]:
        terms = [t for t in tokenize(query) if t in retriever.vocab_dict]
        expected = retriever.get_scores(terms)  # bm25s' own sums
        term_ids = [retriever.vocab_dict[t] for t in terms]
        assert np.array_equal(index.scores(term_ids), expected)
        found = index.search(query, 20)
        best = sorted(expected[expected > 0], reverse=True)[:20]
        assert [s for _, s in found] == [float(s) for s in best]
        assert all(expected[cid - 1000] == s for cid, s in found)
        allowed = np.array(ids[::3])
        masked = index.search(query, 20, mask=index.mask(allowed))
        assert masked == index.search(query, 20, allowed)
        assert masked and {cid for cid, _ in masked} <= set(allowed.tolist())
        scores_allowed = sorted((expected[a - 1000] for a in allowed), reverse=True)[:20]
        assert [s for _, s in masked] == [float(s) for s in scores_allowed if s > 0]

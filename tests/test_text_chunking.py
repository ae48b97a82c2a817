"""Sentence splitting and chunking: exact offsets, sizes, overlap, and properties over any text."""

from __future__ import annotations

import itertools
from datetime import date
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from corpus.chunking import MAX_WORDS, TARGET_WORDS, chunk_spans
from corpus.models import ArticleDraft, ChunkSpan
from corpus.readers.seed import parse_seed
from corpus.store import Store
from corpus.text import (
    content_hash,
    fold_quotes,
    normalize_for_hash,
    sentence_spans,
    word_count,
)


def sentences(text: str) -> list[str]:
    spans = sentence_spans(text)
    return [text[s:e] for s, e in spans]


# -- sentence splitting ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param(
            "The U.S. Army said so. Then it left.",
            ["The U.S. Army said so.", "Then it left."],
            id="U.S.",
        ),
        pytest.param(
            "Gen. Radan arrived on Tuesday. He left on Friday.",
            ["Gen. Radan arrived on Tuesday.", "He left on Friday."],
            id="Gen.",
        ),
        pytest.param(
            "Brig. Gen. Ahmad Reza Radan signed it. Col. Gen. Viktor Zolotov agreed.",
            ["Brig. Gen. Ahmad Reza Radan signed it.", "Col. Gen. Viktor Zolotov agreed."],
            id="Brig. Gen.",
        ),
        pytest.param(
            "Dr. Ilse Marand spoke first. Dr. Voss spoke next.",
            ["Dr. Ilse Marand spoke first.", "Dr. Voss spoke next."],
            id="Dr.",
        ),
        pytest.param(
            "The report was written by J. R. Smith in Merrow. It ran to 40 pages.",
            ["The report was written by J. R. Smith in Merrow.", "It ran to 40 pages."],
            id="initials",
        ),
        pytest.param(
            "Exports grew 3.5 percent. Imports fell 0.25 percent.",
            ["Exports grew 3.5 percent.", "Imports fell 0.25 percent."],
            id="decimals",
        ),
        pytest.param(
            'She called it "a very good beginning." Then she left.',
            ['She called it "a very good beginning."', "Then she left."],
            id="closing ascii quote",
        ),
        pytest.param(
            "He called it \u201ca very good beginning.\u201d Radan then left.",
            ["He called it \u201ca very good beginning.\u201d", "Radan then left."],
            id="closing typographic quote",
        ),
        pytest.param(
            "Is it true? Yes! It is.",
            ["Is it true?", "Yes!", "It is."],
            id="question and exclamation",
        ),
        pytest.param(
            "A heading without a full stop\n\nThe body starts here. It goes on.",
            ["A heading without a full stop", "The body starts here.", "It goes on."],
            id="paragraph break always splits",
        ),
        pytest.param(
            "First paragraph ends here.\n  \n\n   Second one, indented.",
            ["First paragraph ends here.", "Second one, indented."],
            id="blank lines with spaces",
        ),
        pytest.param(
            "the price rose. it was 5 a.m. on Friday.",
            ["the price rose. it was 5 a.m. on Friday."],
            id="lower-case start does not split",
        ),
    ],
)
def test_sentence_spans(text: str, expected: list[str]) -> None:
    assert sentences(text) == expected


def test_sentence_spans_respect_start_and_end() -> None:
    text = "Ignore this. Keep this one. And this. Ignore that."
    start = text.index("Keep")
    end = text.index(" Ignore that")
    spans = sentence_spans(text, start, end)
    assert [text[s:e] for s, e in spans] == ["Keep this one.", "And this."]
    assert all(start <= s < e <= end for s, e in spans)


@pytest.mark.parametrize("text", ["", " ", "\n\n\t  \n"])
def test_sentence_spans_of_blank_text(text: str) -> None:
    assert sentence_spans(text) == []
    assert chunk_spans(text) == []


def test_seed_sample_sentences(samples_dir: Path) -> None:
    draft = parse_seed(
        (samples_dir / "iran-russia-police-2023-06-29.txt").read_text(encoding="utf-8"), "seed"
    )
    assert isinstance(draft, ArticleDraft)
    found = sentences(draft.text)
    assert (
        "Iran's police chief Brigadier General Ahmad Reza Radan has signed a memorandum of "
        "understanding with Russia's National Guard on expansion of military and security "
        "collaboration between Tehran and Moscow."
    ) in found
    assert (
        "Radan inked the deal with Russia\u2019s National Guard chief Viktor Zolotov on the "
        "second day of his visit to Moscow on Wednesday."
    ) in found


# -- normalization and hashes -------------------------------------------------------------


def test_fold_quotes_keeps_offsets() -> None:
    text = "Russia\u2019s \u201cguard\u201d \u2013 it\u00a0is"
    folded = fold_quotes(text)
    assert folded == 'Russia\'s "guard" - it is'
    assert len(folded) == len(text)


def test_content_hash_ignores_case_space_and_typography() -> None:
    a = "Iran\u2019s police chief  signed\n\nthe memorandum."
    b = "iran's POLICE chief signed the memorandum.  "
    assert normalize_for_hash(a) == normalize_for_hash(b)
    assert content_hash(a) == content_hash(b)
    assert content_hash(a) != content_hash("Iran's police chief signed a memorandum.")
    # parts are separated: moving a word across the boundary changes the hash
    assert content_hash("ab", "c") != content_hash("a", "bc")


# -- chunk sizes and overlap ----------------------------------------------------------------


@pytest.fixture
def long_text(samples_dir: Path) -> str:
    """All sample articles' bodies as one long article (~2,500 words)."""
    bodies = []
    for path in sorted(samples_dir.glob("*.txt")):
        draft = parse_seed(path.read_text(encoding="utf-8"), str(path))
        assert isinstance(draft, ArticleDraft), draft
        bodies.append(draft.text)
    return "\n\n".join(bodies)


def test_chunk_sizes_on_a_long_text(long_text: str) -> None:
    assert word_count(long_text) > 2000
    spans = chunk_spans(long_text)
    counts = [word_count(long_text[s.start : s.end]) for s in spans]
    assert len(spans) >= 10
    assert all(n <= MAX_WORDS for n in counts), counts
    # every chunk but the last is about TARGET_WORDS long
    assert all(120 <= n <= 200 for n in counts[:-1]), counts
    assert counts[-1] >= 1
    assert abs(sum(counts[:-1]) / len(counts[:-1]) - TARGET_WORDS) < 30


def test_consecutive_chunks_share_exactly_one_sentence(long_text: str) -> None:
    spans = chunk_spans(long_text)
    sents = sentence_spans(long_text)
    starts = {s for s, _ in sents}
    for a, b in itertools.pairwise(spans):
        assert a.start in starts and b.start in starts
        inside_a = [(s, e) for s, e in sents if a.start <= s and e <= a.end]
        # b starts where a's last sentence starts: that sentence is the overlap
        assert b.start == inside_a[-1][0], (a, b)
        overlap = [(s, e) for s, e in sents if b.start <= s and e <= a.end]
        assert len(overlap) == 1


def test_chunks_are_whole_sentences(long_text: str) -> None:
    sents = sentence_spans(long_text)
    starts = {s for s, _ in sents}
    ends = {e for _, e in sents}
    for span in chunk_spans(long_text):
        assert span.start in starts
        assert span.end in ends


def test_seed_sample_chunks(samples_dir: Path) -> None:
    draft = parse_seed(
        (samples_dir / "iran-russia-police-2023-06-29.txt").read_text(encoding="utf-8"), "seed"
    )
    assert isinstance(draft, ArticleDraft)
    spans = chunk_spans(draft.text)
    assert len(spans) == 2
    assert [s.ordinal for s in spans] == [0, 1]
    quote = "Radan inked the deal with Russia\u2019s National Guard chief Viktor Zolotov"
    assert any(quote in draft.text[s.start : s.end] for s in spans)


def test_short_text_is_one_chunk() -> None:
    text = "One sentence. Two sentences.\n\nA third in a new paragraph."
    assert chunk_spans(text) == [ChunkSpan(ordinal=0, start=0, end=len(text))]


def test_a_sentence_longer_than_max_words_is_cut_at_word_boundaries() -> None:
    words = [f"word{i}" for i in range(450)]
    text = "  " + " ".join(words) + " end.  "
    spans = chunk_spans(text)
    counts = [word_count(text[s.start : s.end]) for s in spans]
    assert counts == [200, 200, 51]
    assert text[spans[0].start : spans[0].end].startswith("word0 ")
    assert text[spans[-1].start : spans[-1].end].endswith("word449 end.")
    # pieces of one sentence do not overlap: nothing would make progress otherwise
    assert all(a.end < b.start for a, b in itertools.pairwise(spans))


def test_smaller_targets_make_more_chunks(long_text: str) -> None:
    small = chunk_spans(long_text, target_words=40, max_words=60)
    default = chunk_spans(long_text)
    assert len(small) > 2 * len(default)
    assert all(word_count(long_text[s.start : s.end]) <= 60 for s in small)


# -- properties over arbitrary text ------------------------------------------------------------


def assert_chunk_invariants(text: str, spans: list[ChunkSpan]) -> None:
    """What every consumer of chunks relies on."""
    assert [s.ordinal for s in spans] == list(range(len(spans)))
    covered = bytearray(len(text))
    previous_start = -1
    for span in spans:
        assert 0 <= span.start < span.end <= len(text), span
        piece = text[span.start : span.end]
        assert piece, span
        assert piece == piece.strip(), (span, piece)
        assert not piece[0].isspace() and not piece[-1].isspace()
        assert span.start > previous_start, "starts must strictly increase"
        previous_start = span.start
        covered[span.start : span.end] = b"\x01" * (span.end - span.start)
    for i, char in enumerate(text):
        if not char.isspace():
            assert covered[i], f"character {char!r} at {i} is in no chunk"
    if text.strip():
        assert spans, "non-blank text must have a chunk"
    else:
        assert spans == []


def assert_sentence_invariants(text: str) -> None:
    spans = sentence_spans(text)
    covered = bytearray(len(text))
    for (_, e1), (s2, _) in itertools.pairwise(spans):
        assert e1 <= s2, "sentences must not overlap"
    for s, e in spans:
        assert 0 <= s < e <= len(text)
        assert text[s:e] == text[s:e].strip()
        covered[s:e] = b"\x01" * (e - s)
    assert all(covered[i] for i, c in enumerate(text) if not c.isspace())


# Pieces that stress the boundary rules: abbreviations, initials, decimals, quotes,
# brackets, ellipses, paragraph breaks, odd white space and non-Latin letters.
FRAGMENTS = st.sampled_from(
    [
        "The U.S. Army said so.",
        "Brig. Gen.",
        "Dr.",
        "J. R. Smith",
        "3.5",
        "\u201cYes.\u201d",
        '"No."',
        "(It ended.)",
        "[Sic.]",
        "...",
        "\u2026",
        "?!",
        "Radan",
        "\u0420\u0430\u0434\u0430\u043d.",
        "\u00c9t\u00e9.",
        "a",
        "x" * 7,
        "'",
        " ",
        "  ",
        "\n",
        "\n\n",
        "\n \n",
        "\t",
        "\r\n",
        "\u00a0",
        "\u2028",
        "\u3000",
        "\x1c",
    ]
)
SENTENCE_LIKE = st.lists(FRAGMENTS, max_size=80).map("".join)
ANY_TEXT = st.one_of(
    st.text(),
    st.text(alphabet=st.sampled_from(list(" \n\t.!?\"'\u201d)(AbZ3\u00a0\u2026")), max_size=200),
    SENTENCE_LIKE,
)


@settings(max_examples=400, deadline=None)
@given(text=ANY_TEXT)
def test_chunk_spans_invariants_on_any_text(text: str) -> None:
    assert_chunk_invariants(text, chunk_spans(text))
    assert_sentence_invariants(text)


@settings(max_examples=300, deadline=None)
@given(
    text=st.one_of(SENTENCE_LIKE, st.text(max_size=300)),
    target=st.integers(min_value=1, max_value=12),
    extra=st.integers(min_value=0, max_value=8),
)
def test_chunk_spans_invariants_with_small_sizes(text: str, target: int, extra: int) -> None:
    # small sizes force many chunks, long-sentence cuts and every overlap branch
    max_words = target + extra
    spans = chunk_spans(text, target_words=target, max_words=max_words)
    assert_chunk_invariants(text, spans)
    for span in spans:
        words = word_count(text[span.start : span.end])
        sentence_count = len(sentence_spans(text, span.start, span.end))
        assert words <= max_words or sentence_count == 1, (span, words)


# -- the store keeps the offsets exact -------------------------------------------------------

_db_counter = itertools.count()


@settings(
    max_examples=8,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    body=st.one_of(SENTENCE_LIKE, st.text(min_size=1, max_size=400)).filter(str.strip),
    repeat=st.integers(min_value=1, max_value=30),
)
async def test_stored_chunks_are_exact_slices_of_the_article(
    tmp_path: Path, body: str, repeat: int
) -> None:
    text = "\n\n".join([body] * repeat)  # long enough for several chunks sometimes
    store = await Store.open(tmp_path / f"roundtrip-{next(_db_counter)}.db")
    try:
        article_id = await store.save_article(
            ArticleDraft(title="Round trip", text=text, published_at=date(2023, 6, 29))
        )
        article = await store.get_article(article_id)
        assert article is not None
        assert article.text == text
        chunks = await store.chunks_of(article_id)
        assert [(c.ordinal, c.start, c.end) for c in chunks] == [
            (s.ordinal, s.start, s.end) for s in chunk_spans(text)
        ]
        for chunk in chunks:
            assert chunk.article_id == article_id
            assert article.text[chunk.start : chunk.end] == chunk.text
    finally:
        await store.close()

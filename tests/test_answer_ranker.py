"""The answer ranker: candidate features, the fitted weights, and the fitting itself."""

from __future__ import annotations

import math
from datetime import date, datetime

import numpy as np

from benchmarks.train_answer_ranker import Sample, evaluate, fit
from bot.answering.candidates import candidates
from bot.answering.evidence import Evidence
from bot.answering.extract import extract
from bot.answering.question import analyze
from bot.answering.ranker import FEATURES, WEIGHTS, candidate_features, rank_candidates
from corpus.models import Article

TEXT = (
    "Mayor Lena Voss signed the dredging contract with Kell Marine on Monday. "
    "The contract was signed by Voss after a council vote. "
    "Kell Marine chief Ivo Brandt said work starts in June. "
    "Engineer Mira Holt will lead the works."
)


def make_article(article_id: int = 1, text: str = TEXT) -> Article:
    return Article(
        id=article_id,
        url=f"https://news.example/{article_id}",
        title="Dredging contract signed",
        source="Mellin Gazette",
        authors=(),
        published_at=date(2024, 5, 1),
        language="en",
        text=text,
        content_hash=f"hash-{article_id}",
        ingested_at=datetime(2024, 5, 2, 12, 0),
    )


def sentence_evidence(article: Article, sentence: str, score: float) -> Evidence:
    """An evidence sentence with its typed candidate spans, as score_sentences makes it."""
    start = article.text.index(sentence)
    end = start + len(sentence)
    return Evidence(
        article, start, end, score, 0.9, 1.0, tuple(candidates(article.text, start, end))
    )


def evidence_for_text(article: Article) -> list[Evidence]:
    sentences = [s.strip() + "." for s in article.text.split(".") if s.strip()]
    return [sentence_evidence(article, s, 1.0 - 0.1 * i) for i, s in enumerate(sentences)]


def test_every_candidate_has_every_feature_and_repeats_fold_together() -> None:
    info = analyze("Who signed the dredging contract with Kell Marine?")
    found = {c.text: c for c in candidate_features(info, evidence_for_text(make_article()))}
    assert "Mayor Lena Voss" in found and "Ivo Brandt" in found
    for candidate in found.values():
        assert set(candidate.features) == set(FEATURES)
    # "Voss" in the second sentence expands to the full name: one candidate, seen twice.
    voss = found["Mayor Lena Voss"]
    assert voss.features["log_count"] == math.log1p(2)
    assert voss.features["articles"] == 0.0
    # Kell Marine is named by the question: flagged, and ranked below the answer.
    assert found["Kell Marine"].features["asked_name"] == 1.0
    assert found["Ivo Brandt"].features["describes_asked"] == 1.0


def test_same_answer_in_two_articles_counts_both() -> None:
    info = analyze("Who signed the dredging contract?")
    first, second = make_article(1), make_article(2)
    evidence = evidence_for_text(first)[:1] + evidence_for_text(second)[:1]
    found = {c.text: c for c in candidate_features(info, evidence)}
    assert found["Mayor Lena Voss"].features["articles"] == 1.0


def test_fitted_weights_pick_the_signer_and_quote_the_best_sentence() -> None:
    info = analyze("Who signed the dredging contract?")
    evidence = evidence_for_text(make_article())
    ranked = rank_candidates(info, evidence)
    assert ranked[0].text == "Mayor Lena Voss"
    assert set(WEIGHTS) == set(FEATURES)
    found = extract(info, evidence)
    assert found is not None and found.text == "Mayor Lena Voss"
    assert found.evidence is evidence[0]  # the best-scored sentence naming the answer


def test_other_weights_change_the_choice() -> None:
    info = analyze("Who signed the dredging contract with Kell Marine?")
    evidence = evidence_for_text(make_article())
    prefers_describers = {name: 0.0 for name in FEATURES} | {"describes_asked": 5.0}
    assert rank_candidates(info, evidence, prefers_describers)[0].text == "Ivo Brandt"


def test_no_evidence_no_candidates() -> None:
    assert candidate_features(analyze("Who won?"), []) == []


def synthetic_samples(count: int, seed: int) -> list[Sample]:
    """Questions whose right candidate is the one with the largest second feature; the
    first feature is noise."""
    rng = np.random.default_rng(seed)
    samples = []
    for i in range(count):
        features = rng.normal(size=(6, 2))
        targets = np.zeros(6)
        targets[int(np.argmax(features[:, 1]))] = 1.0
        samples.append(
            Sample(
                month=f"{i % 3:02d}",
                abstains=False,
                fixed=None,
                features=features,
                texts=[f"c{j}" for j in range(6)],
                targets=targets,
                gold="unused",
            )
        )
    return samples


def test_fit_learns_the_feature_that_predicts_the_answer() -> None:
    train, test = synthetic_samples(120, seed=1), synthetic_samples(60, seed=2)
    w = fit(train, l2=0.01, steps=300)
    assert w[1] > 5 * abs(w[0])
    f1_all, _, _ = evaluate(test, w)
    # Scored through the SQuAD F1 of candidate text against the target: here targets are
    # the F1 itself, so picking the right candidate everywhere gives 1.0.
    assert f1_all == evaluate(test, None)[0] == 1.0
    assert evaluate(test, np.array([1.0, 0.0]))[0] < 0.5

"""The packaged model: loaded offline, unit vectors, and every encode on one thread."""

from __future__ import annotations

import asyncio
import threading

import numpy as np
import pytest

from embeddings.embedder import SentenceTransformerEmbedder, load_embedder
from embeddings.precision import CACHE_FILE, available_precisions

TEXTS = [
    "A long sentence about the harbour crane that was repaired on Monday. " * 20,
    "Frost",
    "Заявление МВД России о сотрудничестве — 2023",
]


@pytest.fixture(scope="module")
def embedder(tmp_path_factory: pytest.TempPathFactory) -> SentenceTransformerEmbedder:
    cache = tmp_path_factory.mktemp("cache")
    model = load_embedder("all-MiniLM-L6-v2", "auto", cache)
    assert isinstance(model, SentenceTransformerEmbedder)
    return model


def test_auto_precision_is_measured_and_cached(
    embedder: SentenceTransformerEmbedder, tmp_path_factory: pytest.TempPathFactory
) -> None:
    assert embedder.precision in available_precisions()
    caches = list(tmp_path_factory.getbasetemp().glob(f"cache*/{CACHE_FILE}"))
    assert caches, "the measured choice is written to the data directory's cache"
    entries = __import__("json").loads(caches[0].read_text())
    (entry,) = [e for key, e in entries.items() if key.endswith("all-MiniLM-L6-v2")]
    assert entry["precision"] == embedder.precision
    assert set(entry["seconds"]) == set(available_precisions())
    # Vectors are named by the model alone: any calibrated precision may be mixed.
    assert embedder.name == "all-MiniLM-L6-v2"


def test_a_single_query_matches_the_batch_path(embedder: SentenceTransformerEmbedder) -> None:
    # One text may go to onnxruntime (where measured faster), a batch always to torch.
    assert embedder.query_engine in ("onnxruntime", "torch")
    alone = embedder.embed(["Who signed with Zolotov?"])[0]
    batch = embedder.embed(["Who signed with Zolotov?", "Frost"])[0]
    assert abs(float(np.linalg.norm(alone)) - 1.0) < 1e-5
    assert float(alone @ batch) >= 0.99


@pytest.mark.parametrize("precision", available_precisions())
def test_unit_vectors_in_input_order_for_every_precision(precision: str) -> None:
    model = load_embedder("all-MiniLM-L6-v2", precision)
    vectors = model.embed(TEXTS)
    assert vectors.shape == (3, model.dim) and vectors.dtype == np.float32
    # Normalized in float32 after the model, whatever precision it ran in.
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    # Sorting by length for batching must not change which vector is whose.
    alone = model.embed(["Frost"])[0]
    assert float(vectors[1] @ alone) > 0.99


def test_encodes_from_many_threads_all_run_on_the_model_thread(
    embedder: SentenceTransformerEmbedder,
) -> None:
    seen: set[int] = set()
    encode = embedder._encode

    def recording(batch: list[str]) -> object:
        seen.add(threading.get_ident())
        return encode(batch)

    embedder._encode = recording  # type: ignore[method-assign]
    query_encoder, embedder._query_encoder = embedder._query_encoder, None  # torch only here
    try:

        async def many() -> list[np.ndarray]:
            calls = [asyncio.to_thread(embedder.embed, [f"question {i}"]) for i in range(8)]
            return await asyncio.gather(*calls)

        results = asyncio.run(many())
        embedder.embed(["from the main thread"])
    finally:
        del embedder._encode
        embedder._query_encoder = query_encoder
    assert len(results) == 8 and all(r.shape == (1, embedder.dim) for r in results)
    assert seen == {embedder._worker_ident}
    assert embedder._worker_ident != threading.get_ident()

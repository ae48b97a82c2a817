"""The packaged model: loaded offline, unit vectors, and every encode on one thread."""

from __future__ import annotations

import asyncio
import threading

import numpy as np
import pytest

from embeddings.embedder import SentenceTransformerEmbedder, load_embedder


@pytest.fixture(scope="module")
def embedder() -> SentenceTransformerEmbedder:
    model = load_embedder("all-MiniLM-L6-v2")
    assert isinstance(model, SentenceTransformerEmbedder)
    return model


def test_unit_vectors_in_input_order(embedder: SentenceTransformerEmbedder) -> None:
    texts = ["A long sentence about the harbour crane that was repaired on Monday.", "Frost"]
    vectors = embedder.embed(texts)
    assert vectors.shape == (2, embedder.dim) and vectors.dtype == np.float32
    # Normalized by the model, in bfloat16 where the CPU has it: within half a percent.
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=5e-3)
    # Sorting by length for batching must not change which vector is whose.
    alone = embedder.embed(["Frost"])[0]
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
    try:

        async def many() -> list[np.ndarray]:
            calls = [asyncio.to_thread(embedder.embed, [f"question {i}"]) for i in range(8)]
            return await asyncio.gather(*calls)

        results = asyncio.run(many())
        embedder.embed(["from the main thread"])
    finally:
        del embedder._encode
    assert len(results) == 8 and all(r.shape == (1, embedder.dim) for r in results)
    assert seen == {embedder._worker_ident}
    assert embedder._worker_ident != threading.get_ident()

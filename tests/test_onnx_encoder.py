"""The onnxruntime query encoder: the packaged model's vectors, exported once and cached."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("onnxruntime")

from embeddings import onnx_encoder  # noqa: E402
from embeddings.onnx_encoder import OnnxQueryEncoder, onnx_runtime_available  # noqa: E402

MODEL = "all-MiniLM-L6-v2"
TEXTS = [
    "who signed with Zolotov?",
    "Which country hosted the summit this week?",
    "Frost",
    "  leading and trailing spaces  ",
    "Zürich, São Paulo and Kraków: mayors meet — «un accord historique»",
    "東京で新しい首相が選ばれた",
    "Президент подписал закон о бюджете",
    "The central bank raised rates by 0.25% to 4.5%; markets fell 2.1% (S&P 500).",
    "🚀 SpaceX launch delayed again #news",
    # Far past 256 tokens: truncated exactly as sentence-transformers truncates.
    " ".join(f"The harbour crane number {i} was repaired on Monday." for i in range(60)),
]


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> OnnxQueryEncoder:
    """One real export for the whole module (it takes several seconds)."""
    return OnnxQueryEncoder(MODEL, tmp_path_factory.mktemp("onnx"))


def _no_export(*args: object) -> None:
    raise AssertionError("exported again")


def test_runtime_available() -> None:
    assert onnx_runtime_available()


def test_unit_vectors_match_sentence_transformers_fp32(exported: OnnxQueryEncoder) -> None:
    from sentence_transformers import SentenceTransformer

    vectors = exported.encode(TEXTS)
    assert vectors.shape == (len(TEXTS), 384) and vectors.dtype == np.float32
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert len(exported.tokenizer(TEXTS[-1])["input_ids"]) > 256  # really truncated

    reference = SentenceTransformer(str(exported.model_path), device="cpu").encode(
        TEXTS, normalize_embeddings=True, convert_to_numpy=True
    )
    cosines = (vectors * reference).sum(axis=1)
    assert cosines.min() >= 0.999, dict(zip(TEXTS, cosines.round(5), strict=True))
    # One at a time (no padding) gives the same vectors as in a padded batch.
    alone = np.vstack([exported.encode([text]) for text in TEXTS])
    assert np.allclose(alone, vectors, atol=1e-4)
    assert exported.encode([]).shape == (0, 384)


def test_second_start_reuses_the_cached_file(
    exported: OnnxQueryEncoder, monkeypatch: pytest.MonkeyPatch
) -> None:
    mtime = exported.onnx_path.stat().st_mtime_ns
    monkeypatch.setattr(onnx_encoder, "_export_transformer", _no_export)

    again = OnnxQueryEncoder(MODEL, exported.cache_dir)

    assert again.onnx_path == exported.onnx_path
    assert again.onnx_path.stat().st_mtime_ns == mtime
    assert list(exported.cache_dir.iterdir()) == [exported.onnx_path]  # no temp files left
    assert np.array_equal(again.encode(TEXTS[:2]), exported.encode(TEXTS[:2]))


def test_corrupt_cached_file_is_exported_anew(
    exported: OnnxQueryEncoder, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cached = tmp_path / exported.onnx_path.name
    cached.write_bytes(exported.onnx_path.read_bytes()[:1_000_000])  # a partial copy
    stale = tmp_path / f"{exported.name}-0000000000000000.onnx"  # an older version's export
    stale.write_bytes(b"old")
    calls: list[Path] = []

    def fake_export(model_path: Path, target: Path, tokenizer: object) -> None:
        # Stands in for the real export (seconds): the good file, written to the temp path.
        calls.append(target)
        shutil.copyfile(exported.onnx_path, target)

    monkeypatch.setattr(onnx_encoder, "_export_transformer", fake_export)
    encoder = OnnxQueryEncoder(MODEL, tmp_path)

    assert len(calls) == 1 and calls[0] != cached  # written beside it, then renamed
    assert encoder.onnx_path == cached
    assert cached.stat().st_size == exported.onnx_path.stat().st_size
    assert not stale.exists()
    assert np.array_equal(encoder.encode(TEXTS[:2]), exported.encode(TEXTS[:2]))


def test_failed_export_leaves_nothing_behind(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def crash(model_path: Path, target: Path, tokenizer: object) -> None:
        target.write_bytes(b"half a model")
        raise RuntimeError("killed mid-export")

    monkeypatch.setattr(onnx_encoder, "_export_transformer", crash)
    with pytest.raises(RuntimeError, match="mid-export"):
        OnnxQueryEncoder(MODEL, tmp_path)
    assert list(tmp_path.iterdir()) == []

"""The precision calibration: fastest faithful precision, measured once per machine."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from embeddings import precision as prec


@pytest.fixture(autouse=True)
def both_precisions(monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory):
    """Measure both precisions whatever this CPU has; forget earlier choices (in this
    process and in the user's cache)."""
    monkeypatch.setattr(prec, "available_precisions", lambda: ("fp32", "bf16"))
    monkeypatch.setattr(prec, "_memo", {})
    monkeypatch.setattr(prec, "_holding", set())
    machine = tmp_path_factory.mktemp("machine-cache")
    monkeypatch.setattr(prec, "machine_cache_dir", lambda: machine)
    return machine


class FakeModel:
    """Outputs and costs per precision; counts the calibration calls."""

    def __init__(self, bf16_noise: float, bf16_cost: int) -> None:
        self.calls: list[str] = []
        self.bf16_noise = bf16_noise
        self.bf16_cost = bf16_cost

    def __call__(self, precision: str) -> np.ndarray:
        self.calls.append(precision)
        base = np.random.default_rng(0).standard_normal((8, 16))
        if precision == "fp32":
            # a little real work so its time is not zero
            sum(range(20_000))
            return base
        sum(range(self.bf16_cost))
        return base + self.bf16_noise * np.random.default_rng(1).standard_normal((8, 16))


def test_faster_faithful_precision_wins_and_is_cached(tmp_path: Path) -> None:
    model = FakeModel(bf16_noise=0.01, bf16_cost=0)
    choice = prec.choose_precision("m", model, tmp_path)
    assert choice.precision == "bf16"
    assert choice.cosine["bf16"] >= prec.MIN_COSINE and choice.cosine["fp32"] == pytest.approx(1)
    calls = len(model.calls)
    # A new process (empty memo) on the same machine reads the file: no measuring.
    prec._memo.clear()
    again = prec.choose_precision("m", model, tmp_path)
    assert again == choice and len(model.calls) == calls
    entries = json.loads((tmp_path / prec.CACHE_FILE).read_text())
    assert list(entries) == [prec.machine_key("m")]
    assert "cores" in choice.key and "torch" in choice.key


def test_a_precision_that_changes_the_outputs_is_refused(tmp_path: Path) -> None:
    model = FakeModel(bf16_noise=1.0, bf16_cost=0)  # fast but wrong
    choice = prec.choose_precision("m", model, tmp_path)
    assert choice.precision == "fp32"
    assert choice.cosine["bf16"] < prec.MIN_COSINE


def test_a_slower_precision_is_not_chosen(tmp_path: Path) -> None:
    model = FakeModel(bf16_noise=0.0, bf16_cost=3_000_000)
    assert prec.choose_precision("m", model, tmp_path).precision == "fp32"


def test_a_new_data_directory_reuses_the_machine_measurement(
    tmp_path: Path, both_precisions: Path
) -> None:
    model = FakeModel(bf16_noise=0.01, bf16_cost=0)
    first = prec.choose_precision("m", model, tmp_path / "data-a")
    calls = len(model.calls)
    prec._memo.clear()
    again = prec.choose_precision("m", model, tmp_path / "data-b")
    assert again == first and len(model.calls) == calls
    assert (tmp_path / "data-b" / prec.CACHE_FILE).is_file()  # its own copy
    assert (both_precisions / prec.CACHE_FILE).is_file()


def test_another_machine_measures_again(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    model = FakeModel(bf16_noise=0.01, bf16_cost=0)
    prec.choose_precision("m", model, tmp_path)
    prec._memo.clear()
    monkeypatch.setattr(prec, "cpu_model", lambda: "Another CPU")
    calls = len(model.calls)
    prec.choose_precision("m", model, tmp_path)
    assert len(model.calls) > calls
    assert len(json.loads((tmp_path / prec.CACHE_FILE).read_text())) == 2


def test_a_damaged_cache_is_measured_again(tmp_path: Path) -> None:
    (tmp_path / prec.CACHE_FILE).write_text("{not json")
    model = FakeModel(bf16_noise=0.01, bf16_cost=0)
    assert prec.choose_precision("m", model, tmp_path).precision == "bf16"
    assert model.calls
    assert json.loads((tmp_path / prec.CACHE_FILE).read_text())

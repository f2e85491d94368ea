"""Every refused pickle is refused, and its NP902 message names what it would run."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest

pytest.importorskip("torch")
pytest.importorskip("picklescan")

from corpus import Hostile  # noqa: E402
from corpus_messages import CASES  # noqa: E402

from nnprobe.core import trust  # noqa: E402
from nnprobe.probe.loading import LoadError, load_checkpoint  # noqa: E402


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_the_payload_is_real(case: Hostile, tmp_path: Path) -> None:
    sentinel = tmp_path / "SENTINEL"
    path = case.build(tmp_path, sentinel)
    try:
        result = pickle.loads(path.read_bytes())
    except Exception:  # the call may return an object that fails later; it has run by then
        result = None
    if hasattr(result, "wait"):
        result.wait()
    assert sentinel.exists()


@pytest.mark.parametrize("trusted", [False, True], ids=["untrusted", "trusted"])
@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_refused_and_named(case: Hostile, trusted: bool, tmp_path: Path) -> None:
    sentinel = tmp_path / "SENTINEL"
    path = case.build(tmp_path, sentinel)
    with trust.guard(trusted), pytest.raises(LoadError) as raised:
        load_checkpoint(path, allow_pickle=False)
    assert raised.value.code == case.code
    assert case.says in raised.value.message
    assert "unknown.unknown" not in raised.value.message
    assert not sentinel.exists()

"""Probe inputs: data files read without unpickling, synthetic inputs seeded and labelled as
such."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from zoo import LSTMNet, SmallCNN, TinyTransformer

from nnprobe.probe.inputs import (
    ProbeInputError,
    ProbeInputs,
    load_probe_file,
    parse_shape,
    spec_from_module,
    spec_from_signature,
    synthetic_inputs,
)


def test_npz_with_x_and_y(tmp_path: Path) -> None:
    path = tmp_path / "digits.npz"
    np.savez(path, x=np.zeros((5, 64), dtype=np.float64), y=np.arange(5))
    probe = load_probe_file(path)
    assert probe.x.dtype == np.float32 and probe.x.shape == (5, 64)
    assert probe.y is not None and probe.y.tolist() == [0, 1, 2, 3, 4]
    assert not probe.synthetic
    assert probe.describe() == "5 inputs from digits.npz"


def test_npz_without_x_names_its_arrays(tmp_path: Path) -> None:
    path = tmp_path / "data.npz"
    np.savez(path, a=np.zeros(3), b=np.zeros(3))
    with pytest.raises(ProbeInputError, match="a, b but no 'x'"):
        load_probe_file(path)


def test_npy_and_object_arrays_refused(tmp_path: Path) -> None:
    good = tmp_path / "x.npy"
    np.save(good, np.ones((3, 2), dtype=np.float32))
    assert load_probe_file(good).count == 3
    bad = tmp_path / "objects.npy"
    np.save(bad, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(ProbeInputError, match="cannot read"):
        load_probe_file(bad)


def test_pt_tensor_dict_and_pair(tmp_path: Path) -> None:
    x = torch.randn(4, 3)
    for i, payload in enumerate([x, {"x": x, "y": torch.arange(4)}, (x, torch.arange(4))]):
        path = tmp_path / f"p{i}.pt"
        torch.save(payload, path)
        probe = load_probe_file(path)
        assert probe.x.shape == (4, 3)
        assert (probe.y is None) == (i == 0)


def test_pt_needing_pickle_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "model.pt"
    torch.save(torch.nn.Linear(2, 2), path)
    with pytest.raises(ProbeInputError, match="weights_only=True"):
        load_probe_file(path)


def test_mismatched_labels() -> None:
    with pytest.raises(ProbeInputError, match="3 inputs but 2 labels"):
        ProbeInputs.from_arrays(np.zeros((3, 2)), np.zeros(2))


def test_parse_shape() -> None:
    assert parse_shape("3,32,32") == (3, 32, 32)
    assert parse_shape("3x32x32") == (3, 32, 32)
    for bad in ("", "3,a", "0,4"):
        with pytest.raises(ProbeInputError):
            parse_shape(bad)


def test_synthetic_is_seeded_and_says_so() -> None:
    a = synthetic_inputs((3, 8, 8), 64, seed=1)
    b = synthetic_inputs((3, 8, 8), 64, seed=1)
    assert np.array_equal(a.x, b.x)
    assert a.synthetic and a.describe() == "64 synthetic inputs"
    assert a.summary().synthetic and a.summary().image_like


def test_shape_from_first_layer() -> None:
    spec = spec_from_module(SmallCNN())
    assert spec is not None and spec.shape == (1, 32, 32)
    spec = spec_from_module(LSTMNet())
    assert spec is not None and spec.shape == (16, 8)
    spec = spec_from_module(TinyTransformer())
    assert spec is not None and spec.shape == (8,)  # its first layer is the Linear projection
    embedding = torch.nn.Sequential(torch.nn.Embedding(100, 8), torch.nn.Flatten())
    spec = spec_from_module(embedding)
    assert spec is not None and spec.integer_high == 100
    assert spec_from_module(torch.nn.Sequential(torch.nn.ReLU())) is None


def test_shape_from_signature() -> None:
    spec = spec_from_signature(("batch", 3, "h", 16))
    assert spec.shape == (3, 16, 16)
    assert "symbolic" in spec.note

"""Streaming statistics: merged over sub-batches they equal the statistics of the whole array."""

from __future__ import annotations

import math

import numpy as np
import pytest

from nnprobe.probe.stats import StatsSpec, ValueStats, resize_mean_image


def _feed(stats: ValueStats, x: np.ndarray, size: int) -> None:
    for start in range(0, x.shape[0], size):
        stats.update(x[start : start + size])


@pytest.mark.parametrize("size", [1, 7, 64, 1000])
def test_merged_moments_equal_whole_array(size: int) -> None:
    rng = np.random.default_rng(0)
    x = (rng.standard_normal((300, 6, 5, 5)) * 3 + 100).astype(np.float32)
    stats = ValueStats("conv")
    _feed(stats, x, size)
    s = stats.summary(name="v", module="m", op="Conv", order=0)
    whole = x.astype(np.float64)
    assert s.count == x.size
    assert s.mean == pytest.approx(whole.mean(), rel=1e-6)
    assert s.std == pytest.approx(whole.std(), rel=1e-4)
    assert (s.min, s.max) == (float(x.min()), float(x.max()))


def test_dead_units_counted_per_channel_over_all_sub_batches() -> None:
    rng = np.random.default_rng(1)
    x = rng.standard_normal((50, 4, 3, 3)).astype(np.float32)
    x[:, 1] = -np.abs(x[:, 1])  # channel 1 is never positive
    x[:49, 2] = -1.0  # channel 2 fires only in the last sample
    x[49, 2, 0, 0] = 0.5
    stats = ValueStats("relu", unit_axis="channel")
    _feed(stats, x, 8)
    s = stats.summary(name="v", module="m", op="Relu", order=0)
    assert s.units == 4
    assert s.dead_units == 1
    assert s.unit_max is not None and s.unit_max[1] <= 0.0
    assert s.unit_max[2] == pytest.approx(float(x[49, 2].max()))
    assert s.active_fraction == pytest.approx(float((x > 0).mean()))


def test_non_finite_values_are_counted_and_kept_out_of_the_moments() -> None:
    x = np.ones((10, 4), dtype=np.float32)
    x[0, 0], x[1, 1], x[2, 2] = np.nan, np.inf, -np.inf
    stats = ValueStats("linear")
    _feed(stats, x, 3)
    s = stats.summary(name="v", module="m", op="Gemm", order=0)
    assert (s.nan, s.inf, s.count) == (1, 2, 37)
    assert s.mean == 1.0 and s.std == 0.0


def test_fp16_overflow_is_counted() -> None:
    x = np.array([[1.0, 7e4, -1e5, 3.0]], dtype=np.float32)
    stats = ValueStats("linear")
    stats.update(x)
    assert stats.beyond_fp16 == 2


def test_sigmoid_saturation_from_outputs() -> None:
    pre = np.linspace(-10, 10, 1001, dtype=np.float32)[None, :]
    out = 1 / (1 + np.exp(-pre))
    stats = ValueStats("sigmoid", spec=StatsSpec(preactivation_threshold=5.0))
    stats.update(out)
    s = stats.summary(name="v", module="m", op="Sigmoid", order=0)
    assert s.preactivation_beyond == pytest.approx(float((np.abs(pre) >= 5).mean()), abs=0.01)
    assert s.saturated_fraction is not None and s.saturated_fraction >= s.preactivation_beyond


def test_input_correlation_of_a_copied_image() -> None:
    rng = np.random.default_rng(2)
    image = rng.random((20, 1, 8, 8)).astype(np.float32)
    fmap = np.concatenate([image * 2 + 1, rng.random((20, 1, 8, 8)).astype(np.float32)], axis=1)
    stats = ValueStats("conv", correlate_input=True)
    stats.update(fmap[:10], image[:10])
    stats.update(fmap[10:], image[10:])
    corr = stats.summary(name="v", module="m", op="Conv", order=0).input_correlation
    assert corr is not None
    assert corr[0] == pytest.approx(1.0, abs=1e-6)
    assert abs(corr[1]) < 0.3


def test_resize_mean_image_block_means() -> None:
    image = np.arange(16, dtype=np.float32).reshape(1, 1, 4, 4)
    small = resize_mean_image(image, 2, 2)
    assert small.tolist() == [[[2.5, 4.5], [10.5, 12.5]]]
    assert resize_mean_image(image, 3, 3).shape == (1, 3, 3)


def test_empty_value_has_nan_moments() -> None:
    s = ValueStats("linear").summary(name="v", module="m", op="Gemm", order=0)
    assert s.count == 0 and math.isnan(s.mean)

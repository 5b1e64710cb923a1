"""The sampling helpers: cumulative distributions, draws, uniform days, ages and curves."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from enclave.synth.constants import _YEAR, FloatArr, IntArr, _Curve


def _cdf(weights: npt.ArrayLike) -> FloatArr:
    w = np.asarray(weights, dtype=np.float64)
    c: FloatArr = np.cumsum(w)
    out: FloatArr = c / c[-1]
    return out


def _draw(rng: np.random.Generator, cdf: FloatArr, size: int) -> IntArr:
    """Indices drawn with the probabilities whose cumulative distribution is ``cdf``."""
    idx = np.searchsorted(cdf, rng.random(size), side="right")
    return np.minimum(idx, cdf.size - 1).astype(np.int64)


def _uniform_day(rng: np.random.Generator, lo: IntArr, hi: IntArr) -> IntArr:
    """A uniform day in ``lo..hi`` (inclusive) for each pair."""
    span = np.maximum(hi - lo + 1, 1)
    day: IntArr = np.minimum(lo + (rng.random(lo.size) * span).astype(np.int64), np.maximum(hi, lo))
    return day


def _expand(counts: IntArr) -> IntArr:
    """Person index of each event, given the number of events per person."""
    return np.repeat(np.arange(counts.size, dtype=np.int64), counts)


def _age(day: IntArr, dob: IntArr) -> FloatArr:
    years: FloatArr = (day - dob) / _YEAR
    return years


def _interp(x: FloatArr, curve: _Curve) -> FloatArr:
    y: FloatArr = np.interp(x, curve[0], curve[1])
    return y

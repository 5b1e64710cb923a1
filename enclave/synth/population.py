"""The population (the chronic-condition and mortality model, ``_Population``) and the per-chunk
plumbing shared by the extracts."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl

from enclave.synth.constants import _REF, _START, _YEAR, DUPLICATE_RATE, BoolArr, FloatArr, IntArr, _Curve
from enclave.synth.sampling import _age, _draw, _expand, _interp, _uniform_day
from enclave.synth.tables import _AGE_BANDS, _tables

# Curves by age in years, linearly interpolated (flat beyond the ends): (ages, values).
# Prevalences use the age at the reference date; rates (per year) the age in mid-follow-up.
_DIABETES_BY_AGE: _Curve = (
    (0, 17, 18, 30, 40, 50, 60, 70, 80, 90, 101),
    (0.0002, 0.0005, 0.004, 0.012, 0.03, 0.065, 0.11, 0.155, 0.17, 0.15, 0.13),
)
_HYPERTENSION_BY_AGE: _Curve = (
    (18, 30, 40, 50, 60, 70, 80, 101),
    (0.01, 0.03, 0.08, 0.16, 0.28, 0.42, 0.52, 0.55),
)
_AF_BY_AGE: _Curve = ((40, 50, 60, 70, 80, 90), (0.001, 0.005, 0.02, 0.05, 0.1, 0.15))
_REFLUX_BY_AGE: _Curve = ((18, 50, 70, 90), (0.03, 0.1, 0.2, 0.25))
_OSTEOPOROSIS_BY_AGE: _Curve = ((50, 65, 80), (0.0, 0.05, 0.12))
_CHRONIC_PAIN_BY_AGE: _Curve = ((18, 50, 70, 90), (0.01, 0.03, 0.05, 0.07))
_STATIN_BY_AGE: _Curve = ((40, 50, 60, 70, 80), (0.0, 0.06, 0.15, 0.3, 0.38))
_DEP_DIABETES = np.array([1.45, 1.2, 1.0, 0.85, 0.7])
_DEP_MORTALITY = np.array([1.35, 1.15, 1.0, 0.9, 0.8])
_DEP_DEPRESSION = np.array([1.4, 1.2, 1.0, 0.85, 0.75])
_GOMPERTZ_A, _GOMPERTZ_B = -10.6, 0.098


class _Population:
    """The latent state of one chunk's people (registered first, then unregistered)."""

    def __init__(self, rng: np.random.Generator, n_registered: int, nhs: IntArr) -> None:
        t = _tables()
        n = nhs.size
        self.n = n
        self.nhs = nhs
        self.registered = np.arange(n) < n_registered
        self.order = rng.permutation(n).astype(np.int64)  # output order of people within the chunk
        self.female = rng.random(n) < 0.507
        u = rng.random(n)
        band = np.where(
            self.female,
            np.searchsorted(t.age_cdf_f, u, side="right"),
            np.searchsorted(t.age_cdf_m, u, side="right"),
        )
        band = np.minimum(band, _AGE_BANDS.size - 1)
        age = band * 5 + rng.random(n) * np.where(band == _AGE_BANDS.size - 1, 1.0, 5.0)
        self.dob = _REF - np.floor(age * _YEAR).astype(np.int64)
        self.age_ref = _age(np.full(n, _REF, dtype=np.int64), self.dob)
        self.region = _draw(rng, t.region_cdf, n)
        u = rng.random(n)
        self.quintile = 1 + (u[:, None] >= t.quintile_cdfs[self.region]).sum(axis=1).clip(0, 4)
        self.frailty = rng.gamma(0.45, 1 / 0.45, n)
        self.lo = np.maximum(self.dob, _START)
        self.adult_lo = np.maximum(self.lo, self.dob + int(18 * _YEAR) + 1)
        q = self.quintile - 1
        adult = self.age_ref >= 18

        # Chronic conditions.
        sex_dm = np.where(self.female, 0.87, 1.15)
        p_dm = _interp(self.age_ref, _DIABETES_BY_AGE)
        self.diabetic = rng.random(n) < p_dm * _DEP_DIABETES[q] * sex_dm

        # Death: Gompertz hazard from the start of the window (or birth), drawn in closed form.
        a0 = _age(self.lo, self.dob)
        mult = (
            np.where(self.female, 0.8, 1.25)
            * _DEP_MORTALITY[q]
            * np.where(self.diabetic, 1.7, 1.0)
            * (0.6 + 0.4 * self.frailty)
        )
        h0 = mult * np.exp(_GOMPERTZ_A + _GOMPERTZ_B * a0)
        years = np.log1p(rng.exponential(1.0, n) * _GOMPERTZ_B / h0) / _GOMPERTZ_B
        death = self.lo + np.floor(np.minimum(years, 200.0) * _YEAR).astype(np.int64)
        infant = (self.dob >= _START) & (rng.random(n) < 0.0035)
        infant_death = self.dob + np.floor(365 * rng.random(n) ** 3).astype(np.int64)
        death = np.where(infant, np.minimum(death, infant_death), death)
        self.dead = death <= _REF
        self.death = np.where(self.dead, death, _REF + 1)
        self.hi = np.minimum(self.death, _REF)

        # Diabetes onset: 70% before the window, the rest uniform over the adult part of it.
        incident = self.diabetic & (rng.random(n) < 0.3) & (self.adult_lo <= self.hi)
        onset = _uniform_day(rng, self.adult_lo, self.hi)
        self.dm_onset = np.where(incident, onset, np.where(self.diabetic, self.lo, _REF + 10_000))

        p = _interp(self.age_ref, _HYPERTENSION_BY_AGE) * np.where(self.diabetic, 1.8, 1.0)
        self.hypertension = adult & (rng.random(n) < np.minimum(p * np.where(q == 0, 1.15, 1.0), 0.9))
        self.af = adult & (rng.random(n) < _interp(self.age_ref, _AF_BY_AGE))
        p = 0.08 * np.where(self.female, 1.4, 0.7) * _DEP_DEPRESSION[q]
        self.depression = adult & (rng.random(n) < p)
        p = (0.02 + 0.0004 * (self.age_ref - 18)) * np.where(self.female, 1.6, 0.35)
        self.hypothyroid = adult & (rng.random(n) < p)
        self.reflux = adult & (rng.random(n) < _interp(self.age_ref, _REFLUX_BY_AGE))
        p = _interp(self.age_ref, _OSTEOPOROSIS_BY_AGE) * np.where(self.female, 1.0, 0.2)
        self.osteoporosis = adult & (rng.random(n) < p)
        p = _interp(self.age_ref, _CHRONIC_PAIN_BY_AGE) * _DEP_DEPRESSION[q]
        self.chronic_pain = adult & (rng.random(n) < p)
        p = np.minimum(_interp(self.age_ref, _STATIN_BY_AGE) * np.where(self.hypertension, 1.6, 1.0), 0.9)
        self.statin = adult & (rng.random(n) < np.where(self.diabetic, 0.8, p))

    def age_at(self, person: IntArr, day: IntArr) -> FloatArr:
        return _age(day, self.dob[person])


@dataclass
class _Counters:
    admissions: int = 0
    prescriptions: int = 0


def _nullable(values: IntArr | FloatArr, missing: BoolArr, dtype: type[pl.DataType]) -> pl.Series:
    series = pl.Series(values, dtype=dtype)
    idx = np.flatnonzero(missing)
    return series.scatter(idx, None) if idx.size else series


def _nhs_series(nhs: IntArr) -> pl.Series:
    return pl.Series(nhs, dtype=pl.Int64).cast(pl.String)


def _dates(days: IntArr) -> pl.Series:
    return pl.Series(days.astype(np.int32), dtype=pl.Int32).cast(pl.Date)


def _duplicated(rng: np.random.Generator, size: int) -> IntArr:
    """Row positions to take so that DUPLICATE_RATE of rows appear twice, next to each other."""
    return _expand(1 + (rng.random(size) < DUPLICATE_RATE).astype(np.int64))


def _id_series(prefix: str, numbers: IntArr, width: int) -> pl.Series:
    return pl.select(pl.lit(prefix) + pl.Series(numbers).cast(pl.String).str.zfill(width)).to_series()

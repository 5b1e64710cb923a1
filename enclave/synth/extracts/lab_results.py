"""The lab_results extract: HbA1c, creatinine with eGFR (CKD-EPI 2021), and cholesterol."""

from __future__ import annotations

import numpy as np
import polars as pl

from enclave.synth.codes import _CHOL, _CREAT, _EGFR, _HBA1C
from enclave.synth.constants import _YEAR, MISSING_RATE, BoolArr, FloatArr, IntArr, _Curve
from enclave.synth.nhs import _corrupt_check_digit
from enclave.synth.population import _dates, _nhs_series, _nullable, _Population
from enclave.synth.sampling import _age, _expand, _interp, _uniform_day
from enclave.synth.tables import _tables

# Background tests per year by age in mid-follow-up (a curve as in enclave.synth.population).
_TESTING_BY_AGE: _Curve = ((18, 40, 65, 80), (0.05, 0.1, 0.3, 0.4))


def _creatinine_from_egfr(egfr: FloatArr, age: FloatArr, female: BoolArr) -> FloatArr:
    """Serum creatinine (umol/L) that gives ``egfr`` under CKD-EPI 2021 (inverse of ``_egfr``)."""
    kappa = np.where(female, 0.7, 0.9)
    alpha = np.where(female, -0.241, -0.302)
    a = egfr / (142 * 0.9938**age * np.where(female, 1.012, 1.0))
    ratio = np.where(a >= 1, a ** (1 / alpha), a ** (-1 / 1.2))
    return ratio * kappa * 88.4


def _egfr(creatinine: FloatArr, age: FloatArr, female: BoolArr) -> FloatArr:
    """CKD-EPI 2021 (race-free) eGFR in mL/min/1.73m2 from serum creatinine in umol/L."""
    kappa = np.where(female, 0.7, 0.9)
    alpha = np.where(female, -0.241, -0.302)
    ratio = creatinine / 88.4 / kappa
    return (
        142
        * np.minimum(ratio, 1) ** alpha
        * np.maximum(ratio, 1) ** -1.2
        * 0.9938**age
        * np.where(female, 1.012, 1.0)
    )


def _lab_results(rng: np.random.Generator, pop: _Population) -> pl.DataFrame:
    t = _tables()
    n = pop.n
    lo, hi = pop.adult_lo, pop.hi
    age_mid = _age((lo + hi) // 2, pop.dob)
    years = np.where(lo <= hi, (hi - lo + 1) / _YEAR, 0.0)
    dm_lo = np.maximum(pop.dm_onset, lo)
    dm_years = np.where(pop.diabetic & (dm_lo <= hi), (hi - dm_lo + 1) / _YEAR, 0.0)
    background = _interp(age_mid, _TESTING_BY_AGE)

    def tests(rate: FloatArr, span: FloatArr, start: IntArr) -> tuple[IntArr, IntArr]:
        person = _expand(rng.poisson(rate * span))
        return person, _uniform_day(rng, start[person], hi[person])

    # Testing rates per year: a background rising with age, more for hypertension or a statin, and
    # after a diabetes diagnosis 1.5 HbA1c, 1 renal panel and 0.6 cholesterol tests a year.
    p1, d1 = tests(background, years, lo)
    p2, d2 = tests(np.full(n, 1.5), dm_years, dm_lo)
    # Renal function: creatinine and eGFR on the same day.
    renal_rate = background + np.where(pop.hypertension, 0.5, 0.0)
    p3, d3 = tests(renal_rate, years, lo)
    p4, d4 = tests(np.full(n, 1.0), dm_years, dm_lo)
    # Cholesterol.
    chol_rate = background + np.where(pop.statin, 0.4, 0.0)
    p5, d5 = tests(chol_rate, years, lo)
    p6, d6 = tests(np.full(n, 0.6), dm_years, dm_lo)

    # HbA1c values: a personal baseline, diabetic after the diagnosis, pre-diabetic before it.
    normal = np.clip(rng.normal(36.0 + 0.06 * np.clip(pop.age_ref - 40, 0, None), 2.5), 28, 41)
    prediabetic = pop.diabetic | ((pop.age_ref >= 40) & (rng.random(n) < 0.06))
    baseline = np.where(prediabetic, rng.uniform(42, 47.5, n), normal)
    diabetic_level = np.minimum(44 + rng.gamma(2.2, 8.0, n), 130.0)
    hp, hd = np.concatenate([p1, p2]), np.concatenate([d1, d2])
    after = pop.diabetic[hp] & (hd >= pop.dm_onset[hp])
    hba1c = np.where(
        after,
        diabetic_level[hp] + rng.normal(0, 4.0, hp.size),
        baseline[hp] + rng.normal(0, 1.2, hp.size),
    )
    # Renal: a personal eGFR trajectory, the creatinine that gives it, measured with 6% noise.
    gfr_base = rng.normal(110.0, 12.0, n) * np.where(pop.diabetic, 0.88, 1.0)
    decline = np.where(rng.random(n) < 0.05, 1.6, 0.9)
    rp, rd = np.concatenate([p3, p4]), np.concatenate([d3, d4])
    r_age = pop.age_at(rp, rd)
    true_gfr = np.clip(gfr_base[rp] - decline[rp] * np.clip(r_age - 30, 0, None), 8.0, 140.0)
    creat = _creatinine_from_egfr(true_gfr, r_age, pop.female[rp]) * rng.lognormal(0, 0.06, rp.size)
    creat = np.clip(creat, t.lab_lower[_CREAT], t.lab_upper[_CREAT])
    egfr = _egfr(creat, r_age, pop.female[rp])
    # Cholesterol: a personal level rising with age, lower on a statin.
    chol_base = rng.normal(5.0, 0.9, n) + 0.01 * np.clip(pop.age_ref - 40, -20, 30)
    cp, cd = np.concatenate([p5, p6]), np.concatenate([d5, d6])
    chol = chol_base[cp] - np.where(pop.statin[cp], 1.2, 0.0) + rng.normal(0, 0.35, cp.size)

    person = np.concatenate([hp, rp, rp, cp])
    day = np.concatenate([hd, rd, rd, cd])
    test = np.concatenate(
        [
            np.full(hp.size, _HBA1C, dtype=np.int64),
            np.full(rp.size, _CREAT, dtype=np.int64),
            np.full(rp.size, _EGFR, dtype=np.int64),
            np.full(cp.size, _CHOL, dtype=np.int64),
        ]
    )
    value = np.concatenate([hba1c, creat, egfr, chol])
    value = np.round(np.clip(value, t.lab_lower[test], t.lab_upper[test]), 1)
    rows = np.lexsort((test, day, pop.order[person]))
    # One result per person, test and day (two draws can land on the same day).
    repeat = np.zeros(rows.size, dtype=np.bool_)
    s_person, s_day, s_test = person[rows], day[rows], test[rows]
    repeat[1:] = (s_person[1:] == s_person[:-1]) & (s_day[1:] == s_day[:-1]) & (s_test[1:] == s_test[:-1])
    rows = rows[~repeat]
    person, day, test, value = person[rows], day[rows], test[rows], value[rows]
    m = person.size
    nhs = _corrupt_check_digit(rng, pop.nhs[person])
    missing = rng.random(m) < MISSING_RATE
    return pl.DataFrame(
        {
            "nhs_number": _nhs_series(nhs),
            "test_code": t.lab_codes.gather(test),
            "result_value": _nullable(value, missing, pl.Float64),
            "unit": t.lab_units.gather(test),
            "sample_date": _dates(day),
        }
    )

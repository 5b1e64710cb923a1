"""The admissions extract: hospital stays with diagnosis, length of stay and cost."""

from __future__ import annotations

import numpy as np
import polars as pl

from enclave.synth.constants import _COVID_START, _REF, _YEAR, LATE_LINKAGE_RATE, MISSING_RATE, IntArr, _Curve
from enclave.synth.nhs import _corrupt_check_digit
from enclave.synth.population import (
    _Counters,
    _dates,
    _duplicated,
    _id_series,
    _nhs_series,
    _nullable,
    _Population,
)
from enclave.synth.sampling import _age, _expand, _interp, _uniform_day
from enclave.synth.tables import _tables

# Admissions per year by age in mid-follow-up (a curve as in enclave.synth.population), and the
# factor by deprivation quintile (1..5).
_ADMISSIONS_BY_AGE: _Curve = (
    (0, 1, 5, 15, 18, 30, 45, 60, 70, 80, 90, 101),
    (0.77, 0.21, 0.1, 0.1, 0.14, 0.15, 0.17, 0.26, 0.38, 0.6, 0.77, 0.77),
)
_DEP_ADMISSION = np.array([1.25, 1.12, 1.0, 0.92, 0.85])


def _admission_codes(rng: np.random.Generator, pop: _Population, person: IntArr, day: IntArr) -> IntArr:
    t = _tables()
    age = pop.age_at(person, day)
    female = pop.female[person]
    sex = np.where(female, 0, 1)
    pool = np.where(age < 1, 0, np.where(age < 18, 2, np.where(age < 60, 4, 6))) + sex
    u = rng.random(person.size)
    maternity = female & (age >= 16) & (age < 48) & (u < 0.3)
    pool = np.where(maternity, 8, pool)
    diabetes = pop.diabetic[person] & (day >= pop.dm_onset[person]) & (rng.random(person.size) < 0.25)
    pool = np.where(diabetes, 9, pool)
    u = rng.random(person.size)
    codes = np.zeros(person.size, dtype=np.int64)
    for k, cdf in enumerate(t.admission_cdfs):
        sel = pool == k
        codes[sel] = np.minimum(np.searchsorted(cdf, u[sel], side="right"), cdf.size - 1)
    return np.where(t.covid[codes] & (day < _COVID_START), t.pneumonia, codes)


def _admissions(
    rng: np.random.Generator, pop: _Population, cause: IntArr, counters: _Counters
) -> pl.DataFrame:
    t = _tables()
    exposure = (pop.hi - pop.lo + 1) / _YEAR
    age_mid = _age((pop.lo + pop.hi) // 2, pop.dob)
    rate = _interp(age_mid, _ADMISSIONS_BY_AGE)
    rate = (
        rate
        * np.where(pop.diabetic, 1.6, 1.0)
        * _DEP_ADMISSION[pop.quintile - 1]
        * np.where(pop.female & (age_mid >= 18) & (age_mid < 45), 1.35, 1.0)
        * pop.frailty
    )
    counts = rng.poisson(rate * exposure)
    person = _expand(counts)
    day = _uniform_day(rng, pop.lo[person], pop.hi[person])
    code = _admission_codes(rng, pop, person, day)

    # Terminal admissions ending on the day of death.
    dead = np.flatnonzero(pop.dead)
    terminal_code = t.terminal_code[cause[dead]]
    terminal = dead[(rng.random(dead.size) < 0.45) & (terminal_code >= 0)]
    t_code = t.terminal_code[cause[terminal]]
    t_los = rng.geometric(1 / 9, terminal.size).astype(np.int64)
    t_day = np.maximum(pop.death[terminal] - t_los, pop.lo[terminal])
    # Late linkage: an admission recorded after the date of death.
    late = dead[rng.random(dead.size) < LATE_LINKAGE_RATE]
    late_day = pop.death[late] + rng.integers(1, 31, late.size)
    late = late[late_day <= _REF]
    late_day = late_day[late_day <= _REF]
    late_code = _admission_codes(rng, pop, late, late_day)

    person = np.concatenate([person, terminal, late])
    day = np.concatenate([day, t_day, late_day])
    code = np.concatenate([code, t_code, late_code])
    m = person.size
    age = pop.age_at(person, day)
    median = t.median_los[code] * np.exp(0.012 * np.clip(age - 50, 0, None))
    los = np.ceil(median * rng.lognormal(0.0, 0.85, m)).astype(np.int64)
    los = np.where(rng.random(m) < t.day_case[code], 0, np.minimum(los, 365))
    n_terminal = terminal.size
    first_terminal = m - n_terminal - late.size
    los[first_terminal : first_terminal + n_terminal] = pop.death[terminal] - t_day
    day_factor = np.where(los == 0, 0.6, 1.0)
    cost = t.tariff[code] * rng.lognormal(-0.045, 0.3, m) * day_factor + los * 320 * rng.lognormal(
        0.0, 0.15, m
    )
    cost_int = np.rint(cost).astype(np.int64)

    rows = np.lexsort((day, pop.order[person]))
    person, day, code, los, cost_int = person[rows], day[rows], code[rows], los[rows], cost_int[rows]
    nhs = _corrupt_check_digit(rng, pop.nhs[person])
    missing_los = rng.random(m) < MISSING_RATE
    ids = np.arange(counters.admissions, counters.admissions + m, dtype=np.int64)
    counters.admissions += m
    take = _duplicated(rng, m)
    return pl.DataFrame(
        {
            "nhs_number": _nhs_series(nhs[take]),
            "admission_id": _id_series("A", ids[take], 9),
            "admission_date": _dates(day[take]),
            "icd10_code": t.icd_codes.gather(code[take]),
            "icd10_chapter": t.icd_chapters.gather(code[take]),
            "length_of_stay_days": _nullable(los[take], missing_los[take], pl.Int64),
            "cost_gbp": pl.Series(cost_int[take], dtype=pl.Int64),
        }
    )

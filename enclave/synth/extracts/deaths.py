"""The deaths extract, and the underlying cause of each death (also used for terminal admissions)."""

from __future__ import annotations

import numpy as np
import polars as pl

from enclave.synth.constants import _COVID_START, MISSING_RATE, IntArr
from enclave.synth.nhs import _corrupt_check_digit
from enclave.synth.population import _dates, _nhs_series, _Population
from enclave.synth.sampling import _age
from enclave.synth.tables import _tables


def _deaths_cause(rng: np.random.Generator, pop: _Population) -> IntArr:
    """The underlying cause (ICD index) for each person; -1 for the living."""
    t = _tables()
    cause = np.full(pop.n, -1, dtype=np.int64)
    dead = np.flatnonzero(pop.dead)
    age = _age(pop.death[dead], pop.dob[dead])
    female = pop.female[dead]
    pool = np.where(
        age < 1,
        0,
        np.where(age < 65, np.where(female, 1, 2), np.where(female, 3, 4)),
    )
    pool = np.where(pop.diabetic[dead] & (age >= 18) & (rng.random(dead.size) < 0.12), 5, pool)
    u = rng.random(dead.size)
    codes = np.zeros(dead.size, dtype=np.int64)
    for k, cdf in enumerate(t.death_cdfs):
        sel = pool == k
        codes[sel] = np.minimum(np.searchsorted(cdf, u[sel], side="right"), cdf.size - 1)
    codes = np.where(t.covid[codes] & (pop.death[dead] < _COVID_START), t.pneumonia, codes)
    cause[dead] = codes
    return cause


def _deaths(rng: np.random.Generator, pop: _Population, cause: IntArr) -> pl.DataFrame:
    t = _tables()
    dead = np.flatnonzero(pop.dead)
    dead = dead[np.argsort(pop.order[dead], kind="stable")]
    nhs = _corrupt_check_digit(rng, pop.nhs[dead])
    missing = rng.random(dead.size) < MISSING_RATE
    codes = t.icd_codes.gather(cause[dead])
    idx = np.flatnonzero(missing)
    return pl.DataFrame(
        {
            "nhs_number": _nhs_series(nhs),
            "date_of_death": _dates(pop.death[dead]),
            "underlying_cause_icd10": codes.scatter(idx, None) if idx.size else codes,
        }
    )

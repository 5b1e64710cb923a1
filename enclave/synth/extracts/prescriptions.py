"""The prescriptions extract: chronic regimens and acute courses, one record per prescribing review."""

from __future__ import annotations

import numpy as np
import polars as pl

from enclave.synth.constants import _YEAR, MISSING_RATE, BoolArr, FloatArr, IntArr, _Curve
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
from enclave.synth.sampling import _age, _draw, _expand, _interp, _uniform_day
from enclave.synth.tables import _tables

# Antibiotic courses per year by age in mid-follow-up (a curve as in enclave.synth.population).
_ANTIBIOTICS_BY_AGE: _Curve = ((0, 5, 18, 60, 80, 101), (0.3, 0.2, 0.18, 0.27, 0.4, 0.45))
_ISSUES_PER_YEAR = 1.5


def _prescriptions(rng: np.random.Generator, pop: _Population, counters: _Counters) -> pl.DataFrame:
    t = _tables()
    n = pop.n
    persons: list[IntArr] = []
    days: list[IntArr] = []
    classes: list[IntArr] = []
    drugs: list[IntArr] = []
    quantities: list[IntArr] = []
    lo, hi = pop.adult_lo, pop.hi

    def pick(k: int, size: int) -> tuple[IntArr, IntArr]:
        """A drug of class ``k`` and a quantity, ``size`` times."""
        drug = t.drug_offset[k] + _draw(rng, t.drug_cdfs[k], size)
        return drug, t.qty_values[k][_draw(rng, t.qty_cdfs[k], size)]

    def regimen(
        name: str,
        has: BoolArr,
        start: IntArr,
        rate: float | FloatArr = _ISSUES_PER_YEAR,
        *,
        acute: bool = False,
    ) -> None:
        """Records of class ``name`` for people with ``has``, uniform from ``start`` to the end of follow-up.

        A chronic regimen keeps one drug and quantity per person; acute courses draw them each time.
        """
        k = t.class_index[name]
        ok = has & (start <= hi)
        years = np.where(ok, (hi - start + 1) / _YEAR, 0.0)
        adherence = rng.gamma(4.0, 0.25, n)
        person = _expand(rng.poisson(rate * years * adherence))
        persons.append(person)
        days.append(_uniform_day(rng, start[person], hi[person]))
        classes.append(np.full(person.size, k, dtype=np.int64))
        if acute:
            drug, qty = pick(k, person.size)
        else:
            drug_of, qty_of = pick(k, n)
            drug, qty = drug_of[person], qty_of[person]
        drugs.append(drug)
        quantities.append(qty)

    def later(start: IntArr) -> IntArr:
        """A start date uniform between ``start`` and the end of follow-up (second-line drugs)."""
        return _uniform_day(rng, start, np.maximum(hi, start))

    def incident(start: IntArr) -> IntArr:
        """Prevalent at the start of follow-up (65%) or started at a uniform later date."""
        return np.where(rng.random(n) < 0.65, start, later(start))

    dm_start = np.maximum(pop.dm_onset, lo)
    dm = pop.diabetic
    regimen("biguanide", dm & (rng.random(n) < 0.88), dm_start)
    regimen("sulfonylurea", dm & (rng.random(n) < 0.25), later(dm_start))
    regimen("sglt2_inhibitor", dm & (rng.random(n) < 0.25), later(dm_start))
    regimen("dpp4_inhibitor", dm & (rng.random(n) < 0.15), later(dm_start))
    regimen("insulin", dm & (rng.random(n) < 0.12), later(dm_start))
    regimen("statin", pop.statin, np.where(dm, dm_start, incident(lo)))
    htn = pop.hypertension
    ccb = htn & (rng.random(n) < 0.5)
    ace = htn & (rng.random(n) < 0.45)
    arb = htn & ~ace & (rng.random(n) < 0.3)
    thiazide = htn & (rng.random(n) < 0.2)
    beta = (htn & (rng.random(n) < 0.12)) | (pop.af & (rng.random(n) < 0.6))
    ccb |= htn & ~(ace | arb | thiazide | beta)
    htn_start = incident(lo)
    for name, has in (
        ("calcium_channel_blocker", ccb),
        ("ace_inhibitor", ace),
        ("arb", arb),
        ("thiazide_diuretic", thiazide),
        ("beta_blocker", beta),
    ):
        regimen(name, has, htn_start)
    regimen("anticoagulant", pop.af & (rng.random(n) < 0.85), incident(lo))
    regimen("ssri", pop.depression, incident(lo))
    regimen("ppi", pop.reflux, incident(lo))
    regimen("thyroid_hormone", pop.hypothyroid, incident(lo))
    regimen("bisphosphonate", pop.osteoporosis, incident(lo))
    regimen("opioid", pop.chronic_pain, incident(lo))
    # Acute courses, at rates per year that depend on age and frailty.
    age_mid = _age((pop.lo + hi) // 2, pop.dob)
    frail = 0.6 + 0.4 * pop.frailty
    antibiotic = _interp(age_mid, _ANTIBIOTICS_BY_AGE) * frail
    everyone = np.ones(n, dtype=np.bool_)
    regimen("antibiotic", everyone, pop.lo, antibiotic, acute=True)
    regimen("nsaid", age_mid < 80, lo, 0.05 * frail, acute=True)
    regimen("opioid", everyone, lo, 0.04 * frail, acute=True)
    regimen("ppi", everyone, lo, 0.03 * frail, acute=True)

    person = np.concatenate(persons)
    day = np.concatenate(days)
    cls = np.concatenate(classes)
    drug = np.concatenate(drugs)
    qty = np.concatenate(quantities)
    m = person.size

    rows = np.lexsort((cls, day, pop.order[person]))
    person, day, cls, drug, qty = person[rows], day[rows], cls[rows], drug[rows], qty[rows]
    nhs = _corrupt_check_digit(rng, pop.nhs[person])
    missing = rng.random(m) < MISSING_RATE
    ids = np.arange(counters.prescriptions, counters.prescriptions + m, dtype=np.int64)
    counters.prescriptions += m
    take = _duplicated(rng, m)
    return pl.DataFrame(
        {
            "nhs_number": _nhs_series(nhs[take]),
            "prescription_id": _id_series("P", ids[take], 10),
            "prescribed_date": _dates(day[take]),
            "drug_class": t.class_names.gather(cls[take]),
            "drug_name": t.drug_names.gather(drug[take]),
            "quantity": _nullable(qty[take], missing[take], pl.Int64),
        }
    )

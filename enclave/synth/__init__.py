"""A tool that generates test data; it is not part of the enclave's core.

A deterministic synthetic population and its source extracts, with realistic faults.

``generate(persons, seed, out)`` writes six extracts (CSV or Parquet) that look like what a custodian
receives from a person registry, hospitals, GP prescribing, laboratories, death registration and the
national data opt-out service. The same ``(persons, seed)`` always gives byte-identical files. No real
person is described: every NHS number starts with 9, a range never issued to patients (numbers issued
in England and Wales start with 4, 6 or 7).

Model
=====

Everything is drawn per chunk of ``CHUNK_PERSONS`` people with NumPy's ``default_rng``, seeded from
``SeedSequence(seed).spawn(...)`` (one child for global parameters, one per chunk), so memory stays
bounded and the output does not depend on the machine. The reference date is ``REFERENCE_DATE``
(2025-12-31); events fall in ``EVENTS_START``..``REFERENCE_DATE`` (2019-01-01..2025-12-31), within the
part of that window the person was alive.

* **Persons.** Sex is 50.7% female. Age at the reference date follows a UK-like pyramid in five-year
  bands (0-100, women more numerous above 80). Region (9 English regions and Wales) follows population
  shares; the postcode's outward code is drawn from the postcode areas of that region only, so the
  outward code always determines the region. The deprivation quintile (1 = most deprived) depends on
  the region (the North East and North West more deprived, the South East least). Given names depend
  on sex and birth cohort; family names follow a Zipf-like frequency.
* **Frailty.** Each person has a latent frailty ``g ~ Gamma(0.45, 1/0.45)`` (mean 1, heavy tail) that
  multiplies admission rates, acute prescribing and, more gently, mortality.
* **Chronic conditions** (probabilities rise with age): type 2 diabetes (about 1% at 30, 7% at 50,
  15% at 70; times 1.45 in quintile 1 down to 0.7 in quintile 5; about 7% of adults overall; 70% of
  cases diagnosed before 2019, the rest at a uniform date in the window), hypertension, atrial
  fibrillation, depression, hypothyroidism, reflux, osteoporosis, chronic pain, and statin use
  (80% of diabetics). Each condition implies regular prescriptions of its drug classes.
* **Deaths.** Gompertz hazard ``exp(-10.6 + 0.098 * age)`` per year, times 1.25 for men (0.8 for
  women), 1.7 for diabetics, 1.35 (quintile 1) down to 0.8 (quintile 5), and ``0.6 + 0.4 g``; plus
  0.35% infant mortality. The death time is drawn in closed form from the inverse cumulative hazard.
  The underlying cause depends on age (infant, 1-64, 65+), sex and diabetes; COVID-19 (U07.x) is
  only used from March 2020. 45% of deaths (other than from poisoning or self-harm) follow a
  terminal admission that ends on the day of death. About 0.8% of people die each year.
* **Admissions.** A Poisson count with rate (per year alive in the window) rising from 0.1 in
  childhood to 0.77 at 90 (0.77 in the first year of life), times 1.6 for diabetics, 1.25 (quintile
  1) down to 0.85 (quintile 5), 1.35 for women of child-bearing age, and frailty: a gamma-Poisson
  (negative binomial) mixture, so most people have none, many have 1-3 and a few more than 20;
  about 1.5 per person overall. The diagnosis is
  drawn from age- and sex-specific case mixes (infant, child, adult, 60+), with a maternity mix for
  women of 16-47 and a type 2 diabetes mix (E11.x) for diagnosed diabetics. Length of stay is 0 for
  day cases (probability by chapter) and otherwise log-normal around a chapter median that grows
  with age (capped at 365 days); the cost is a tariff plus a per-day cost, so it follows the stay.
* **Prescriptions.** Each chronic drug appears about 1.5 times a year from its start date (the
  extract holds one record per prescribing review rather than every repeat issue), times a
  person-level adherence ``Gamma(4, 1/4)``; 65% of chronic drugs were started before the window, the
  rest at a uniform date in it. Acute courses (antibiotics, NSAIDs, opioids, PPIs) come at
  age-dependent rates times ``0.6 + 0.4 g``. Diabetics receive metformin (biguanide, 88%) from the
  diagnosis and second-line classes (sulfonylurea, SGLT2 and DPP-4 inhibitors, insulin) from a
  later date. Quantities are tablets (28/56/84 for chronic drugs; courses for antibiotics; pens
  for insulin). About 9 records per person.
* **Laboratory results.** HbA1c, cholesterol and renal function (creatinine with the eGFR computed
  from it by the race-free CKD-EPI 2021 equation, both on the same date) for adults, more often for
  diabetics, hypertensives and older people. HbA1c is about 30-41 mmol/mol without diabetes, 42-47
  before a diagnosis (and for 6% of people over 40), and about 48-90 after it. The underlying eGFR
  falls by about 0.9 a year after 30 (lower for diabetics, with some faster decliners); cholesterol
  is lower for statin users. Values are rounded to one decimal place and kept within the lab_tests
  code list's ``lower``..``upper``. About 6.5 results per person.
* **Opt-outs.** 2.5% of people, both registered and unregistered.

Faults (rates are per row unless said otherwise)
================================================

===================================  ==========================================================
Invalid NHS number check digit       0.5% of rows of admissions, prescriptions, lab_results
                                     and deaths (the last digit mistyped)
Exact duplicate rows                 0.3% of admissions and prescriptions rows (next to the
                                     original, same identifier)
Missing values (empty in CSV)        1% of demographics.postcode, admissions.length_of_stay_days,
                                     prescriptions.quantity, lab_results.result_value,
                                     deaths.underlying_cause_icd10
People absent from demographics      3% of the people simulated are not registered: they appear
                                     in the event sources, deaths and opt-outs only
People with no events                natural: most children and many adults have none
Admission after the date of death    1.5% of deceased people have an extra admission 1-30 days
                                     after their recorded death (late linkage)
===================================  ==========================================================
"""

from __future__ import annotations

from enclave.synth.codes import CODELISTS_DIR, icd10_chapter
from enclave.synth.constants import EVENTS_START, REFERENCE_DATE
from enclave.synth.nhs import is_valid_nhs_number, nhs_check_digit
from enclave.synth.writer import CHUNK_PERSONS, FILE_NAMES, MAX_PERSONS, SynthSummary, generate

__all__ = [
    "CHUNK_PERSONS",
    "CODELISTS_DIR",
    "EVENTS_START",
    "FILE_NAMES",
    "MAX_PERSONS",
    "REFERENCE_DATE",
    "SynthSummary",
    "generate",
    "icd10_chapter",
    "is_valid_nhs_number",
    "nhs_check_digit",
]

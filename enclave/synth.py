"""A deterministic synthetic population and its source extracts, with realistic faults.

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

import math
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Literal, NamedTuple

import numpy as np
import numpy.typing as npt
import polars as pl

from enclave.domain.errors import InvalidInput

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

CODELISTS_DIR = Path(__file__).parent / "codelists"

REFERENCE_DATE = date(2025, 12, 31)
EVENTS_START = date(2019, 1, 1)
MAX_PERSONS = 50_000_000
CHUNK_PERSONS = 250_000
FILE_NAMES = ("demographics", "admissions", "prescriptions", "lab_results", "deaths", "opt_outs")

# Fault rates (see the module docstring).
INVALID_NHS_RATE = 0.005
DUPLICATE_RATE = 0.003
MISSING_RATE = 0.01
UNREGISTERED_RATE = 0.03
OPT_OUT_RATE = 0.025
LATE_LINKAGE_RATE = 0.015

IntArr = npt.NDArray[np.int64]
FloatArr = npt.NDArray[np.float64]
BoolArr = npt.NDArray[np.bool_]
_Curve = tuple[tuple[float, ...], tuple[float, ...]]

_EPOCH = date(1970, 1, 1)
_REF = (REFERENCE_DATE - _EPOCH).days
_START = (EVENTS_START - _EPOCH).days
_COVID_START = (date(2020, 3, 1) - _EPOCH).days
_YEAR = 365.25


@dataclass(frozen=True)
class SynthSummary:
    """What ``generate`` wrote: the number of registered persons and the rows per file."""

    persons: int
    files: dict[str, int]
    seconds: float


# --- NHS numbers ---------------------------------------------------------------------------------

_NHS_WEIGHTS = (10, 9, 8, 7, 6, 5, 4, 3, 2)


def nhs_check_digit(first9: str) -> int | None:
    """The check digit of an NHS number's first nine digits, or None if no number can be issued.

    Each digit is multiplied by its weight (10 for the first down to 2 for the ninth); the check digit
    is 11 minus the remainder of the sum divided by 11, where 11 becomes 0 and 10 means the nine
    digits are never issued.
    """
    if len(first9) != 9 or not (first9.isascii() and first9.isdigit()):
        raise InvalidInput(f"an NHS number starts with nine digits; got {len(first9)} characters")
    total = sum(int(d) * w for d, w in zip(first9, _NHS_WEIGHTS, strict=True))
    check = 11 - total % 11
    if check == 11:
        return 0
    return None if check == 10 else check


def is_valid_nhs_number(s: str) -> bool:
    """True if ``s`` is exactly ten digits whose last is the check digit of the first nine."""
    if not isinstance(s, str) or len(s) != 10 or not (s.isascii() and s.isdigit()):
        return False
    return nhs_check_digit(s[:9]) == int(s[9])


def _check_digits(body: IntArr) -> IntArr:
    """Vectorised check digits of nine-digit bodies (10 where the body cannot be issued)."""
    total = np.zeros_like(body)
    rest = body.copy()
    for weight in range(2, 11):  # last digit has weight 2
        total += (rest % 10) * weight
        rest //= 10
    check = 11 - total % 11
    return np.where(check == 11, 0, check)


# Person i gets slot (a * i + b) mod _NHS_SLOTS; slot -> (stem, k): the number is 9, then the
# seven-digit stem, then the k-th of the (at least nine) ninth digits that give an issuable number.
_NHS_SLOTS = 9 * 10**7


def _nhs_numbers(index: IntArr, a: int, b: int) -> IntArr:
    slot = (index * a + b) % _NHS_SLOTS
    stem, k = slot // 9, slot % 9
    first8 = 90_000_000 + stem
    total8 = np.zeros_like(first8)
    rest = first8.copy()
    for weight in range(3, 11):
        total8 += (rest % 10) * weight
        rest //= 10
    bad = ((1 - total8) * 6) % 11  # the ninth digit d with (total8 + 2 d) % 11 == 1; 10: none
    ninth = np.where(k >= bad, k + 1, k)
    body = first8 * 10 + ninth
    return body * 10 + _check_digits(body)


def _nhs_permutation(rng: np.random.Generator) -> tuple[int, int]:
    a = int(rng.integers(_NHS_SLOTS // 4, 3 * _NHS_SLOTS // 4))
    while math.gcd(a, _NHS_SLOTS) != 1:
        a += 1
    return a, int(rng.integers(0, _NHS_SLOTS))


def _corrupt_check_digit(rng: np.random.Generator, nhs: IntArr) -> IntArr:
    """A copy of ``nhs`` with INVALID_NHS_RATE of the numbers given a wrong last digit."""
    bad = rng.random(nhs.size) < INVALID_NHS_RATE
    shift = rng.integers(1, 10, nhs.size)
    last = nhs % 10
    return np.where(bad, nhs - last + (last + shift) % 10, nhs)


# --- code lists ----------------------------------------------------------------------------------

_REGIONS: tuple[tuple[str, str, float, tuple[float, ...], str], ...] = (
    # code, name, population (millions), deprivation quintile shares 1..5, postcode areas
    (
        "E12000001",
        "North East",
        2.7,
        (0.30, 0.24, 0.18, 0.15, 0.13),
        "NE1-66 SR1-9 DH1-9 DL1-17 TS1-29",
    ),
    (
        "E12000002",
        "North West",
        7.4,
        (0.30, 0.20, 0.17, 0.16, 0.17),
        "M1-50 L1-40 WA1-16 WN1-8 BL1-9 OL1-16 SK1-17 PR1-9 BB1-12 LA1-23 CA1-28 CH1-66 FY1-8 CW1-12",
    ),
    (
        "E12000003",
        "Yorkshire and The Humber",
        5.5,
        (0.27, 0.21, 0.18, 0.17, 0.17),
        "LS1-29 BD1-24 HD1-9 HX1-7 WF1-17 S1-75 DN1-41 HU1-20 YO1-62 HG1-5",
    ),
    (
        "E12000004",
        "East Midlands",
        4.9,
        (0.18, 0.20, 0.21, 0.21, 0.20),
        "NG1-34 DE1-75 LE1-67 LN1-13 NN1-18",
    ),
    (
        "E12000005",
        "West Midlands",
        6.0,
        (0.27, 0.20, 0.18, 0.17, 0.18),
        "B1-99 CV1-47 WV1-16 WS1-15 DY1-14 ST1-21 TF1-13 WR1-15 HR1-9",
    ),
    (
        "E12000006",
        "East of England",
        6.4,
        (0.11, 0.17, 0.22, 0.24, 0.26),
        "CB1-25 CO1-16 IP1-33 NR1-35 PE1-38 CM0-24 SS0-17 LU1-7 AL1-10 SG1-19 EN1-11",
    ),
    (
        "E12000007",
        "London",
        8.8,
        (0.22, 0.28, 0.24, 0.15, 0.11),
        "E1-18 EC1-4 N1-22 NW1-11 SE1-28 SW1-20 W1-14 WC1-2 CR0-9 BR1-8 HA0-9 UB1-11 IG1-11 RM1-20"
        " TW1-20 KT1-24 SM1-7 DA1-18",
    ),
    (
        "E12000008",
        "South East",
        9.3,
        (0.09, 0.14, 0.21, 0.26, 0.30),
        "OX1-49 RG1-45 SL0-9 GU1-52 RH1-20 BN1-45 TN1-40 CT1-21 ME1-20 PO1-41 SO14-53 MK1-19 HP1-27",
    ),
    (
        "E12000009",
        "South West",
        5.7,
        (0.12, 0.19, 0.25, 0.24, 0.20),
        "BS1-49 BA1-22 EX1-39 PL1-35 TR1-27 TQ1-14 TA1-24 DT1-11 BH1-25 SP1-11 GL1-56 SN1-26",
    ),
    (
        "W92000004",
        "Wales",
        3.1,
        (0.22, 0.22, 0.20, 0.19, 0.17),
        "CF3-83 SA1-73 NP4-44 LL11-78 LD1-8 SY15-25",
    ),
)

_CHAPTERS: tuple[tuple[str, str, str, str], ...] = (
    ("I", "A00", "B99", "Certain infectious and parasitic diseases"),
    ("II", "C00", "D48", "Neoplasms"),
    (
        "III",
        "D50",
        "D89",
        "Diseases of the blood and blood-forming organs and certain disorders involving the immune mechanism",
    ),
    ("IV", "E00", "E90", "Endocrine, nutritional and metabolic diseases"),
    ("V", "F00", "F99", "Mental and behavioural disorders"),
    ("VI", "G00", "G99", "Diseases of the nervous system"),
    ("VII", "H00", "H59", "Diseases of the eye and adnexa"),
    ("VIII", "H60", "H95", "Diseases of the ear and mastoid process"),
    ("IX", "I00", "I99", "Diseases of the circulatory system"),
    ("X", "J00", "J99", "Diseases of the respiratory system"),
    ("XI", "K00", "K93", "Diseases of the digestive system"),
    ("XII", "L00", "L99", "Diseases of the skin and subcutaneous tissue"),
    ("XIII", "M00", "M99", "Diseases of the musculoskeletal system and connective tissue"),
    ("XIV", "N00", "N99", "Diseases of the genitourinary system"),
    ("XV", "O00", "O99", "Pregnancy, childbirth and the puerperium"),
    ("XVI", "P00", "P96", "Certain conditions originating in the perinatal period"),
    ("XVII", "Q00", "Q99", "Congenital malformations, deformations and chromosomal abnormalities"),
    (
        "XVIII",
        "R00",
        "R99",
        "Symptoms, signs and abnormal clinical and laboratory findings, not elsewhere classified",
    ),
    ("XIX", "S00", "T98", "Injury, poisoning and certain other consequences of external causes"),
    ("XX", "V01", "Y98", "External causes of morbidity and mortality"),
    ("XXI", "Z00", "Z99", "Factors influencing health status and contact with health services"),
    ("XXII", "U00", "U99", "Codes for special purposes"),
)


def icd10_chapter(code: str) -> str | None:
    """The roman-numeral chapter (I..XXII) of an ICD-10 code such as "E11.9", or None."""
    head = code.strip().upper()[:3]
    if len(head) != 3 or not head[0].isalpha() or not head[1:].isdigit():
        return None
    for chapter, first, last, _ in _CHAPTERS:
        if first <= head <= last:
            return chapter
    return None


class _Icd(NamedTuple):
    """An ICD-10 code with its relative weights in each case mix (0: never drawn there).

    Admissions: ``infant`` (under 1), ``child`` (1-17), ``young`` (18-59; for chapter XV codes the
    maternity mix), ``old`` (60+; for E11.x the diabetes mix). Underlying cause of death:
    ``death_infant``, ``death_young`` (1-64), ``death_old`` (65+; for E11.x the diabetic deaths).
    """

    code: str
    description: str
    infant: float = 0.0
    child: float = 0.0
    young: float = 0.0
    old: float = 0.0
    death_infant: float = 0.0
    death_young: float = 0.0
    death_old: float = 0.0
    sex: str = ""


_ICD: tuple[_Icd, ...] = (
    # I
    _Icd("A09.9", "Gastroenteritis and colitis of unspecified origin", 15, 20, 10, 8),
    _Icd("A41.9", "Sepsis, unspecified", 3, 2, 4, 14, death_young=5, death_old=18),
    _Icd("A04.7", "Enterocolitis due to Clostridium difficile", young=0.5, old=3, death_old=2),
    _Icd("A08.4", "Viral intestinal infection, unspecified", 20, 15, 4, 2),
    _Icd("B34.9", "Viral infection, unspecified", 25, 20, 5, 2),
    # II
    _Icd("C18.9", "Malignant neoplasm of colon, unspecified", young=3, old=10, death_young=8, death_old=22),
    _Icd(
        "C34.9",
        "Malignant neoplasm of bronchus or lung, unspecified",
        young=2,
        old=9,
        death_young=12,
        death_old=45,
    ),
    _Icd(
        "C50.9",
        "Malignant neoplasm of breast, unspecified",
        young=8,
        old=7,
        death_young=12,
        death_old=14,
        sex="F",
    ),
    _Icd("C25.9", "Malignant neoplasm of pancreas, unspecified", young=1, old=3, death_young=5, death_old=14),
    _Icd("C16.9", "Malignant neoplasm of stomach, unspecified", young=1, old=2, death_young=2, death_old=7),
    _Icd("C67.9", "Malignant neoplasm of bladder, unspecified", young=1, old=5, death_young=1, death_old=8),
    _Icd("C43.9", "Malignant melanoma of skin, unspecified", young=2, old=2, death_young=2, death_old=4),
    _Icd("C90.0", "Multiple myeloma", young=1, old=3, death_young=1, death_old=5),
    _Icd("C92.0", "Acute myeloblastic leukaemia", child=1, young=1, old=2, death_young=3, death_old=4),
    _Icd("D12.6", "Benign neoplasm of colon, unspecified", young=4, old=8),
    _Icd("D25.9", "Leiomyoma of uterus, unspecified", young=5, old=1, sex="F"),
    # III
    _Icd("D50.9", "Iron deficiency anaemia, unspecified", child=1, young=3, old=6),
    _Icd("D64.9", "Anaemia, unspecified", young=2, old=8),
    _Icd("D69.6", "Thrombocytopenia, unspecified", young=1, old=2),
    # IV
    _Icd("E11.0", "Type 2 diabetes mellitus with coma", old=1),
    _Icd("E11.1", "Type 2 diabetes mellitus with ketoacidosis", old=4),
    _Icd("E11.2", "Type 2 diabetes mellitus with renal complications", old=8, death_old=2),
    _Icd("E11.3", "Type 2 diabetes mellitus with ophthalmic complications", old=8),
    _Icd("E11.4", "Type 2 diabetes mellitus with neurological complications", old=6),
    _Icd("E11.5", "Type 2 diabetes mellitus with peripheral circulatory complications", old=10, death_old=2),
    _Icd("E11.6", "Type 2 diabetes mellitus with other specified complications", old=12),
    _Icd("E11.7", "Type 2 diabetes mellitus with multiple complications", old=6, death_old=2),
    _Icd("E11.8", "Type 2 diabetes mellitus with unspecified complications", old=4),
    _Icd("E11.9", "Type 2 diabetes mellitus without complications", old=30, death_old=10),
    _Icd(
        "E10.9",
        "Type 1 diabetes mellitus without complications",
        child=3,
        young=3,
        old=1,
        death_young=1,
        death_old=0.5,
    ),
    _Icd("E87.1", "Hypo-osmolality and hyponatraemia", young=1, old=6),
    _Icd("E87.6", "Hypokalaemia", young=1, old=3),
    _Icd("E03.9", "Hypothyroidism, unspecified", young=1, old=2),
    _Icd("E66.9", "Obesity, unspecified", young=2, old=1),
    # V
    _Icd(
        "F10.2",
        "Mental and behavioural disorders due to use of alcohol: dependence syndrome",
        young=6,
        old=2,
        death_young=5,
        death_old=1,
    ),
    _Icd("F32.9", "Depressive episode, unspecified", child=2, young=5, old=2),
    _Icd("F20.9", "Schizophrenia, unspecified", young=3, old=1),
    _Icd("F31.9", "Bipolar affective disorder, unspecified", young=2, old=1),
    _Icd("F41.1", "Generalized anxiety disorder", child=1, young=2, old=1),
    _Icd("F01.9", "Vascular dementia, unspecified", old=4, death_old=20),
    _Icd("F05.9", "Delirium, unspecified", old=6),
    # VI
    _Icd("G40.9", "Epilepsy, unspecified", 2, 6, 5, 3, death_young=3, death_old=1),
    _Icd("G45.9", "Transient cerebral ischaemic attack, unspecified", young=1, old=6),
    _Icd("G30.9", "Alzheimer disease, unspecified", old=3, death_old=25),
    _Icd("G43.9", "Migraine, unspecified", child=2, young=4, old=0.5),
    _Icd("G56.0", "Carpal tunnel syndrome", young=3, old=3),
    # VII
    _Icd("H25.9", "Senile cataract, unspecified", old=10),
    _Icd("H26.9", "Cataract, unspecified", young=1, old=3),
    _Icd("H33.0", "Retinal detachment with retinal break", young=1, old=2),
    _Icd("H40.9", "Glaucoma, unspecified", young=0.5, old=2),
    # VIII
    _Icd("H66.9", "Otitis media, unspecified", 6, 8, 1, 0.5),
    _Icd("H81.1", "Benign paroxysmal vertigo", young=1, old=2),
    # IX
    _Icd("I21.4", "Acute subendocardial myocardial infarction", young=3, old=10, death_young=3, death_old=8),
    _Icd("I21.9", "Acute myocardial infarction, unspecified", young=2, old=6, death_young=6, death_old=15),
    _Icd("I20.9", "Angina pectoris, unspecified", young=3, old=8),
    _Icd("I25.1", "Atherosclerotic heart disease", young=3, old=10, death_young=12, death_old=40),
    _Icd("I48.9", "Atrial fibrillation and atrial flutter, unspecified", young=2, old=15, death_old=3),
    _Icd("I50.0", "Congestive heart failure", young=0.5, old=10, death_old=8),
    _Icd("I50.9", "Heart failure, unspecified", young=0.5, old=8, death_old=8),
    _Icd("I63.9", "Cerebral infarction, unspecified", young=1, old=10, death_young=3, death_old=20),
    _Icd("I61.9", "Intracerebral haemorrhage, unspecified", young=0.5, old=2, death_young=3, death_old=6),
    _Icd(
        "I26.9",
        "Pulmonary embolism without mention of acute cor pulmonale",
        young=2,
        old=4,
        death_young=2,
        death_old=3,
    ),
    _Icd(
        "I80.2", "Phlebitis and thrombophlebitis of other deep vessels of lower extremities", young=2, old=3
    ),
    _Icd("I70.2", "Atherosclerosis of arteries of extremities", young=0.5, old=3, death_old=1),
    _Icd("I83.9", "Varicose veins of lower extremities without ulcer or inflammation", young=2, old=1),
    _Icd(
        "I11.9",
        "Hypertensive heart disease without (congestive) heart failure",
        young=0.5,
        old=2,
        death_old=4,
    ),
    # X
    _Icd("J18.9", "Pneumonia, unspecified", 4, 4, 6, 30, death_young=5, death_old=30),
    _Icd("J18.1", "Lobar pneumonia, unspecified", young=2, old=6, death_young=1, death_old=5),
    _Icd(
        "J44.1",
        "Chronic obstructive pulmonary disease with acute exacerbation, unspecified",
        young=1,
        old=15,
        death_young=2,
        death_old=20,
    ),
    _Icd(
        "J44.0",
        "Chronic obstructive pulmonary disease with acute lower respiratory infection",
        young=1,
        old=8,
        death_old=10,
    ),
    _Icd("J45.9", "Asthma, unspecified", 0, 15, 6, 2, death_young=1, death_old=1),
    _Icd("J20.9", "Acute bronchitis, unspecified", 5, 5, 3, 3),
    _Icd("J06.9", "Acute upper respiratory infection, unspecified", 15, 15, 4, 2),
    _Icd("J21.9", "Acute bronchiolitis, unspecified", 40, 2),
    _Icd("J35.0", "Chronic tonsillitis", child=8, young=3),
    _Icd("J69.0", "Pneumonitis due to food and vomit", old=4, death_old=6),
    _Icd("J96.0", "Acute respiratory failure", young=0.5, old=3, death_old=3),
    # XI
    _Icd("K35.8", "Acute appendicitis, other and unspecified", child=15, young=10, old=2),
    _Icd("K80.2", "Calculus of gallbladder without cholecystitis", young=8, old=6),
    _Icd(
        "K57.3",
        "Diverticular disease of large intestine without perforation or abscess",
        young=2,
        old=8,
        death_old=2,
    ),
    _Icd("K21.9", "Gastro-oesophageal reflux disease without oesophagitis", 3, 2, 3, 3),
    _Icd("K92.2", "Gastrointestinal haemorrhage, unspecified", young=1, old=5, death_old=2),
    _Icd("K29.7", "Gastritis, unspecified", young=3, old=2),
    _Icd("K40.9", "Unilateral or unspecified inguinal hernia, without obstruction or gangrene", 2, 2, 5, 6),
    _Icd("K70.3", "Alcoholic cirrhosis of liver", young=2, old=1, death_young=8, death_old=3),
    _Icd("K85.9", "Acute pancreatitis, unspecified", young=3, old=2, death_young=1, death_old=1),
    _Icd("K50.9", "Crohn disease, unspecified", child=1, young=3, old=0.5),
    _Icd("K51.9", "Ulcerative colitis, unspecified", young=3, old=1),
    # XII
    _Icd("L03.1", "Cellulitis of other parts of limb", child=2, young=5, old=8),
    _Icd("L02.4", "Cutaneous abscess, furuncle and carbuncle of limb", child=3, young=4, old=1),
    _Icd("L89.9", "Decubitus ulcer and pressure area, unspecified", old=3),
    # XIII
    _Icd("M17.1", "Other primary gonarthrosis", young=2, old=12),
    _Icd("M16.1", "Other primary coxarthrosis", young=1, old=9),
    _Icd("M54.5", "Low back pain", young=6, old=4),
    _Icd("M06.9", "Rheumatoid arthritis, unspecified", young=1, old=2),
    _Icd("M81.9", "Osteoporosis, unspecified", old=2),
    _Icd("M10.9", "Gout, unspecified", young=1, old=2),
    # XIV
    _Icd("N39.0", "Urinary tract infection, site not specified", 5, 3, 6, 20, death_old=2),
    _Icd("N17.9", "Acute renal failure, unspecified", young=1, old=10, death_old=5),
    _Icd("N18.3", "Chronic kidney disease, stage 3", old=3, death_old=2),
    _Icd("N18.5", "Chronic kidney disease, stage 5", young=0.5, old=1, death_young=1, death_old=2),
    _Icd("N20.0", "Calculus of kidney", young=6, old=3),
    _Icd("N81.2", "Incomplete uterovaginal prolapse", young=1, old=3, sex="F"),
    _Icd("N92.0", "Excessive and frequent menstruation with regular cycle", young=5, sex="F"),
    _Icd(
        "N45.9",
        "Orchitis, epididymitis and epididymo-orchitis without abscess",
        child=1,
        young=2,
        old=1,
        sex="M",
    ),
    # XV (the maternity case mix)
    _Icd("O80.0", "Spontaneous vertex delivery", young=40, sex="F"),
    _Icd("O82.0", "Delivery by elective caesarean section", young=12, sex="F"),
    _Icd("O82.1", "Delivery by emergency caesarean section", young=12, sex="F"),
    _Icd("O70.0", "First degree perineal laceration during delivery", young=8, sex="F"),
    _Icd("O03.9", "Spontaneous abortion, complete or unspecified, without complication", young=8, sex="F"),
    _Icd("O21.0", "Mild hyperemesis gravidarum", young=5, sex="F"),
    _Icd("O47.9", "False labour, unspecified", young=6, sex="F"),
    _Icd("O24.4", "Diabetes mellitus arising in pregnancy", young=3, sex="F"),
    # XVI
    _Icd("P07.3", "Other preterm infants", infant=15, death_infant=25),
    _Icd("P59.9", "Neonatal jaundice, unspecified", infant=25),
    _Icd("P22.1", "Transient tachypnoea of newborn", infant=8, death_infant=5),
    _Icd("P39.9", "Infection specific to the perinatal period, unspecified", infant=8, death_infant=10),
    # XVII
    _Icd("Q21.1", "Atrial septal defect", infant=2, child=0.5, death_infant=10),
    _Icd("Q53.9", "Undescended testicle, unspecified", infant=3, child=2, sex="M"),
    _Icd("Q90.9", "Down syndrome, unspecified", infant=1, death_infant=3),
    # XVIII
    _Icd("R07.4", "Chest pain, unspecified", child=1, young=15, old=12),
    _Icd("R10.4", "Other and unspecified abdominal pain", 2, 15, 15, 6),
    _Icd("R06.0", "Dyspnoea", young=2, old=5),
    _Icd("R50.9", "Fever, unspecified", 15, 10, 3, 2),
    _Icd("R41.0", "Disorientation, unspecified", old=4),
    _Icd("R29.6", "Tendency to fall, not elsewhere classified", old=6),
    # XIX
    _Icd("S72.0", "Fracture of neck of femur", young=0.5, old=10),
    _Icd("S72.1", "Pertrochanteric fracture", young=0.3, old=6),
    _Icd("S06.0", "Concussion", 1, 10, 5, 3),
    _Icd("S52.5", "Fracture of lower end of radius", child=8, young=4, old=4),
    _Icd("S42.2", "Fracture of upper end of humerus", child=3, young=1, old=3),
    _Icd("S82.6", "Fracture of lateral malleolus", child=1, young=3, old=1),
    _Icd("S01.8", "Open wound of other parts of head", 1, 8, 3, 2),
    _Icd("T81.4", "Infection following a procedure, not elsewhere classified", young=2, old=3),
    _Icd("T39.1", "Poisoning by 4-aminophenol derivatives", child=3, young=4, old=0.5),
    # XX (underlying causes of death only)
    _Icd("W19.0", "Unspecified fall, home", death_young=1, death_old=8),
    _Icd("W10.0", "Fall on and from stairs and steps, home", death_young=1, death_old=2),
    _Icd(
        "V43.5",
        "Car occupant injured in collision with car, pick-up truck or van, driver, traffic accident",
        death_young=6,
        death_old=1,
    ),
    _Icd("X59.9", "Exposure to unspecified factor, unspecified place", death_young=1, death_old=3),
    _Icd(
        "X42.9",
        "Accidental poisoning by and exposure to narcotics and psychodysleptics, unspecified place",
        death_young=6,
        death_old=0.5,
    ),
    _Icd(
        "X70.9",
        "Intentional self-harm by hanging, strangulation and suffocation, unspecified place",
        death_young=6,
        death_old=1,
    ),
    # XXI
    _Icd("Z51.1", "Chemotherapy session for neoplasm", young=6, old=10),
    _Icd("Z51.5", "Palliative care", old=3),
    _Icd("Z38.0", "Singleton, born in hospital", infant=60),
    _Icd("Z03.9", "Observation for suspected disease or condition, unspecified", 5, 6, 5, 2),
    _Icd("Z49.1", "Extracorporeal dialysis", young=1, old=3),
    # XXII
    _Icd("U07.1", "COVID-19, virus identified", child=0.5, young=3, old=10, death_young=2, death_old=12),
    _Icd("U07.2", "COVID-19, virus not identified", young=0.5, old=2, death_old=2),
)

# Day-case probability, median length of stay (days) and base tariff (GBP) by chapter, with overrides.
_CARE_BY_CHAPTER: dict[str, tuple[float, float, float]] = {
    "I": (0.25, 3, 1800),
    "II": (0.45, 5, 3500),
    "III": (0.5, 2, 1200),
    "IV": (0.3, 3, 1600),
    "V": (0.1, 18, 2500),
    "VI": (0.4, 3, 2000),
    "VII": (0.9, 1, 1100),
    "VIII": (0.6, 1, 900),
    "IX": (0.2, 5, 3200),
    "X": (0.15, 5, 2600),
    "XI": (0.35, 3, 2400),
    "XII": (0.3, 4, 1500),
    "XIII": (0.3, 4, 5200),
    "XIV": (0.3, 3, 1700),
    "XV": (0.2, 2, 2200),
    "XVI": (0.1, 4, 2500),
    "XVII": (0.3, 4, 4000),
    "XVIII": (0.55, 1, 700),
    "XIX": (0.25, 5, 3000),
    "XX": (0.3, 3, 2000),
    "XXI": (0.8, 1, 600),
    "XXII": (0.1, 7, 3500),
}
_CARE_BY_CODE: dict[str, tuple[float, float, float]] = {
    "S72.0": (0.0, 14, 6500),
    "S72.1": (0.0, 14, 6500),
    "I63.9": (0.05, 12, 4500),
    "Z51.1": (0.97, 1, 450),
    "Z49.1": (0.98, 1, 300),
    "Z38.0": (0.3, 2, 500),
    "H25.9": (0.95, 1, 1000),
    "F01.9": (0.05, 20, 3000),
    "F05.9": (0.05, 12, 3000),
    "G30.9": (0.05, 20, 3000),
    "M17.1": (0.05, 4, 6500),
    "M16.1": (0.05, 4, 6500),
    "O82.0": (0.0, 3, 3800),
    "O82.1": (0.0, 3, 4200),
}

# A terminal admission's diagnosis when the underlying cause is an external cause (chapter XX).
_TERMINAL_FOR_EXTERNAL = {"W19.0": "S72.0", "W10.0": "S72.0", "X59.9": "S72.0", "V43.5": "S06.0"}


class _DrugClass(NamedTuple):
    name: str
    description: str
    drugs: tuple[tuple[str, float], ...]
    quantities: tuple[tuple[int, float], ...] = ((28, 0.55), (56, 0.3), (84, 0.15))


_DRUG_CLASSES: tuple[_DrugClass, ...] = (
    _DrugClass("biguanide", "Biguanide (type 2 diabetes, first line)", (("metformin", 1.0),)),
    _DrugClass(
        "sulfonylurea", "Sulfonylurea (type 2 diabetes)", (("gliclazide", 0.85), ("glimepiride", 0.15))
    ),
    _DrugClass(
        "sglt2_inhibitor",
        "SGLT2 inhibitor (type 2 diabetes, heart failure, kidney disease)",
        (("dapagliflozin", 0.5), ("empagliflozin", 0.45), ("canagliflozin", 0.05)),
    ),
    _DrugClass(
        "dpp4_inhibitor",
        "DPP-4 inhibitor (type 2 diabetes)",
        (("sitagliptin", 0.5), ("linagliptin", 0.35), ("alogliptin", 0.15)),
    ),
    _DrugClass(
        "insulin",
        "Insulin (quantity in pens or cartridges)",
        (
            ("insulin glargine", 0.5),
            ("insulin aspart", 0.25),
            ("insulin degludec", 0.15),
            ("isophane insulin", 0.1),
        ),
        ((5, 0.6), (10, 0.4)),
    ),
    _DrugClass(
        "statin",
        "HMG-CoA reductase inhibitor (lipid lowering)",
        (("atorvastatin", 0.7), ("simvastatin", 0.2), ("rosuvastatin", 0.08), ("pravastatin", 0.02)),
    ),
    _DrugClass(
        "ace_inhibitor",
        "Angiotensin-converting enzyme inhibitor (hypertension, heart failure)",
        (("ramipril", 0.7), ("lisinopril", 0.2), ("perindopril", 0.1)),
    ),
    _DrugClass(
        "arb",
        "Angiotensin II receptor blocker (hypertension)",
        (("losartan", 0.45), ("candesartan", 0.35), ("irbesartan", 0.2)),
    ),
    _DrugClass(
        "calcium_channel_blocker",
        "Calcium-channel blocker (hypertension, angina)",
        (("amlodipine", 0.9), ("felodipine", 0.1)),
    ),
    _DrugClass(
        "thiazide_diuretic",
        "Thiazide or thiazide-like diuretic (hypertension)",
        (("indapamide", 0.6), ("bendroflumethiazide", 0.4)),
    ),
    _DrugClass(
        "beta_blocker",
        "Beta-adrenoceptor blocker (hypertension, atrial fibrillation, angina)",
        (("bisoprolol", 0.75), ("atenolol", 0.15), ("propranolol", 0.1)),
    ),
    _DrugClass(
        "anticoagulant",
        "Oral anticoagulant (atrial fibrillation, thromboembolism)",
        (("apixaban", 0.55), ("edoxaban", 0.15), ("rivaroxaban", 0.15), ("warfarin", 0.15)),
    ),
    _DrugClass(
        "ssri",
        "Selective serotonin re-uptake inhibitor (depression, anxiety)",
        (("sertraline", 0.55), ("citalopram", 0.25), ("fluoxetine", 0.2)),
    ),
    _DrugClass(
        "ppi",
        "Proton pump inhibitor (reflux, ulcer protection)",
        (("omeprazole", 0.7), ("lansoprazole", 0.3)),
    ),
    _DrugClass("thyroid_hormone", "Thyroid hormone replacement (hypothyroidism)", (("levothyroxine", 1.0),)),
    _DrugClass(
        "opioid",
        "Opioid analgesic",
        (("codeine", 0.45), ("tramadol", 0.25), ("morphine", 0.18), ("oxycodone", 0.12)),
        ((28, 0.4), (56, 0.3), (60, 0.2), (100, 0.1)),
    ),
    _DrugClass(
        "antibiotic",
        "Systemic antibacterial (acute course)",
        (
            ("amoxicillin", 0.4),
            ("doxycycline", 0.15),
            ("nitrofurantoin", 0.15),
            ("flucloxacillin", 0.12),
            ("clarithromycin", 0.1),
            ("phenoxymethylpenicillin", 0.08),
        ),
        ((7, 0.15), (14, 0.2), (15, 0.35), (21, 0.25), (28, 0.05)),
    ),
    _DrugClass(
        "nsaid",
        "Non-steroidal anti-inflammatory drug",
        (("naproxen", 0.6), ("ibuprofen", 0.4)),
        ((28, 0.6), (56, 0.4)),
    ),
    _DrugClass(
        "bisphosphonate",
        "Bisphosphonate (osteoporosis; weekly tablets)",
        (("alendronic acid", 0.95), ("risedronate sodium", 0.05)),
        ((4, 0.6), (12, 0.4)),
    ),
)


class _LabTest(NamedTuple):
    code: str
    description: str
    unit: str
    lower: float
    upper: float


_LAB_TESTS: tuple[_LabTest, ...] = (
    _LabTest("HBA1C", "Haemoglobin A1c (IFCC)", "mmol/mol", 20.0, 150.0),
    _LabTest("EGFR", "Estimated glomerular filtration rate (CKD-EPI 2021)", "mL/min/1.73m2", 2.0, 150.0),
    _LabTest("CHOL", "Total cholesterol (serum)", "mmol/L", 1.5, 12.0),
    _LabTest("CREAT", "Creatinine (serum)", "umol/L", 20.0, 1200.0),
)
_HBA1C, _EGFR, _CHOL, _CREAT = range(4)


def _codelist_frames() -> dict[str, pl.DataFrame]:
    """The code lists, as written to ``CODELISTS_DIR`` (a test checks the files match)."""
    return {
        "regions.csv": pl.DataFrame({"code": [r[0] for r in _REGIONS], "name": [r[1] for r in _REGIONS]}),
        "icd10_chapters.csv": pl.DataFrame(
            {
                "chapter": [c[0] for c in _CHAPTERS],
                "range": [f"{c[1]}-{c[2]}" for c in _CHAPTERS],
                "description": [c[3] for c in _CHAPTERS],
            }
        ),
        "icd10_codes.csv": pl.DataFrame(
            {
                "code": [i.code for i in _ICD],
                "chapter": [icd10_chapter(i.code) for i in _ICD],
                "description": [i.description for i in _ICD],
            }
        ),
        "drug_classes.csv": pl.DataFrame(
            {
                "drug_class": [c.name for c in _DRUG_CLASSES],
                "description": [c.description for c in _DRUG_CLASSES],
                "example_drug": [max(c.drugs, key=lambda d: d[1])[0] for c in _DRUG_CLASSES],
            }
        ),
        "drugs.csv": pl.DataFrame(
            {
                "drug_name": [d for c in _DRUG_CLASSES for d, _ in c.drugs],
                "drug_class": [c.name for c in _DRUG_CLASSES for _ in c.drugs],
            }
        ),
        "lab_tests.csv": pl.DataFrame(
            {
                "test_code": [t.code for t in _LAB_TESTS],
                "description": [t.description for t in _LAB_TESTS],
                "unit": [t.unit for t in _LAB_TESTS],
                "lower": [t.lower for t in _LAB_TESTS],
                "upper": [t.upper for t in _LAB_TESTS],
            }
        ),
    }


# --- names -----------------------------------------------------------------------------------------

# Given names by sex and birth cohort (before 1960, 1960-1989, 1990 on), most common first.
_GIVEN: dict[tuple[bool, int], str] = {
    (True, 0): (
        "Margaret Patricia Susan Mary Elizabeth Linda Christine Barbara Janet Jean Sheila Pauline Carol"
        " Valerie Sandra Maureen Brenda Joan Kathleen Irene Dorothy Ann Jennifer Doreen Eileen"
    ),
    (True, 1): (
        "Sarah Claire Nicola Emma Lisa Joanne Michelle Helen Samantha Karen Amanda Rachel Louise"
        " Julie Gemma Laura Kelly Victoria Rebecca Donna Angela Tracey Catherine Deborah Fatima"
    ),
    (True, 2): (
        "Olivia Amelia Isla Ava Emily Sophie Grace Mia Poppy Ella Lily Evie Isabella"
        " Chloe Jessica Charlotte Freya Ruby Hannah Aisha Zara Maryam Holly Megan Lucy"
    ),
    (False, 0): (
        "John David Michael Peter Robert Brian Alan William James Kenneth Anthony Keith Derek"
        " Colin Roy Raymond Ronald Geoffrey Terence Barry Malcolm Graham Dennis Trevor George"
    ),
    (False, 1): (
        "Paul Mark Andrew Richard Stephen Ian Darren Jason Neil Lee Simon Christopher Matthew"
        " Gary Craig Martin Daniel Scott Wayne Stuart Jonathan Carl Mohammed Gareth Dean"
    ),
    (False, 2): (
        "Oliver Jack Harry George Noah Charlie Jacob Alfie Freddie Oscar Leo Thomas Joshua"
        " James William Muhammad Henry Archie Ethan Lewis Liam Ryan Callum Dylan Adam"
    ),
}
_FAMILY = (
    "Smith Jones Williams Taylor Brown Davies Evans Wilson Thomas Johnson Roberts Robinson Thompson "
    "Wright Walker White Edwards Hughes Green Hall Lewis Harris Clarke Patel Jackson Wood Turner "
    "Martin Cooper Hill Ward Morris Moore Clark Lee King Baker Harrison Morgan Allen James Scott "
    "Phillips Watson Davis Parker Price Bennett Young Griffiths Mitchell Kelly Cook Carter "
    "Richardson Bailey Collins Bell Shaw Murphy Miller Cox Richards Khan Marshall Anderson Simpson "
    "Ellis Adams Singh Begum Wilkinson Foster Chapman Powell Webb Rogers Gray Mason Ali Hunt Hussain "
    "Campbell Matthews Owen Palmer Holmes Mills Barnes Knight Lloyd Butler Russell Barker Fisher "
    "Stevens Jenkins Murray Dixon Harvey Ahmed Nowak Kowalski Okafor Nguyen Chen Mensah Rahman "
    "O'Brien Sharma"
)

# Age pyramid (UK-like, per cent): five-year bands 0-4 .. 95-99, then 100. _OLD_TILT multiplies the
# bands for women and divides them for men.
_AGE_BANDS = np.array(
    [5.4, 5.9, 6.0, 5.6, 6.0, 6.6, 6.8, 6.6, 6.3, 6.5, 7.0, 6.8, 5.9, 5.0, 5.0, 3.7, 2.5, 1.5, 0.7, 0.2, 0.02]
)
_OLD_TILT = np.array([1.0] * 16 + [1.15, 1.3, 1.5, 1.8, 2.0])  # women outlive men


# --- sampling helpers ------------------------------------------------------------------------------


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


# --- the code tables as arrays -----------------------------------------------------------------------


class _Tables:
    """The tables above as NumPy arrays and Polars series, built once on first use."""

    def __init__(self) -> None:
        codes = [i.code for i in _ICD]
        self.icd_codes = pl.Series("icd10_code", codes, dtype=pl.String)
        chapters = [icd10_chapter(c) or "" for c in codes]
        self.icd_chapters = pl.Series("icd10_chapter", chapters, dtype=pl.String)
        self.icd_index = {c: k for k, c in enumerate(codes)}
        n = len(codes)
        col = {f: np.array([getattr(i, f) for i in _ICD], dtype=np.float64) for f in _Icd._fields[2:9]}
        female_only = np.array([i.sex == "F" for i in _ICD])
        male_only = np.array([i.sex == "M" for i in _ICD])
        maternity = np.array([c.startswith("O") for c in codes])
        diabetes = np.array([c.startswith("E11") for c in codes])
        general = ~maternity & ~diabetes

        def mix(weights: FloatArr, keep: BoolArr) -> FloatArr:
            return np.where(keep, weights, 0.0)

        # Admission case mixes: 2 * k + (0 women, 1 men) for k = infant, child, adult, 60+; then 8
        # maternity and 9 type 2 diabetes. Deaths: 0 infant; 1, 2 aged 1-64; 3, 4 aged 65+; 5 diabetes.
        pools: list[FloatArr] = []
        for field in ("infant", "child", "young", "old"):
            for female in (True, False):
                sex_ok = ~male_only if female else ~female_only
                pools.append(mix(col[field], general & sex_ok))
        pools.append(mix(col["young"], maternity))
        pools.append(mix(col["old"], diabetes))
        self.admission_cdfs = [_cdf(p) for p in pools]
        deaths: list[FloatArr] = [mix(col["death_infant"], general)]
        for field in ("death_young", "death_old"):
            for female in (True, False):
                sex_ok = ~male_only if female else ~female_only
                deaths.append(mix(col[field], general & sex_ok))
        deaths.append(mix(col["death_old"], diabetes))
        self.death_cdfs = [_cdf(p) for p in deaths]

        care = [_CARE_BY_CODE.get(c, _CARE_BY_CHAPTER[ch]) for c, ch in zip(codes, chapters, strict=True)]
        self.day_case = np.array([c[0] for c in care])
        self.median_los = np.array([c[1] for c in care])
        self.tariff = np.array([c[2] for c in care])
        self.covid = np.array([c.startswith("U07") for c in codes])
        terminal = np.arange(n, dtype=np.int64)
        for k, c in enumerate(codes):
            if chapters[k] == "XX":
                target = _TERMINAL_FOR_EXTERNAL.get(c)
                terminal[k] = self.icd_index[target] if target else -1
        self.terminal_code = terminal
        self.pneumonia = self.icd_index["J18.9"]

        self.class_index = {c.name: k for k, c in enumerate(_DRUG_CLASSES)}
        self.class_names = pl.Series("drug_class", [c.name for c in _DRUG_CLASSES], dtype=pl.String)
        drug_names: list[str] = []
        self.drug_offset: list[int] = []
        self.drug_cdfs: list[FloatArr] = []
        self.qty_values: list[IntArr] = []
        self.qty_cdfs: list[FloatArr] = []
        for dc in _DRUG_CLASSES:
            self.drug_offset.append(len(drug_names))
            drug_names.extend(d for d, _ in dc.drugs)
            self.drug_cdfs.append(_cdf([w for _, w in dc.drugs]))
            self.qty_values.append(np.array([q for q, _ in dc.quantities], dtype=np.int64))
            self.qty_cdfs.append(_cdf([w for _, w in dc.quantities]))
        self.drug_names = pl.Series("drug_name", drug_names, dtype=pl.String)

        self.lab_codes = pl.Series("test_code", [t.code for t in _LAB_TESTS], dtype=pl.String)
        self.lab_units = pl.Series("unit", [t.unit for t in _LAB_TESTS], dtype=pl.String)
        self.lab_lower = np.array([t.lower for t in _LAB_TESTS])
        self.lab_upper = np.array([t.upper for t in _LAB_TESTS])

        self.region_codes = pl.Series("region", [r[0] for r in _REGIONS], dtype=pl.String)
        self.region_cdf = _cdf([r[2] for r in _REGIONS])
        self.quintile_cdfs = np.array([_cdf(r[3]) for r in _REGIONS])
        outward: list[str] = []
        self.outward_start: list[int] = []
        self.outward_count: list[int] = []
        for r in _REGIONS:
            self.outward_start.append(len(outward))
            for area in r[4].split():
                letters = "".join(ch for ch in area if ch.isalpha())
                first, last = area[len(letters) :].split("-")
                outward.extend(f"{letters}{d}" for d in range(int(first), int(last) + 1))
            self.outward_count.append(len(outward) - self.outward_start[-1])
        self.outward = pl.Series("outward", outward, dtype=pl.String)

        # All given names in one series; given_offset[female, cohort] is where each list starts.
        self.given_cdfs: dict[tuple[bool, int], FloatArr] = {}
        self.given_offset = np.zeros((2, 3), dtype=np.int64)
        flat: list[str] = []
        for (female, cohort), text in _GIVEN.items():
            names = text.split()
            self.given_offset[int(female), cohort] = len(flat)
            flat.extend(names)
            self.given_cdfs[female, cohort] = _cdf(1.0 / np.arange(1, len(names) + 1) ** 0.6)
        self.given_names = pl.Series("given_name", flat, dtype=pl.String)
        family = _FAMILY.split()
        self.family = pl.Series("family_name", family, dtype=pl.String)
        self.family_cdf = _cdf(1.0 / np.arange(1, len(family) + 1) ** 0.8)
        female_bands = _AGE_BANDS * _OLD_TILT
        male_bands = _AGE_BANDS / _OLD_TILT
        self.age_cdf_f = _cdf(female_bands)
        self.age_cdf_m = _cdf(male_bands)


_TABLES: _Tables | None = None


def _tables() -> _Tables:
    global _TABLES
    if _TABLES is None:
        _TABLES = _Tables()
    return _TABLES


# --- the population --------------------------------------------------------------------------------

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
_ADMISSIONS_BY_AGE: _Curve = (
    (0, 1, 5, 15, 18, 30, 45, 60, 70, 80, 90, 101),
    (0.77, 0.21, 0.1, 0.1, 0.14, 0.15, 0.17, 0.26, 0.38, 0.6, 0.77, 0.77),
)
_ANTIBIOTICS_BY_AGE: _Curve = ((0, 5, 18, 60, 80, 101), (0.3, 0.2, 0.18, 0.27, 0.4, 0.45))
_TESTING_BY_AGE: _Curve = ((18, 40, 65, 80), (0.05, 0.1, 0.3, 0.4))
_DEP_DIABETES = np.array([1.45, 1.2, 1.0, 0.85, 0.7])
_DEP_MORTALITY = np.array([1.35, 1.15, 1.0, 0.9, 0.8])
_DEP_ADMISSION = np.array([1.25, 1.12, 1.0, 0.92, 0.85])
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


# --- one chunk ---------------------------------------------------------------------------------------


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


def _chunk(
    rng: np.random.Generator, n_registered: int, nhs: IntArr, counters: _Counters
) -> Iterator[tuple[str, pl.DataFrame]]:
    """Each source's rows for one chunk of people, one at a time (so only one frame is in memory)."""
    pop = _Population(rng, n_registered, nhs)
    yield "demographics", _demographics(rng, pop)
    cause = _deaths_cause(rng, pop)
    yield "admissions", _admissions(rng, pop, cause, counters)
    yield "prescriptions", _prescriptions(rng, pop, counters)
    yield "lab_results", _lab_results(rng, pop)
    yield "deaths", _deaths(rng, pop, cause)
    yield "opt_outs", _opt_outs(rng, pop)


def _demographics(rng: np.random.Generator, pop: _Population) -> pl.DataFrame:
    t = _tables()
    n = pop.n
    birth_year = 1970 + pop.dob / _YEAR
    cohort = np.where(birth_year < 1960, 0, np.where(birth_year < 1990, 1, 2))
    given_idx = np.zeros(n, dtype=np.int64)
    u = rng.random(n)
    for (female, c), cdf in t.given_cdfs.items():
        sel = (pop.female == female) & (cohort == c)
        given_idx[sel] = np.minimum(np.searchsorted(cdf, u[sel], side="right"), cdf.size - 1)
    family_idx = _draw(rng, t.family_cdf, n)
    start = np.array(t.outward_start)[pop.region]
    count = np.array(t.outward_count)[pop.region]
    outward_idx = start + (rng.random(n) * count).astype(np.int64)
    sector = rng.integers(0, 10, n)
    unit_letters = "ABDEFGHJLNPQRSTUWXYZ"
    unit1 = rng.integers(0, len(unit_letters), n)
    unit2 = rng.integers(0, len(unit_letters), n)
    no_postcode = rng.random(n) < MISSING_RATE

    keep = np.flatnonzero(pop.registered)
    keep = keep[np.argsort(pop.order[keep], kind="stable")]
    letters = pl.Series(list(unit_letters), dtype=pl.String)
    given = t.given_names.gather(
        t.given_offset[pop.female[keep].astype(np.int64), cohort[keep]] + given_idx[keep]
    )
    postcode = pl.select(
        pl.concat_str(
            [
                t.outward.gather(outward_idx[keep]),
                pl.lit(" "),
                pl.Series(sector[keep]).cast(pl.String),
                letters.gather(unit1[keep]),
                letters.gather(unit2[keep]),
            ]
        )
    ).to_series()
    idx = np.flatnonzero(no_postcode[keep])
    if idx.size:
        postcode = postcode.scatter(idx, None)
    return pl.DataFrame(
        {
            "nhs_number": _nhs_series(pop.nhs[keep]),
            "given_name": given,
            "family_name": t.family.gather(family_idx[keep]),
            "date_of_birth": _dates(pop.dob[keep]),
            "sex": pl.Series(np.where(pop.female[keep], "F", "M"), dtype=pl.String),
            "postcode": postcode,
            "region": t.region_codes.gather(pop.region[keep]),
            "deprivation_quintile": pl.Series(pop.quintile[keep], dtype=pl.Int64),
        }
    )


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


def _id_series(prefix: str, numbers: IntArr, width: int) -> pl.Series:
    return pl.select(pl.lit(prefix) + pl.Series(numbers).cast(pl.String).str.zfill(width)).to_series()


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


def _opt_outs(rng: np.random.Generator, pop: _Population) -> pl.DataFrame:
    chosen = np.flatnonzero(rng.random(pop.n) < OPT_OUT_RATE)
    chosen = chosen[np.argsort(pop.order[chosen], kind="stable")]
    return pl.DataFrame({"nhs_number": _nhs_series(pop.nhs[chosen])})


# --- writing -----------------------------------------------------------------------------------------


class _Sink:
    """Appends each chunk's frames to one file per source: CSV directly, Parquet via part files."""

    def __init__(self, out: Path, fmt: Literal["csv", "parquet"], work: Path) -> None:
        self.out, self.fmt, self.work = out, fmt, work
        self.rows = dict.fromkeys(FILE_NAMES, 0)
        self.parts: dict[str, list[Path]] = {name: [] for name in FILE_NAMES}

    def partial(self, name: str) -> Path:
        return self.work / f"{name}.{self.fmt}"

    def write(self, name: str, frame: pl.DataFrame) -> None:
        self.rows[name] += frame.height
        if self.fmt == "csv":
            first = not self.partial(name).exists()
            with self.partial(name).open("ab") as handle:
                frame.write_csv(handle, include_header=first, float_precision=1, date_format="%Y-%m-%d")
        else:
            part = self.work / f"{name}.part{len(self.parts[name]):05d}.parquet"
            frame.write_parquet(part, compression="zstd", statistics=True)
            self.parts[name].append(part)

    def finish(self, progress: Callable[[str, int, int], None] | None) -> dict[str, int]:
        files: dict[str, int] = {}
        for k, name in enumerate(FILE_NAMES):
            if self.fmt == "parquet":
                parts = self.parts[name]
                if len(parts) == 1:
                    parts[0].replace(self.partial(name))
                else:
                    pl.scan_parquet(parts).sink_parquet(
                        self.partial(name), compression="zstd", statistics=True, row_group_size=250_000
                    )
            final = self.out / f"{name}.{self.fmt}"
            os.replace(self.partial(name), final)
            files[final.name] = self.rows[name]
            if progress is not None:
                progress("write", k + 1, len(FILE_NAMES))
        return files


def _check_arguments(persons: object, seed: object, out: object, fmt: object) -> Path:
    if isinstance(persons, bool) or not isinstance(persons, int):
        raise InvalidInput(f"the number of persons must be a whole number, not {persons!r}")
    if persons < 1 or persons > MAX_PERSONS:
        raise InvalidInput(f"the number of persons must be between 1 and {MAX_PERSONS:,}; got {persons:,}")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise InvalidInput(f"the seed must be a whole number of 0 or more; got {seed!r}")
    if fmt not in ("csv", "parquet"):
        raise InvalidInput(f"unknown output format {fmt!r}: use csv or parquet")
    if not isinstance(out, (str, os.PathLike)):
        raise InvalidInput(f"the output directory must be a path, not {out!r}")
    path = Path(out)
    if path.exists() and not path.is_dir():
        raise InvalidInput(f"{path} exists and is not a directory: choose a directory for the extracts")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InvalidInput(f"cannot create the output directory {path}: {exc.strerror or exc}") from None
    return path


def generate(
    persons: int,
    seed: int,
    out: Path,
    *,
    fmt: Literal["csv", "parquet"] = "csv",
    progress: Callable[[str, int, int], None] | None = None,
) -> SynthSummary:
    """Write the six synthetic extracts for ``persons`` registered people into ``out``.

    Files are ``<source>.csv`` or ``<source>.parquet`` for each name in ``FILE_NAMES``. They are built
    in a work directory inside ``out`` and moved into place (replacing files of the same name) only
    after every chunk has been generated; the work directory is always removed. ``progress(stage,
    done, total)`` is called with stage ``"generate"`` (persons done, out of ``persons``) before and
    after each chunk, then ``"write"`` (files finished, out of 6). The same ``(persons, seed)`` gives
    byte-identical files; bad arguments raise ``InvalidInput``.
    """
    path = _check_arguments(persons, seed, out, fmt)
    started = time.perf_counter()
    chunks = math.ceil(persons / CHUNK_PERSONS)
    children = np.random.SeedSequence(seed).spawn(chunks + 1)
    a, b = _nhs_permutation(np.random.default_rng(children[0]))
    counters = _Counters()
    done = 0
    unregistered_done = 0
    work = Path(tempfile.mkdtemp(prefix=".synth-", dir=path))
    try:
        sink = _Sink(path, fmt, work)
        if progress is not None:
            progress("generate", 0, persons)
        for c in range(chunks):
            size = min(CHUNK_PERSONS, persons - done)
            extra = round(size * UNREGISTERED_RATE / (1 - UNREGISTERED_RATE))
            index = np.concatenate(
                [
                    np.arange(done, done + size, dtype=np.int64),
                    persons + unregistered_done + np.arange(extra, dtype=np.int64),
                ]
            )
            rng = np.random.default_rng(children[c + 1])
            for name, frame in _chunk(rng, size, _nhs_numbers(index, a, b), counters):
                sink.write(name, frame)
            done += size
            unregistered_done += extra
            if progress is not None:
                progress("generate", done, persons)
        files = sink.finish(progress)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return SynthSummary(persons=persons, files=files, seconds=time.perf_counter() - started)

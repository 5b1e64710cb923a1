"""The given and family names and the age pyramid, and every table as NumPy arrays and Polars series
(``_Tables``, built once by ``_tables``)."""

from __future__ import annotations

import numpy as np
import polars as pl

from enclave.synth.codes import _DRUG_CLASSES, _LAB_TESTS, _REGIONS, icd10_chapter
from enclave.synth.constants import BoolArr, FloatArr, IntArr
from enclave.synth.diagnoses import _CARE_BY_CHAPTER, _CARE_BY_CODE, _ICD, _TERMINAL_FOR_EXTERNAL, _Icd
from enclave.synth.sampling import _cdf

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

"""The code lists (regions, ICD-10 chapters, drug classes and drugs, laboratory tests), ``icd10_chapter``
and ``_codelist_frames``, the frames written to ``CODELISTS_DIR``."""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

import polars as pl

from enclave.synth.diagnoses import _ICD

CODELISTS_DIR = Path(__file__).resolve().parents[1] / "codelists"


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

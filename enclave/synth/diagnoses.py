"""The ICD-10 codes that are drawn, with their case-mix weights, and the care (day cases, length of
stay, tariff) by chapter and code."""

from __future__ import annotations

from typing import NamedTuple


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

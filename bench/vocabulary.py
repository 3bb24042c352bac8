"""What the benchmark's synthetic charts are made of: real codes, units and ranges, as EHRs send them.

Every code here is a real LOINC, SNOMED CT, ICD-10-CM or RxNorm code. The charts draw on this vocabulary
at random (bench/charts.py), so 200 patients of one size class differ the way real patients do: US
laboratories report BUN in mg/dL and sodium in mEq/L, UK ones urea and creatinine in SI units; one
chart codes its problems in ICD-10-CM with a SNOMED CT translation, another in SNOMED CT alone; each
takes its own medicines.

`LATEST` forms are the ones a chart's newest result of an analyte uses: the service reads all of them
today, so the cards each scenario is built for do not depend on which forms a chart drew. `OLDER`
forms (whole-blood and point-of-care codes, other methods) appear only on older results, as they do
when a laboratory changed analysers: whether a reader understands them can change what it counts as
history, never the newest value.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class LabForm:
    loinc: str
    display: str
    unit: str  # UCUM code (Quantity.code)
    unit_text: str  # what the laboratory system prints (Quantity.unit)
    low: float
    high: float
    typical: float
    spread: float
    decimals: int


def _forms(loinc: str, display: str, units: list[tuple[str, str]], low: float, high: float, typical: float,
           spread: float, decimals: int) -> list[LabForm]:
    return [LabForm(loinc, display, code, text, low, high, typical, spread, decimals) for code, text in units]


_NA = "Sodium [Moles/volume] in Serum or Plasma"
_K = "Potassium [Moles/volume] in Serum or Plasma"

# analyte -> style ("us" | "si") -> forms for the newest result (and, mostly, the older ones too)
LATEST: dict[str, dict[str, list[LabForm]]] = {
    "sodium": {
        "us": _forms("2951-2", _NA, [("meq/L", "mEq/L"), ("mmol/L", "mmol/L")], 136, 145, 140, 2.2, 0),
        "si": _forms("2951-2", _NA, [("mmol/L", "mmol/L")], 133, 146, 139, 2.2, 0),
    },
    "potassium": {
        "us": _forms("2823-3", _K, [("meq/L", "mEq/L"), ("mmol/L", "mmol/L")], 3.5, 5.1, 4.2, 0.3, 1),
        "si": _forms("2823-3", _K, [("mmol/L", "mmol/L")], 3.5, 5.3, 4.3, 0.3, 1),
    },
    "urea": {
        "us": _forms("3094-0", "Urea nitrogen [Mass/volume] in Serum or Plasma", [("mg/dL", "mg/dL")],
                     7, 20, 14, 3, 0),
        "si": _forms("22664-7", "Urea [Moles/volume] in Serum or Plasma", [("mmol/L", "mmol/L")],
                     2.5, 7.8, 5.0, 1.0, 1),
    },
    "creatinine": {
        "us": _forms("2160-0", "Creatinine [Mass/volume] in Serum or Plasma", [("mg/dL", "mg/dL")],
                     0.6, 1.2, 0.9, 0.12, 2),
        "si": _forms("14682-9", "Creatinine [Moles/volume] in Serum or Plasma", [("umol/L", "umol/L"),
                                                                                   ("umol/L", "µmol/L")],
                     59, 104, 80, 10, 0),
    },
    "calcium": {
        "us": _forms("17861-6", "Calcium [Mass/volume] in Serum or Plasma", [("mg/dL", "mg/dL")],
                     8.5, 10.5, 9.4, 0.3, 1),
        "si": _forms("2000-8", "Calcium [Moles/volume] in Serum or Plasma", [("mmol/L", "mmol/L")],
                     2.2, 2.6, 2.38, 0.07, 2),
    },
    "albumin": {
        "us": _forms("1751-7", "Albumin [Mass/volume] in Serum or Plasma", [("g/dL", "g/dL")], 3.5, 5.0, 4.2, 0.2, 1),
        "si": _forms("1751-7", "Albumin [Mass/volume] in Serum or Plasma", [("g/L", "g/L")], 35, 50, 42, 2, 0),
    },
    "magnesium": {
        "us": _forms("19123-9", "Magnesium [Mass/volume] in Serum or Plasma", [("mg/dL", "mg/dL")],
                     1.7, 2.4, 2.0, 0.15, 1),
        "si": _forms("2601-3", "Magnesium [Moles/volume] in Serum or Plasma", [("mmol/L", "mmol/L")],
                     0.7, 1.0, 0.85, 0.06, 2),
    },
    "tsh": {
        "us": _forms("3016-3", "Thyrotropin [Units/volume] in Serum or Plasma",
                     [("m[IU]/L", "mIU/L"), ("u[IU]/mL", "uIU/mL")], 0.4, 4.0, 1.8, 0.6, 2),
        "si": _forms("3016-3", "Thyrotropin [Units/volume] in Serum or Plasma", [("m[IU]/L", "mU/L")],
                     0.27, 4.2, 1.8, 0.6, 2),
    },
    "free_t4": {
        "us": _forms("3024-7", "Thyroxine (T4) free [Mass/volume] in Serum or Plasma", [("ng/dL", "ng/dL")],
                     0.9, 1.7, 1.2, 0.15, 2),
        "si": _forms("14920-3", "Thyroxine (T4) free [Moles/volume] in Serum or Plasma", [("pmol/L", "pmol/L")],
                     12, 22, 16, 2, 1),
    },
    "ck": {
        "us": _forms("2157-6", "Creatine kinase [Enzymatic activity/volume] in Serum or Plasma",
                     [("U/L", "U/L"), ("[IU]/L", "IU/L")], 26, 192, 110, 30, 0),
        "si": _forms("2157-6", "Creatine kinase [Enzymatic activity/volume] in Serum or Plasma", [("U/L", "U/L")],
                     25, 200, 110, 30, 0),
    },
}

# Other real forms of the same analytes, for older results only (see the module docstring).
OLDER: dict[str, list[LabForm]] = {
    "sodium": _forms("2947-0", "Sodium [Moles/volume] in Blood", [("mmol/L", "mmol/L")], 136, 145, 140, 2.2, 0),
    "potassium": _forms("6298-4", "Potassium [Moles/volume] in Blood", [("mmol/L", "mmol/L")], 3.5, 5.1, 4.1, 0.3, 1),
    "urea": _forms("6299-2", "Urea nitrogen [Mass/volume] in Blood", [("mg/dL", "mg/dL")], 7, 20, 14, 3, 0),
    "creatinine": _forms("38483-4", "Creatinine [Mass/volume] in Blood", [("mg/dL", "mg/dL")], 0.6, 1.2, 0.9, 0.12, 2),
    "calcium": _forms("49765-1", "Calcium [Mass/volume] in Blood", [("mg/dL", "mg/dL")], 8.5, 10.5, 9.4, 0.3, 1),
    "albumin": _forms("61151-7", "Albumin [Mass/volume] in Serum or Plasma by Bromocresol green (BCG) dye binding method",
                      [("g/dL", "g/dL")], 3.5, 5.0, 4.2, 0.2, 1),
    "tsh": _forms("11580-8", "Thyrotropin [Units/volume] in Serum or Plasma by Detection limit <= 0.005 mIU/L",
                  [("m[IU]/L", "mIU/L")], 0.4, 4.0, 1.8, 0.6, 2),
}

# Panels as laboratories send them beside (or instead of) the single results: code, display, members.
ELECTROLYTE_PANEL = ("24326-1", "Electrolytes 1998 panel - Serum or Plasma", ("sodium", "potassium"))
BASIC_METABOLIC_PANEL = ("51990-0", "Basic metabolic panel - Blood", ("sodium", "potassium", "urea", "creatinine"))
# Components of the electrolyte panel the rules do not read.
CHLORIDE = LabForm("2075-0", "Chloride [Moles/volume] in Serum or Plasma", "mmol/L", "mmol/L", 98, 107, 102, 2, 0)
BICARBONATE = LabForm("1963-8", "Bicarbonate [Moles/volume] in Serum or Plasma", "mmol/L", "mmol/L", 22, 29, 25, 1.5, 0)

# (ICD-10-CM, SNOMED CT, display). Diagnoses the rules do not read: no index symptom, differential, red
# flag or context code among them (asthma aside, kept apart: a reason for an inhaler).
OTHER_CONDITIONS: list[tuple[str, str, str]] = [
    ("I10", "59621000", "Essential hypertension"),
    ("E11.9", "44054006", "Type 2 diabetes mellitus"),
    ("E78.5", "55822004", "Hyperlipidemia"),
    ("K21.9", "235595009", "Gastroesophageal reflux disease"),
    ("M54.50", "279039007", "Low back pain"),
    ("F41.1", "21897009", "Generalized anxiety disorder"),
    ("E66.9", "414916001", "Obesity"),
    ("M17.11", "239873007", "Osteoarthritis of knee"),
    ("J30.9", "61582004", "Allergic rhinitis"),
    ("K58.9", "10743008", "Irritable bowel syndrome"),
    ("G43.909", "37796009", "Migraine"),
    ("D64.9", "271737000", "Anemia"),
    ("E55.9", "34713006", "Vitamin D deficiency"),
    ("I48.91", "49436004", "Atrial fibrillation"),
    ("N39.0", "68566005", "Urinary tract infectious disease"),
    ("J06.9", "54150009", "Upper respiratory infection"),
    ("L40.0", "9014002", "Psoriasis"),
    ("Z87.891", "8517006", "Ex-smoker"),
]
ASTHMA = ("J45.909", "195967001", "Asthma")
# The index symptoms, each in the systems an EHR may use (ICD-10-CM, SNOMED CT).
FASCICULATION = [("R25.3", "82470000", "Fasciculation")]
CRAMP = [("R25.2", "55300003", "Cramp and spasm"), ("M62.831", None, "Muscle spasm of calf"),
         ("G47.62", None, "Sleep related leg cramps")]
SYMPTOM_TEXTS = {
    "fasciculation": ["Twitching of the left calf", "Muscle twitching, both thighs", "Fasciculations",
                      "Eyelid and calf twitching"],
    "cramp": ["Night cramps, both calves", "Leg cramps", "Muscle cramps after exercise", "Calf cramps at night"],
}


@dataclass(frozen=True)
class Medicine:
    code: str  # RxNorm: a clinical drug (SCD) where the EHR knows the product, else the ingredient
    display: str
    dose: tuple[float, str, str] | None  # (value, unit text, UCUM code) of one dose
    route: str  # "oral" | "inhaled" | "nasal"
    per_day: int


# Medicines the rules look for, by class (one of each class below is what scenario (a) is built on).
DIURETICS = [
    Medicine("310798", "hydrochlorothiazide 25 MG Oral Tablet", (1, "tablet", "{tbl}"), "oral", 1),
    Medicine("197499", "chlorthalidone 25 MG Oral Tablet", (1, "tablet", "{tbl}"), "oral", 1),
    Medicine("313988", "furosemide 40 MG Oral Tablet", (40, "mg", "mg"), "oral", 1),
    Medicine("197418", "bumetanide 1 MG Oral Tablet", (1, "mg", "mg"), "oral", 2),
]
BETA_AGONISTS = [
    Medicine("745679", "200 ACTUAT albuterol 0.09 MG/ACTUAT Metered Dose Inhaler", (2, "puff", "{puff}"), "inhaled", 4),
    Medicine("435", "albuterol", (2, "puff", "{puff}"), "inhaled", 4),
]
CORTICOSTEROIDS = [Medicine("312615", "prednisone 20 MG Oral Tablet", (20, "mg", "mg"), "oral", 1)]
# Medicines the rules do not read.
OTHER_MEDICINES = [
    Medicine("861007", "metformin hydrochloride 500 MG Oral Tablet", (500, "mg", "mg"), "oral", 2),
    Medicine("314076", "lisinopril 10 MG Oral Tablet", (10, "mg", "mg"), "oral", 1),
    Medicine("197361", "amlodipine 5 MG Oral Tablet", (5, "mg", "mg"), "oral", 1),
    Medicine("313782", "acetaminophen 325 MG Oral Tablet", (650, "mg", "mg"), "oral", 3),
    Medicine("310965", "ibuprofen 200 MG Oral Tablet", (400, "mg", "mg"), "oral", 3),
    Medicine("314231", "simvastatin 10 MG Oral Tablet", (10, "mg", "mg"), "oral", 1),
    Medicine("83367", "atorvastatin", (20, "mg", "mg"), "oral", 1),
    Medicine("7646", "omeprazole", (20, "mg", "mg"), "oral", 1),
    Medicine("36437", "sertraline", (50, "mg", "mg"), "oral", 1),
    Medicine("10582", "levothyroxine", (50, "ug", "ug"), "oral", 1),
    Medicine("1191", "aspirin", (81, "mg", "mg"), "oral", 1),
    Medicine("28889", "loratadine", (10, "mg", "mg"), "oral", 1),
    Medicine("6918", "metoprolol", (25, "mg", "mg"), "oral", 2),
    Medicine("52175", "losartan", (50, "mg", "mg"), "oral", 1),
    Medicine("40790", "pantoprazole", (40, "mg", "mg"), "oral", 1),
    Medicine("321988", "escitalopram", (10, "mg", "mg"), "oral", 1),
    Medicine("301542", "rosuvastatin", (10, "mg", "mg"), "oral", 1),
    Medicine("77492", "tamsulosin", (0.4, "mg", "mg"), "oral", 1),
    Medicine("2418", "cholecalciferol", (1000, "[iU]", "[iU]"), "oral", 1),
    Medicine("41126", "fluticasone", (2, "spray", "{spray}"), "nasal", 1),
]
ROUTES = {  # SNOMED CT route of administration
    "oral": ("26643006", "Oral route"),
    "inhaled": ("447694001", "Respiratory tract route"),
    "nasal": ("46713006", "Nasal route"),
}
TIMING_CODES = {1: "QD", 2: "BID", 3: "TID", 4: "QID"}

# Orders an outpatient chart often has open, none of them a work-up the cards suggest.
OTHER_ORDERS = [
    ("4548-4", "Hemoglobin A1c/Hemoglobin.total in Blood"),
    ("24331-1", "Lipid 1996 panel - Serum or Plasma"),
    ("58410-2", "CBC panel - Blood by Automated count"),
    ("2132-9", "Cobalamin (Vitamin B12) [Mass/volume] in Serum or Plasma"),
]

GIVEN_NAMES = ["Alex", "Sam", "Jordan", "Maria", "Wei", "Amara", "Noah", "Priya", "Olga", "Tomás", "Aisha",
               "Kenji", "Fatima", "Liam", "Grace", "Mateo", "Chloe", "Ibrahim", "Hannah", "Ravi"]
CITIES = [("Springfield", "IL", "62701"), ("Madison", "WI", "53703"), ("Portland", "OR", "97205"),
          ("Austin", "TX", "78701"), ("Raleigh", "NC", "27601"), ("Boulder", "CO", "80302")]
UK_TOWNS = [("Leeds", "LS1 4AP"), ("Bristol", "BS1 5TR"), ("Norwich", "NR2 1TF"), ("York", "YO1 7HH")]

"""Every entry of labs.yaml and order_codes.yaml, and every threshold of settings.yaml, through the engine.

Generated from the YAML (issue 18): each LOINC code, alone and as a panel component, is read as its analyte in every
unit listed for it, converted to the canonical unit; each default reference range has values below, at and above
its limits; each out_of_range level gives the card it says; each orderable that `covers` a work-up order keeps that
order out of the suggestions; each threshold of settings.yaml is tested below, at and above its value, the value
being read from settings.yaml (so a retuned threshold moves its test with it).
"""
from __future__ import annotations

from datetime import timedelta

import pytest
import yaml

from cards import load_knowledge
from cards.calendar import months_before
from cards.knowledge_base import KNOWLEDGE_DIR
from cards.precedence import apply_precedence, card_count
from cards.render import Texts
from cards.rules import run_rules
from tests.cards.factories import (NOW, card, ck, condition, cramp, dose, fasciculation, magnesium,
                                   medication_request, normal_workup, observation, patient, run, suggested_codes,
                                   topics, tsh)

K = load_knowledge()
TEXTS = Texts(K, "US")
LABS = yaml.safe_load((KNOWLEDGE_DIR / "labs.yaml").read_text(encoding="utf-8"))
ORDERS = yaml.safe_load((KNOWLEDGE_DIR / "order_codes.yaml").read_text(encoding="utf-8"))
SETTINGS = yaml.safe_load((KNOWLEDGE_DIR / "settings.yaml").read_text(encoding="utf-8"))["thresholds"]
ANALYTES = LABS["analytes"]
SIDES = ("below", "at", "above")


def iso(moment) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def result(analyte: str, code: dict, value: float, unit: str | None, **kw) -> dict:
    return observation(code["code"], value, unit, system=code["system"], **kw)


def middle(analyte: str) -> float:
    """A value inside the analyte's default range, in its canonical unit (1.0 for the ABI, which has none)."""
    bounds = ANALYTES[analyte].get("default_range") or {}
    low, high = bounds.get("low"), bounds.get("high")
    if low is not None and high is not None:
        return (low + high) / 2
    return low * 1.5 if low is not None else 1.0


# ---- every LOINC (and SNOMED) code of every analyte, in every unit ---------------------------------------------
READINGS = [(analyte, code, unit, factor) for analyte, entry in ANALYTES.items() for code in entry["codes"]
            for unit, factor in (code.get("units") or entry["units"]).items()]


@pytest.mark.parametrize("analyte, code, unit, factor", READINGS,
                         ids=[f"{a}-{c['code']}-{u}" for a, c, u, _ in READINGS])
def test_every_analyte_code_is_read_as_its_analyte_in_every_unit(analyte, code, unit, factor):
    canonical = middle(analyte)
    reported = canonical / factor
    view = run([patient(), fasciculation(), result(analyte, code, reported, unit)]).view
    assert set(view.labs) == {analyte}, f"{code['code']} read as {set(view.labs)}"
    assert view.labs[analyte].value == pytest.approx(canonical, rel=1e-6)
    assert view.labs[analyte].unit == ANALYTES[analyte]["canonical_unit"]


COMPONENTS = [(panel, analyte, code) for panel in LABS["panels"] for analyte, entry in ANALYTES.items()
              for code in entry["codes"] if code["system"] == "loinc"]


@pytest.mark.parametrize("panel, analyte, code", COMPONENTS,
                         ids=[f"{p['code']}-{a}-{c['code']}" for p, a, c in COMPONENTS])
def test_every_analyte_code_is_read_as_a_component_of_every_panel(panel, analyte, code):
    unit = ANALYTES[analyte]["canonical_unit"]
    component = {"code": {"coding": [{"system": K.uri_by_system["loinc"], "code": code["code"]}]},
                 "valueQuantity": {"value": middle(analyte), "unit": unit, "system": K.uri_by_system["ucum"],
                                   "code": unit}}
    view = run([patient(), fasciculation(), observation(panel["code"], None, None, component=[component])]).view
    assert view.labs[analyte].value == pytest.approx(middle(analyte))


# Aliases of UCUM units no unit table lists: converted through the UCUM library (labs.yaml header). Their
# factors, stated here independently of that library: 1 µkat/L = 60 U/L (1 U = 1 µmol/min), 1 mIU/mL = 1000 mIU/L.
CONVERTED_BY_UCUM = {"ukat/L": ("ck", 60), "m[IU]/mL": ("tsh", 1000)}


def _analyte_using(ucum: str):
    """An analyte code whose unit table lists ``ucum``, with its factor (or one converted by the UCUM library)."""
    for analyte, entry in ANALYTES.items():
        for code in entry["codes"]:
            units = code.get("units") or entry["units"]
            if ucum in units:
                return analyte, code, units[ucum]
    if ucum in CONVERTED_BY_UCUM:
        analyte, factor = CONVERTED_BY_UCUM[ucum]
        return analyte, ANALYTES[analyte]["codes"][0], factor
    raise AssertionError(f"no analyte lists {ucum}: give its factor in CONVERTED_BY_UCUM")


ALIASES = sorted(LABS["unit_aliases"].items())


@pytest.mark.parametrize("alias, ucum", ALIASES, ids=[alias for alias, _ in ALIASES])
def test_every_unit_alias_is_read_as_its_ucum_unit(alias, ucum):
    """A non-UCUM spelling sent as text only (no UCUM code) converts as the UCUM unit it names."""
    analyte, code, factor = _analyte_using(ucum)
    reported = middle(analyte) / factor
    sent = result(analyte, code, reported, alias, ucum=False)
    view = run([patient(), fasciculation(), sent]).view
    assert view.labs[analyte].value == pytest.approx(middle(analyte), rel=1e-6), (alias, analyte)


# ---- default reference ranges and what a result outside them means ---------------------------------------------
def _bounds(analyte: str):
    entry = ANALYTES[analyte]
    ranges = [("any", entry.get("default_range") or {})]
    ranges += [(sex, bounds) for sex, bounds in (entry.get("default_range_by_sex") or {}).items()]
    for sex, bounds in ranges:
        for bound in ("low", "high"):
            if bounds.get(bound) is not None:
                yield sex, bound, bounds[bound]


RANGES = [(analyte, sex, bound, limit, side) for analyte in ANALYTES for sex, bound, limit in _bounds(analyte)
          for side in SIDES]


@pytest.mark.parametrize("analyte, sex, bound, limit, side", RANGES,
                         ids=[f"{a}-{s}-{b}{lim}-{side}" for a, s, b, lim, side in RANGES])
def test_every_default_range_limit_below_at_and_above(analyte, sex, bound, limit, side):
    """No range and no flag from the laboratory: the default range of labs.yaml (for the patient's sex) judges."""
    step = 10 ** -ANALYTES[analyte]["decimals"]
    value = {"below": limit - step, "at": limit, "above": limit + step}[side]
    gender = {"any": "unknown", "male": "male", "female": "female"}[sex]
    unit = ANALYTES[analyte]["canonical_unit"]
    code = ANALYTES[analyte]["codes"][0]
    view = run([patient(gender=gender), fasciculation(), result(analyte, code, value, unit)]).view
    outside = (side == "below" and bound == "low") or (side == "above" and bound == "high")
    assert view.labs[analyte].direction == (bound if outside else "normal"), (value, view.labs[analyte])


# Which result stands for an out_of_range key, and the work-up result it replaces.
OUT_OF_RANGE_RESULT = {"calcium": "calcium_total"}
WORKUP_SLOT = {"sodium": "sodium", "potassium": "potassium", "urea": "urea", "creatinine": "creatinine",
               "calcium": "calcium", "tsh": "tsh", "ck": "ck"}
LEVELS = [(key, side, entry["level"]) for key, sides in LABS["out_of_range"].items() for side, entry in sides.items()]


@pytest.mark.parametrize("key, side, level", LEVELS, ids=[f"{k}-{s}-{lv}" for k, s, lv in LEVELS])
def test_every_out_of_range_level_gives_its_card(key, side, level):
    analyte = OUT_OF_RANGE_RESULT.get(key, key)
    entry = ANALYTES[analyte]
    low, high = entry["default_range"].get("low"), entry["default_range"].get("high")
    if side == "low":
        value = low * 0.8
    else:  # a CK between 1.5x and 3x the limit: above it is a red flag, up to 1.5x a trivial rise
        value = high * 2 if key == "ck" else high * 1.2
    bad = result(analyte, entry["codes"][0], value, entry["canonical_unit"], low=low, high=high)
    chart = [patient(), fasciculation(), *normal_workup(skip=(WORKUP_SLOT.get(key, ""),)), bad]
    found = run(chart)
    abnormal = card(found, "abnormal-result")
    assert abnormal["indicator"] == ("warning" if level == "warning" else "info"), abnormal["summary"]
    assert TEXTS.name("analytes", analyte) in abnormal["detail"]
    assert "reassurance" not in topics(found)


# ---- order_codes.yaml: an active order of an orderable keeps what it covers out of the suggestions --------------
REQUIRED = LABS["workup"]["required_orders"]
US_SET = LABS["workup"]["order_sets"]["US"]


def expected_suggestions(covered: set[str]) -> set[str]:
    """The suggestion codes of the US work-up with ``covered`` already ordered (magnesium: a diuretic is current)."""
    missing = [order for order in [*REQUIRED, "magnesium"] if order not in covered]
    orderables = {order: US_SET[order] for order in missing}
    kept = [order for order in missing
            if not any(order in ORDERS["orderables"][other]["covers"] and other_order != order
                       for other_order, other in orderables.items())]
    return {ORDERS["orderables"][orderables[order]]["suggest"]["code"] for order in kept}


ORDERED = [(key, "code", code) for key, entry in ORDERS["orderables"].items() for code in entry["codes"] or []] + \
          [(key, "name", name) for key, entry in ORDERS["orderables"].items() for name in entry["names"]]


@pytest.mark.parametrize("key, kind, entry", ORDERED,
                         ids=[f"{k}-{e['code'] if kind == 'code' else e}" for k, kind, e in ORDERED])
def test_every_orderable_code_and_name_suppresses_what_it_covers(key, kind, entry):
    if kind == "code":
        concept = {"coding": [{"system": K.uri_by_system[entry["system"]], "code": str(entry["code"])}]}
    else:  # a local order catalogue (Oracle Health code set 200): recognised by its name only
        concept = {"coding": [{"system": "https://fhir.example.org/codeSet/200", "code": "999"}], "text": entry}
    order = {"resourceType": "ServiceRequest", "id": "sr-x", "status": "active", "intent": "order",
             "subject": {"reference": "Patient/p1"}, "code": concept}
    diuretic = medication_request(rxnorm="310798")  # magnesium joins the work-up
    workup = card(run([patient(), fasciculation(), diuretic, order]), "workup-incomplete")
    covered = set(ORDERS["orderables"][key]["covers"])
    assert set(suggested_codes(workup)) == expected_suggestions(covered), workup["detail"]
    if covered:
        assert "already ordered" in workup["detail"], workup["detail"]


# ---- settings.yaml thresholds, each below / at / above ---------------------------------------------------------
BASE = [*normal_workup(), magnesium()]


@pytest.mark.parametrize("side", SIDES)
def test_adult_age_years(side):
    age = SETTINGS["adult_age_years"]
    birthday = NOW.date().replace(year=NOW.year - age)
    born = {"below": birthday + timedelta(days=1), "at": birthday, "above": birthday - timedelta(days=1)}[side]
    result = run([patient(birth_date=born.isoformat()), *BASE, fasciculation()])
    assert bool(result.cards) is (side != "below")


@pytest.mark.parametrize("side", SIDES)
def test_lookback_default_months(side):
    edge = months_before(NOW, SETTINGS["lookback_default_months"])
    when = {"below": edge + timedelta(days=1), "at": edge, "above": edge - timedelta(days=1)}[side]
    labs = [*normal_workup(skip=("tsh",)), tsh(effective=iso(when))]
    result = run([patient(), fasciculation(), *labs])
    stale = "workup-incomplete" in topics(result)
    assert stale is (side == "above")
    if stale:
        assert suggested_codes(card(result, "workup-incomplete")) == ["3016-3"]
        assert f"older than {SETTINGS['lookback_default_months']} months" in card(result, "workup-incomplete")["detail"]


@pytest.mark.parametrize("side", SIDES)
def test_lookback_short_months(side):
    """A diuretic started a month ago: U&E must be at most lookback_short_months old."""
    started = iso(NOW - timedelta(days=30))
    edge = months_before(NOW, SETTINGS["lookback_short_months"])
    when = {"below": edge + timedelta(days=1), "at": edge, "above": edge - timedelta(days=1)}[side]
    labs = [*normal_workup(effective=iso(when)), magnesium(effective=iso(when))]
    result = run([patient(), fasciculation(), medication_request(rxnorm="310798", authored=started), *labs])
    assert ("workup-incomplete" in topics(result)) is (side == "above")


@pytest.mark.parametrize("side", SIDES)
def test_lookback_shortening_trigger_months(side):
    """A diuretic started inside the trigger window shortens the window; one started before it does not."""
    edge = months_before(NOW, SETTINGS["lookback_shortening_trigger_months"])
    started = {"below": edge + timedelta(days=1), "at": edge, "above": edge - timedelta(days=1)}[side]
    old = iso(months_before(NOW, SETTINGS["lookback_short_months"]) - timedelta(days=5))  # fresh only for 12 months
    labs = [*normal_workup(effective=old), magnesium(effective=old)]
    result = run([patient(), fasciculation(), medication_request(rxnorm="310798", authored=iso(started)), *labs])
    assert ("workup-incomplete" in topics(result)) is (side != "above")


ORDER_OF_ANALYTE = {analyte: order for order, entry in LABS["orders"].items()
                    for alternatives in entry["components"] for analyte in alternatives}


@pytest.mark.parametrize("analyte", SETTINGS["lookback_short_analytes"])
@pytest.mark.parametrize("trigger_class", SETTINGS["lookback_short_trigger_classes"])
def test_every_short_window_analyte_and_trigger_class(analyte, trigger_class):
    ingredient = next(key for key, i in K.ingredients.items() if i.drug_class == trigger_class)
    code = next(e["code"] for e in yaml.safe_load((KNOWLEDGE_DIR / "medications.yaml").read_text())["ingredients"]
                [ingredient]["codes"] if e["system"] == "rxnorm")
    medicine = medication_request(rxnorm=code, authored=iso(NOW - timedelta(days=20)), dosage=[dose(40)])
    if analyte == "magnesium" and trigger_class not in LABS["workup"]["magnesium_when_current_class"]:
        # magnesium is asked for only beside a diuretic: one taken for years, so the steroid sets the window
        medicine = [medicine, medication_request(rxnorm="310798", authored="2024-01-01")]
    old = iso(months_before(NOW, SETTINGS["lookback_short_months"]) - timedelta(days=5))
    own_codes = {c["code"] for c in ANALYTES[analyte]["codes"]}
    labs = [lab for lab in [*normal_workup(), magnesium()] if lab["code"]["coding"][0]["code"] not in own_codes]
    stale = result(analyte, ANALYTES[analyte]["codes"][0], middle(analyte), ANALYTES[analyte]["canonical_unit"],
                   effective=old)
    medicines = medicine if isinstance(medicine, list) else [medicine]
    workup = card(run([patient(), fasciculation(), *medicines, *labs, stale]), "workup-incomplete")
    order = ORDER_OF_ANALYTE[analyte]
    expected = ORDERS["orderables"][US_SET[order]]["suggest"]["code"]
    assert expected in suggested_codes(workup), workup["detail"]


@pytest.mark.parametrize("side", SIDES)
def test_steroid_high_dose_prednisone_mg_per_day(side):
    limit = SETTINGS["steroid_high_dose_prednisone_mg_per_day"]
    mg = {"below": limit - 1, "at": limit, "above": limit + 1}[side]
    steroid = medication_request(rxnorm="8640", dosage=[dose(mg)], authored="2025-01-01")
    result = run([patient(), *BASE, fasciculation(), steroid])
    assert ("medication-review" in topics(result)) is (side != "below")
    if side != "below":
        assert f"about {mg} mg/day prednisone-equivalent" in card(result, "medication-review")["detail"]


@pytest.mark.parametrize("side", SIDES)
def test_steroid_taper_window_days(side):
    """A corticosteroid stopped `steroid_taper_window_days` ago or less is reviewed; one stopped before is not."""
    days = SETTINGS["steroid_taper_window_days"]
    stopped = NOW - timedelta(days={"below": days - 1, "at": days, "above": days + 1}[side])
    steroid = medication_request(rxnorm="312615", status="stopped", authored="2026-06-01",
                                 dispenseRequest={"validityPeriod": {"end": iso(stopped)}})
    result = run([patient(), *BASE, fasciculation(), steroid])
    assert ("medication-review" in topics(result)) is (side != "above")
    if side != "above":
        review = card(result, "medication-review")
        assert "recently stopped" in review["summary"] and f"within the last {days} days" in review["detail"]


CK_HIGH = 308


@pytest.mark.parametrize("side", SIDES)
def test_ck_abnormal_ratio_above(side):
    limit = SETTINGS["ck_abnormal_ratio_above"] * CK_HIGH
    value = {"below": limit - 1, "at": limit, "above": limit + 1}[side]
    result = run([patient(), *normal_workup(skip=("ck",)), ck(value, high=CK_HIGH), fasciculation()])
    assert ("abnormal-result" in topics(result)) is (side == "above")
    # Up to the limit a trivial rise, said as such (S4); above it hyperCKemia (E11), with its multiple.
    phrase = TEXTS.fill("phrases", "lab_ck_ratio" if side == "above" else "lab_ck_trivial",
                        ratio=f"{round(value / CK_HIGH, 1):.1f}")
    shown = card(result, "abnormal-result" if side == "above" else "reassurance")["detail"]
    assert phrase in shown, shown


@pytest.mark.parametrize("side", SIDES)
def test_ck_red_flag_ratio_at_least(side):
    limit = SETTINGS["ck_red_flag_ratio_at_least"] * CK_HIGH
    value = {"below": limit - 1, "at": limit, "above": limit + 1}[side]
    result = run([patient(), *normal_workup(skip=("ck",)), ck(value, high=CK_HIGH), fasciculation()])
    assert ("neurology-referral" in topics(result)) is (side != "below")
    assert ("abnormal-result" in topics(result)) is (side == "below")


@pytest.mark.parametrize("side", SIDES)
def test_abi_avoid_compression_below(side):
    limit = SETTINGS["abi_avoid_compression_below"]
    value = round({"below": limit - 0.01, "at": limit, "above": limit + 0.01}[side], 2)
    abi = observation("446841001", value, "{ratio}", system="snomed")
    result = run([patient(), *BASE, cramp(), abi])
    assert ("compression-caution" in topics(result)) is (side == "below")
    if side == "below":
        assert f"below {limit}" in card(result, "compression-caution")["summary"]


REGION_CODES = ["53840002", "68367000", "40983000", "85562004", "16982005"]  # calf, thigh, upper arm, hand, shoulder


@pytest.mark.parametrize("side", SIDES)
def test_florid_fasciculation_min_body_sites(side):
    count = SETTINGS["florid_fasciculation_min_body_sites"] + {"below": -1, "at": 0, "above": 1}[side]
    result = run([patient(), *BASE, fasciculation(body_sites=tuple(REGION_CODES[:count]))])
    assert ("neurology-referral" in topics(result)) is (side != "below")
    if side != "below":
        assert f"{count} different body regions" in card(result, "neurology-referral")["detail"]


@pytest.mark.parametrize("side", SIDES)
def test_persistent_symptom_months(side):
    edge = months_before(NOW, SETTINGS["persistent_symptom_months"])
    onset = {"below": edge + timedelta(days=1), "at": edge, "above": edge - timedelta(days=1)}[side]
    result = run([patient(), *BASE, fasciculation(onset=iso(onset))])
    assert ("treatment-options" in topics(result)) is (side == "above")


@pytest.mark.parametrize("side", SIDES)
def test_reassurance_repeat_window_days(side):
    days = SETTINGS["reassurance_repeat_window_days"] + {"below": -1, "at": 0, "above": 1}[side]
    given = NOW.date() - timedelta(days=days)
    reassurance = card(run([patient(), *BASE, fasciculation()], reassurance_given_on=given), "reassurance")
    reminder = given.isoformat() in reassurance["summary"]
    assert reminder is (side != "above")
    assert ("52%" in reassurance["detail"]) is (side == "above")


def _calcium_with_albumin(albumin_g_per_l: float, gap_days: float = 0):
    total = observation("2000-8", 2.10, "mmol/L", low=2.12, high=2.62, effective="2026-10-10T08:00:00Z")
    drawn = iso(NOW.replace(year=2026, month=10, day=10, hour=8) + timedelta(days=gap_days))
    albumin = observation("1751-7", albumin_g_per_l, "g/L", low=35, high=50, effective=drawn)
    return run([patient(), fasciculation(), *normal_workup(skip=("calcium",)), total, albumin])


@pytest.mark.parametrize("side", SIDES)
def test_albumin_reference_and_correction(side):
    """Corrected calcium = total + factor x (reference - albumin): albumin below the reference raises it."""
    reference, factor = SETTINGS["albumin_reference_g_per_l"], SETTINGS["albumin_correction_mmol_per_g"]
    albumin = reference + {"below": -5, "at": 0, "above": 5}[side]
    corrected = round(2.10 + factor * (reference - albumin), 2)
    result = _calcium_with_albumin(albumin)
    # 2.10 total: corrected 2.20 (normal) below the reference, 2.10 (low) at it, 2.00 (low) above it.
    assert ("abnormal-result" in topics(result)) is (corrected < 2.12)
    if corrected < 2.12:
        detail = card(result, "abnormal-result")["detail"]
        assert f"corrected for albumin {albumin} g/L: {corrected:.2f} mmol/L" in detail


@pytest.mark.parametrize("side", SIDES)
def test_albumin_max_gap_days(side):
    """An albumin this many days from the calcium corrects it (a low albumin makes a low total normal)."""
    days = SETTINGS["albumin_max_gap_days"] + {"below": -0.5, "at": 0, "above": 0.5}[side]
    result = _calcium_with_albumin(30, gap_days=days)
    assert ("abnormal-result" in topics(result)) is (side == "above")


@pytest.mark.parametrize("side", SIDES)
def test_thyroid_pair_max_gap_days(side):
    """A low TSH with a free T4 drawn within the gap is read as a pair (overt); beyond it, unpaired."""
    days = SETTINGS["thyroid_pair_max_gap_days"] + {"below": -1, "at": 0, "above": 1}[side]
    low_tsh = tsh(0.02, effective="2026-10-20T08:00:00Z")
    drawn = iso(NOW.replace(month=10, day=20, hour=8) - timedelta(days=days))
    free_t4 = observation("14920-3", 35, "pmol/L", low=12, high=22, effective=drawn)
    detail = card(run([patient(), fasciculation(), *normal_workup(skip=("tsh",)), low_tsh, free_t4]),
                  "abnormal-result")["detail"]
    assert ("overt hyperthyroidism" in detail) is (side != "above"), detail


def test_max_cards_is_the_most_one_chart_gets():
    """More cards due than the budget: exactly max_cards are shown, the actions and results among them; fewer
    due: all of them."""
    budget = SETTINGS["max_cards"]
    busy = [patient(), *normal_workup(skip=("ck",)), ck(600), cramp(), fasciculation(),
            observation("446841001", 0.5, "{ratio}", system="snomed"), medication_request(text="quinine 324 mg"),
            medication_request(text="cyclobenzaprine 10 mg"), medication_request(text="methylphenidate 10 mg"),
            condition("G24.5"), condition("G51.39"), condition("F45.21")]
    result = run(busy)
    assert card_count(apply_precedence(run_rules(result.view, K))) > budget  # due without the budget
    assert len(result.cards) == budget
    assert {"abnormal-result", "quinine-caution", "medication-review"} <= set(topics(result))
    few = run([patient(), *BASE, cramp()])
    assert 0 < len(few.cards) < budget

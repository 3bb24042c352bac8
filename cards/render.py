"""Locale-aware text lookup and the one-line rendering of data points ("why this card")."""
from __future__ import annotations

import re
from typing import Any, Mapping

from cards.knowledge_base import Knowledge
from cards.view import ActiveOrder, ClinicalFinding, DataGap, LabGap, LabResult, MedicationUse, Unreadable

_MARKDOWN_SPECIALS = re.compile(r"([\\`*_\[\]|#])")


class Texts:
    """texts.yaml seen through one locale."""

    def __init__(self, knowledge: Knowledge, locale: str) -> None:
        self.knowledge = knowledge
        self.locale = locale if locale in ("US", "UK") else "US"
        self._texts = knowledge.texts

    def get(self, *path: str) -> Any:
        node: Any = self._texts
        for key in path:
            node = node[key]
        return self.localise(node)

    def localise(self, node: Any) -> Any:
        if isinstance(node, dict) and set(node) == {"US", "UK"}:
            return node[self.locale]
        return node

    def fill(self, *path: str, **values: Any) -> str:
        return self.get(*path).format(**values)

    def topic(self, topic: str, *path: str) -> Any:
        return self.get("topics", topic, *path)

    def name(self, table: str, key: str) -> str:
        return self.localise(self._texts["names"][table].get(key, key))

    def unit(self, ucum: str) -> str:
        return self._texts["names"]["units"].get(ucum, ucum)

    def reference(self, ref_id: str) -> Mapping[str, str]:
        return self._texts["references"][ref_id]


def join_names(names: list[str]) -> str:
    """'a', 'a and b', 'a, b and c': a list as a card sentence says it."""
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def safe(text: Any) -> str:
    """Chart text made inert in markdown: no HTML, no emphasis or link syntax, one line."""
    value = " ".join(str(text).split())
    value = value.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return _MARKDOWN_SPECIALS.sub(r"\\\1", value)


def _round(value: float) -> float:
    """A bound converted back to the reported unit, to the precision laboratories print it with."""
    magnitude = abs(value)
    return round(value, 2 if magnitude < 10 else 1 if magnitude < 100 else 0)


def number(value: float, decimals: int | None = None) -> str:
    if decimals is not None:
        text = f"{value:.{decimals}f}"
    else:
        text = f"{value:.3f}".rstrip("0").rstrip(".")
    return text if text not in ("-0", "-0.0") else text.lstrip("-")


class DataPointRenderer:
    """Turns view items into the sentences of a card's "why" list."""

    def __init__(self, texts: Texts) -> None:
        self.texts = texts
        self.knowledge = texts.knowledge

    def render(self, item: Any, params: Mapping[str, Any] | None = None) -> str:
        params = params or {}
        if isinstance(item, LabResult):
            return self.lab(item, params)
        if isinstance(item, ClinicalFinding):
            return self.finding(item)
        if isinstance(item, MedicationUse):
            return self.medication(item)
        if isinstance(item, ActiveOrder):
            return self.order(item)
        if isinstance(item, LabGap):
            return self.gap(item)
        if isinstance(item, Unreadable):
            return self.unreadable(item)
        if isinstance(item, DataGap):
            return self.data_gap(item)
        return safe(item)

    def lab(self, result: LabResult, params: Mapping[str, Any]) -> str:
        """One result. US: the unit the laboratory reported first, SI second; UK: SI first (issue 13 item 14).
        A CK above the upper limit but at most 1.5x it is called a trivial rise, never listed as normal."""
        t = self.texts
        decimals = self.knowledge.analytes[result.analyte].decimals
        converted = result.original_unit is not None and result.original_unit != result.unit \
            and result.original_value not in (None, 0)
        reported_first = converted and t.locale == "US"
        if reported_first:
            scale = result.original_value / result.value if result.value else None
            value, unit, bound_decimals = result.original_value, result.original_unit, None
        else:
            scale, value, unit, bound_decimals = 1.0, result.value, result.unit, decimals
        line = t.fill("phrases", "lab", name=t.name("analytes", result.analyte),
                      value=(result.comparator or "") + number(value, None if reported_first else decimals),
                      unit=t.unit(unit), date=result.effective_text or t.get("phrases", "unknown_date")).replace("  ", " ")
        details = []
        if converted:
            other = (number(result.value, decimals), t.unit(result.unit)) if reported_first else \
                (number(result.original_value), t.unit(result.original_unit))
            details.append(t.fill("phrases", "lab_in_si" if reported_first else "lab_converted",
                                  original_value=other[0], original_unit=other[1]))
        reference = self._range(result, scale, bound_decimals) if scale else ""
        if reference:
            details.append(reference)
        if result.interpretation in ("low", "high"):
            details.append(t.fill("phrases", "lab_interpretation",
                                  flag=t.get("phrases", f"flag_{result.interpretation}")))
        if details:
            line += t.fill("phrases", "lab_details", details="; ".join(details))
        if result.preliminary:
            line += t.get("phrases", "lab_preliminary")
            if result.older_final is not None:
                line += t.fill("phrases", "lab_preliminary_newer", date=result.older_final.effective_text
                               or t.get("phrases", "unknown_date"))
        line += self._ck(result, params)
        if result.analyte == "calcium_total" and params.get("corrected") is not None:
            line += t.fill("phrases", "lab_corrected_calcium", albumin=number(params["albumin"], 0),
                           corrected=number(params["corrected"], 2))
        return line

    def short(self, result: LabResult) -> str:
        """"Potassium 3.1 mmol/L": the value only, in the unit the locale reads first."""
        t = self.texts
        decimals = self.knowledge.analytes[result.analyte].decimals
        reported = result.original_unit is not None and result.original_unit != result.unit and t.locale == "US"
        value = number(result.original_value) if reported else number(result.value, decimals)
        unit = t.unit(result.original_unit if reported else result.unit)
        return f"{t.name('analytes', result.analyte)} {(result.comparator or '')}{value} {unit}".rstrip()

    def _ck(self, result: LabResult, params: Mapping[str, Any]) -> str:
        if result.analyte != "ck" or not result.high or result.interpretation == "normal":
            return ""
        ratio = result.value / result.high
        if params.get("ratio") is not None or ratio > self.knowledge.thresholds.ck_abnormal_ratio_above:
            return self.texts.fill("phrases", "lab_ck_ratio", ratio=number(round(ratio, 1), 1))
        if result.direction == "high":  # above the limit, at most 1.5x: trivial (S4), said as such
            return self.texts.fill("phrases", "lab_ck_trivial", ratio=number(round(ratio, 1), 1))
        return ""

    def _range(self, result: LabResult, scale: float, decimals: int | None) -> str:
        t = self.texts

        def shown(bound: float | None) -> str | None:
            return None if bound is None else number(_round(bound * scale) if decimals is None else bound * scale,
                                                      decimals)

        low, high = shown(result.low), shown(result.high)
        if low is not None and high is not None:
            if result.range_filled:
                key = "lab_range_filled"
            elif result.range_sex:
                key = "lab_range_sex"
            else:
                key = "lab_range_default" if result.range_source == "default" else "lab_range"
            return t.fill("phrases", key, low=low, high=high, bound=t.get("phrases", f"bound_{result.range_filled}")
                          if result.range_filled else "", sex=t.get("phrases", f"sex_{result.range_sex}")
                          if result.range_sex else "")
        if low is not None:
            return t.fill("phrases", "lab_range_low_only", low=low)
        if high is not None:
            return t.fill("phrases", "lab_range_high_only", high=high)
        return ""

    def finding(self, finding: ClinicalFinding) -> str:
        t = self.texts
        name = safe(finding.display) if finding.display else t.name("concepts", finding.concept)
        if finding.onset_text:
            when = t.fill("phrases", "finding_onset", date=finding.onset_text)
        elif finding.recorded_text:
            when = t.fill("phrases", "finding_recorded", date=finding.recorded_text)
        else:
            when = t.get("phrases", "finding_undated")
        code = t.fill("phrases", "finding_code", system=t.name("systems", finding.system), code=safe(finding.code))
        line = t.fill("phrases", "finding", name=name, code=code, when=when)
        if finding.severity:
            line += t.fill("phrases", "finding_severity", severity=t.name("severity", finding.severity))
        if finding.body_site_labels:
            line += t.fill("phrases", "finding_sites", sites=", ".join(safe(s) for s in finding.body_site_labels))
        if finding.suspected:
            line += t.fill("phrases", "finding_suspected", status=finding.verification)
        return line

    def medication(self, medication: MedicationUse) -> str:
        t = self.texts
        line = t.fill("phrases", "medication", text=safe(medication.text), status=medication.status,
                      resource=medication.resource_type)
        if medication.started_text:
            line += t.fill("phrases", "medication_since", date=medication.started_text)
        if not medication.current and medication.ended_text:
            line += t.fill("phrases", "medication_stopped", date=medication.ended_text)
        if medication.prednisone_equivalent_mg is not None:
            phrase = "medication_dose" if medication.current else "medication_peak_dose"
            line += t.fill("phrases", phrase, dose=number(medication.prednisone_equivalent_mg, 0))
        return line

    def order(self, order: ActiveOrder) -> str:
        name = safe(order.display) if order.display else f"{order.system} {order.code}"
        return self.texts.fill("phrases", "order", name=name, reference=safe(order.evidence or "ServiceRequest"),
                               status=order.status)

    def unreadable(self, item: Unreadable) -> str:
        t = self.texts
        values = {"date": item.date_text or t.get("phrases", "unknown_date"), "reason": safe(item.reason),
                  "reference": safe(item.evidence or item.resource_type), "resource": item.resource_type}
        if item.kind == "lab" and item.subject in self.knowledge.analytes:
            line = t.fill("phrases", "unreadable_lab", name=t.name("analytes", item.subject), **values)
        elif item.subject in self.knowledge.concepts:
            line = t.fill("phrases", "unreadable_named", name=t.name("concepts", item.subject), **values)
        else:
            line = t.fill("phrases", "unreadable_other", **values)
        return line[:1].upper() + line[1:]

    def data_gap(self, gap: DataGap) -> str:
        key = "gap_incomplete" if gap.kind == "incomplete" else "gap_not_obtained"
        return self.texts.fill("phrases", key, what=self.texts.name("domains", gap.domain), detail=safe(gap.detail))

    def gap(self, gap: LabGap) -> str:
        return self.texts.fill("topics", "workup-incomplete", "status", "unusable",
                               test=self.texts.name("analytes", gap.analyte),
                               date=gap.effective_text or self.texts.get("phrases", "unknown_date"))

"""Card analytics for the clinical safety team: which cards clinicians accept and which they override.

    GET /analytics        one page a safety lead reads in a minute: totals, a daily chart, and one table
                          row per card kind (counts, acceptance and override rates, the outcome mix, a
                          daily sparkline, the top override reasons); server-rendered SVG, no script
    GET /analytics.json   the same numbers
    fasciculation-cds report   the same summary in a terminal (service/cli.py)

Counting is by cohort: the cards *shown* (issued) in the period, per card kind (service and
`source.topic` code), and of those the cards with an *accepted* or an *overridden* outcome, whenever
that feedback arrived. Acceptance rate = accepted / shown, override rate = overridden / shown. Each day
of a time series is the cards issued that day and what became of them. Feedback for cards the service
never issued, or accepting a suggestion the card never offered, is counted apart.

Access: `CDS_ADMIN_TOKEN` as a Bearer token (or as the password of HTTP Basic, so a browser can
ask for it). Production without a token configured refuses every request; development without
one serves the pages openly.
"""
from __future__ import annotations

import base64
import binascii
import hmac
import logging
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, time, timedelta
from typing import Any

import orjson
from flask import Blueprint, Flask, Response, current_app, render_template, request
from markupsafe import Markup, escape

from service.card_log import card_log, store_available
from service.config import Settings
from service.errors import CdsError
from service.runtime import runtime
from service.store import Store

log = logging.getLogger("service.analytics")
blueprint = Blueprint("analytics", __name__, template_folder="templates")

DEFAULT_DAYS = 30
MAX_DAYS = 365
PERIOD_CHOICES = (7, 30, 90, 365)
TOP_REASONS = 5
SERIES = ("shown", "accepted", "overridden")
# Paul Tol's colour-blind-safe "bright" scheme.
COLOURS = {"shown": "#4477AA", "accepted": "#228833", "overridden": "#EE6677"}
NO_FEEDBACK = "#DDDDDD"
_CHALLENGE = 'Bearer realm="fasciculation-cds analytics", Basic realm="fasciculation-cds analytics", charset="UTF-8"'
# The page loads nothing and runs nothing: inline styles and inline SVG only.
_PAGE_HEADERS = {
    "Cache-Control": "no-store",
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'; "
                               "base-uri 'none'; form-action 'self'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


def install_analytics(app: Flask, settings: Settings) -> None:
    app.register_blueprint(blueprint)
    app.extensions["fasciculation_cds_analytics"] = settings
    if settings.admin_token is None:
        if settings.mode == "production":
            log.warning("analytics refused until CDS_ADMIN_TOKEN is set", extra={"event": "analytics_disabled"})
        else:
            log.warning("DEVELOPMENT MODE: /analytics is open without a token", extra={"event": "analytics_open"})


# -- the report -----------------------------------------------------------------------------------

def build_report(store: Store, now: datetime, days: int = DEFAULT_DAYS) -> dict[str, Any]:
    """The numbers shown by the page, the JSON and the CLI report, for the `days` UTC days up to `now`."""
    today = now.astimezone(UTC).date()
    first = today - timedelta(days=days - 1)
    since = datetime.combine(first, time.min, UTC)
    until = datetime.combine(today + timedelta(days=1), time.min, UTC)
    counts = store.outcome_counts(since, until)
    day_keys = [(first + timedelta(days=offset)).isoformat() for offset in range(days)]

    kinds: dict[tuple[str, str | None], dict[str, Any]] = {}

    def kind(service: str, topic: str | None) -> dict[str, Any]:
        if (service, topic) not in kinds:
            kinds[(service, topic)] = {
                "service": service, "topic": topic, "display": topic or "(no topic)",
                "shown": 0, "accepted": 0, "overridden": 0, "reasons": [],
                "days": {day: dict.fromkeys(SERIES, 0) for day in day_keys}}
        return kinds[(service, topic)]

    for service, topic, display, day, cards in counts["shown"]:
        entry = kind(service, topic)
        entry["shown"] += cards
        entry["display"] = display or entry["display"]
        entry["days"][str(day)]["shown"] += cards
    for service, topic, day, outcome, cards in counts["outcomes"]:
        entry = kind(service, topic)
        entry[outcome] += cards
        entry["days"][str(day)][outcome] += cards
    for service, topic, reason_kind, system, code, display, cards in counts["reasons"]:
        kind(service, topic)["reasons"].append(_reason(reason_kind, system, code, display, cards))

    total_days = {day: dict.fromkeys(SERIES, 0) for day in day_keys}
    report_kinds = []
    for entry in sorted(kinds.values(), key=lambda k: (-k["shown"], k["service"], k["topic"] or "")):
        for day, values in entry["days"].items():
            for series in SERIES:
                total_days[day][series] += values[series]
        reasons = sorted(entry["reasons"], key=lambda r: (-r["count"], r["reason"]))[:TOP_REASONS]
        report_kinds.append({
            "service": entry["service"], "topic": entry["topic"], "display": entry["display"],
            **_counts(entry["shown"], entry["accepted"], entry["overridden"]),
            "topOverrideReasons": reasons,
            "series": [{"date": day, **values} for day, values in entry["days"].items()],
        })
    totals = _counts(*(sum(k[series] for k in report_kinds) for series in SERIES))
    return {
        "generatedAt": now.astimezone(UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z"),
        "period": {"from": first.isoformat(), "to": today.isoformat(), "days": days, "timezone": "UTC"},
        "totals": totals,
        "series": [{"date": day, **values} for day, values in total_days.items()],
        "kinds": report_kinds,
        "unknownCardFeedback": counts["unknown"][0][0],
        "unknownSuggestionFeedback": counts["unknown_suggestions"][0][0],
        "knowledgeVersions": sorted(str(v) for (v,) in counts["versions"] if v),
    }


def _counts(shown: int, accepted: int, overridden: int) -> dict[str, Any]:
    return {"shown": shown, "accepted": accepted, "overridden": overridden,
            "acceptanceRate": round(accepted / shown, 4) if shown else None,
            "overrideRate": round(overridden / shown, 4) if shown else None}


def _reason(reason_kind: str, system: str | None, code: str | None, display: str | None, cards: int) -> dict[str, Any]:
    if reason_kind == "coded":
        return {"reason": display or code, "system": system, "code": code, "count": cards}
    label = "free-text comment only" if reason_kind == "comment" else "no reason given"
    return {"reason": label, "system": None, "code": None, "count": cards}


def kind_id(entry: Mapping[str, Any]) -> str:
    """A stable identifier for a card kind, used in the page's element attributes."""
    return f"{entry['service']}/{entry['topic'] or '-'}"


# -- the endpoints --------------------------------------------------------------------------------

@blueprint.get("/analytics")
def analytics_page() -> Response:
    report = _authorized_report()
    html = render_template(
        "analytics.html", report=report, kind_id=kind_id, percent=percent, colours=COLOURS,
        period_choices=PERIOD_CHOICES, generated=report["generatedAt"].replace("T", " ").replace("Z", " UTC"),
        several_services=len({k["service"] for k in report["kinds"]}) > 1,
        total_chart=time_series_svg(report["series"], "all", "All card kinds, by day issued"),
        mixes={kind_id(k): outcome_mix_svg(k) for k in report["kinds"]},
        sparklines={kind_id(k): sparkline_svg(k) for k in report["kinds"]})
    return Response(html, mimetype="text/html", headers=_PAGE_HEADERS)


@blueprint.get("/analytics.json")
def analytics_json() -> Response:
    report = _authorized_report()
    return Response(orjson.dumps(report), mimetype="application/json", headers={"Cache-Control": "no-store"})


def _authorized_report() -> dict[str, Any]:
    _authorize(current_app.extensions["fasciculation_cds_analytics"])
    days = _days(request.args.get("days"))
    with store_available("analytics"):
        return build_report(card_log().store, runtime().clock(), days)


def _authorize(settings: Settings) -> None:
    token = settings.admin_token
    if token is None:
        if settings.mode == "production":
            raise CdsError.single(403, "Analytics is turned off: set CDS_ADMIN_TOKEN to use it in production.",
                                  code="forbidden")
        return
    supplied = _credential(request.headers.get("Authorization", ""))
    if supplied is None or not hmac.compare_digest(supplied.encode(), token.encode()):
        log.warning("analytics refused", extra={"event": "analytics_refused", "credential_sent": supplied is not None})
        raise CdsError.single(401, "Analytics needs the admin token: Authorization: Bearer <CDS_ADMIN_TOKEN>.",
                              code="login", headers={"WWW-Authenticate": _CHALLENGE})


def _credential(authorization: str) -> str | None:
    scheme, _, value = authorization.strip().partition(" ")
    value = value.strip()
    if scheme.lower() == "bearer" and value:
        return value
    if scheme.lower() == "basic" and value:
        try:
            decoded = base64.b64decode(value, validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            return None
        return decoded.partition(":")[2] or None  # any user name; the token is the password
    return None


def _days(raw: str | None) -> int:
    if raw is None:
        return DEFAULT_DAYS
    # ASCII digits only: str.isdigit() also takes "²", which int() refuses.
    if not (raw.isascii() and raw.isdigit()) or not 1 <= int(raw) <= MAX_DAYS:
        raise CdsError.single(400, f"days must be a whole number from 1 to {MAX_DAYS}.", expression=["days"])
    return int(raw)


def percent(rate: float | None) -> str:
    return "–" if rate is None else f"{rate * 100:.1f}%"


# -- charts: inline SVG, drawn here ----------------------------------------------------------------

_FONT = 'font-family="system-ui, sans-serif" font-size="12"'


def outcome_mix_svg(kind: Mapping[str, Any]) -> Markup:
    """One bar, the width of the cell: of the cards shown, the share accepted, overridden and without feedback.

    A card reported both ways counts in both, so the shares are scaled to fit when they add up to more.
    """
    width, height = 110, 12
    shown = kind["shown"]
    outcomes = [("accepted", kind["accepted"]), ("overridden", kind["overridden"])]
    silent = max(shown - kind["accepted"] - kind["overridden"], 0)
    total = max(shown, kind["accepted"] + kind["overridden"], 1)
    key = escape(kind_id(kind))
    title = escape(f"{kind['display']}: of {shown} shown, {kind['accepted']} accepted, {kind['overridden']} "
                   f"overridden, {silent} without feedback")
    parts = [f'<svg class="mix" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" width="{width}" '
             f'height="{height}" role="img" data-kind="{key}"><title>{title}</title>',
             f'<rect x="0" y="0" width="{width}" height="{height}" fill="{NO_FEEDBACK}"/>']
    x = 0.0
    for series, count in outcomes:
        length = width * count / total
        parts.append(f'<rect class="mix-{series}" x="{x:.2f}" y="0" width="{length:.2f}" height="{height}" '
                     f'fill="{COLOURS[series]}" data-series="{series}" data-count="{count}"/>')
        x += length
    parts.append("</svg>")
    return Markup("".join(parts))


def sparkline_svg(kind: Mapping[str, Any]) -> Markup:
    """Cards shown per day issued (a filled area) and, of them, overridden (a red line), on one scale."""
    width, height, pad = 130, 26, 2
    series = kind["series"]
    largest = max([point["shown"] for point in series] + [1])
    step = (width - 2 * pad) / max(len(series) - 1, 1)

    def xy(index: int, value: int) -> str:
        return f"{pad + step * index:.1f},{height - pad - (height - 2 * pad) * value / largest:.1f}"

    shown = " ".join(xy(i, point["shown"]) for i, point in enumerate(series))
    overridden = " ".join(xy(i, point["overridden"]) for i, point in enumerate(series))
    baseline = height - pad
    key = escape(kind_id(kind))
    title = escape(f"{kind['display']}: cards shown per day ({series[0]['date']} to {series[-1]['date']}, "
                   f"most {largest}) and how many of them were overridden")
    return Markup(
        f'<svg class="spark" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" width="{width}" '
        f'height="{height}" role="img" data-kind="{key}" data-largest="{largest}"><title>{title}</title>'
        f'<line x1="{pad}" x2="{width - pad}" y1="{baseline}" y2="{baseline}" stroke="#ccc"/>'
        f'<polygon class="spark-shown" points="{pad},{baseline} {shown} {width - pad:.1f},{baseline}" '
        f'fill="{COLOURS["shown"]}" fill-opacity="0.35" stroke="{COLOURS["shown"]}" stroke-width="1"/>'
        f'<polyline class="spark-overridden" points="{overridden}" fill="none" stroke="{COLOURS["overridden"]}" '
        f'stroke-width="1.5"/></svg>')


def time_series_svg(series: Sequence[Mapping[str, Any]], key: str, title: str) -> Markup:
    """Per day: cards shown as columns, accepted (solid) and overridden (dashed) as lines; a marker per value."""
    width, height = 760, 210
    left, right, top, bottom = 44, 16, 30, 30
    plot_w, plot_h = width - left - right, height - top - bottom
    largest = max([point[s] for point in series for s in SERIES] + [1])
    ceiling = _axis_ceiling(largest)
    slot = plot_w / len(series)
    ident = escape(_slug(key))

    def x(index: int) -> float:
        return left + slot * (index + 0.5)

    def y(value: int) -> float:
        return top + plot_h - plot_h * value / ceiling

    parts = [f'<svg id="series-{ident}" class="chart series" xmlns="http://www.w3.org/2000/svg" '
             f'viewBox="0 0 {width} {height}" width="{width}" height="{height}" role="img" '
             f'aria-labelledby="series-{ident}-title" data-kind="{escape(key)}" {_FONT}>',
             f'<title id="series-{ident}-title">{escape(title)}</title>', _legend(left, 12)]
    for tick in sorted({0, ceiling // 2, ceiling}):
        parts.append(f'<line x1="{left}" x2="{width - right}" y1="{y(tick):.1f}" y2="{y(tick):.1f}" stroke="#ddd"/>')
        parts.append(f'<text x="{left - 6}" y="{y(tick) + 4:.1f}" text-anchor="end" fill="#555">{tick}</text>')
    for index in sorted({0, (len(series) - 1) // 2, len(series) - 1}):
        anchor = "start" if index == 0 and len(series) > 1 else "end" if index == len(series) - 1 else "middle"
        at = left if anchor == "start" else width - right if anchor == "end" else x(index)
        parts.append(f'<text x="{at:.1f}" y="{height - 10}" text-anchor="{anchor}" fill="#555">'
                     f'{escape(series[index]["date"])}</text>')
    column = max(slot * 0.6, 1.0)
    for index, point in enumerate(series):
        parts.append(f'<rect class="column" x="{x(index) - column / 2:.1f}" y="{y(point["shown"]):.1f}" '
                     f'width="{column:.1f}" height="{y(0) - y(point["shown"]):.1f}" fill="{COLOURS["shown"]}" '
                     f'fill-opacity="0.35" data-date="{escape(point["date"])}" data-count="{point["shown"]}"/>')
    for name in ("accepted", "overridden"):
        points = " ".join(f"{x(i):.1f},{y(point[name]):.1f}" for i, point in enumerate(series))
        dashes = ' stroke-dasharray="6 3"' if name == "overridden" else ""
        parts.append(f'<polyline class="line line-{name}" points="{points}" fill="none" stroke="{COLOURS[name]}" '
                     f'stroke-width="2"{dashes} data-series="{name}"/>')
    for name in SERIES:
        for index, point in enumerate(series):
            tooltip = escape(f"{point['date']}: {point[name]} {name}")
            parts.append(f'<circle class="point point-{name}" cx="{x(index):.1f}" cy="{y(point[name]):.1f}" r="3" '
                         f'fill="{COLOURS[name]}" data-series="{name}" data-date="{escape(point["date"])}" '
                         f'data-count="{point[name]}"><title>{tooltip}</title></circle>')
    parts.append("</svg>")
    return Markup("".join(parts))


def _legend(x: int, y: int) -> str:
    items = []
    for offset, name in enumerate(SERIES):
        left = x + offset * 110
        items.append(f'<rect x="{left}" y="{y - 9}" width="10" height="10" fill="{COLOURS[name]}"/>'
                     f'<text x="{left + 14}" y="{y}" fill="#222">{name}</text>')
    return f'<g class="legend">{"".join(items)}</g>'


def _axis_ceiling(value: int) -> int:
    """The y-axis top: the value itself when small, else a round number; even, so its half is whole."""
    if value <= 2:
        return value
    if value <= 10:
        return value + value % 2
    step = 10 ** (len(str(value)) - 1)
    return next(step * multiple for multiple in (2, 4, 6, 8, 10) if step * multiple >= value)


def _slug(text: str) -> str:
    return "".join(char if char.isalnum() else "-" for char in text)

"""`fasciculation-cds`: run the service, or evaluate one request or patient Bundle offline."""
from __future__ import annotations

import argparse
import ipaddress
import os
import secrets
import sys
import textwrap
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from service.config import ConfigError, Settings

EXIT_USAGE = 2  # bad input or configuration
EXIT_UNAVAILABLE = 3  # the request was valid but data could not be obtained (412)


class CliError(Exception):
    def __init__(self, message: str, exit_code: int = EXIT_USAGE):
        super().__init__(message)
        self.exit_code = exit_code


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        return args.run(args)
    except (CliError, ConfigError) as error:
        print(f"fasciculation-cds: {error}", file=sys.stderr)
        return getattr(error, "exit_code", EXIT_USAGE)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="fasciculation-cds", description=__doc__)
    commands = parser.add_subparsers(required=True, metavar="COMMAND")

    serve = commands.add_parser("serve", help="run the CDS Hooks service (gunicorn)")
    serve.add_argument("--host", help="address to bind (default: CDS_HOST, else 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port to bind (default: CDS_PORT, else 8080)")
    serve.add_argument("--dev", action="store_true", help="Flask development server with the reloader")
    serve.set_defaults(run=_serve)

    evaluate = commands.add_parser(
        "evaluate", help="print the cards for a CDS Hooks request or a FHIR Bundle of one patient")
    evaluate.add_argument("file", type=Path)
    evaluate.add_argument("--json", action="store_true", help="print the raw CDS Hooks response")
    evaluate.add_argument("--as-of", type=_instant, help="evaluate as of this date or instant (default now)")
    evaluate.add_argument("--service", help="service id for a request file (default: the one for its hook)")
    evaluate.add_argument("--explain", action="store_true",
                          help="instead of cards, list every resource as used, ignored (why) or unreadable (why)")
    evaluate.set_defaults(run=_evaluate)

    database = commands.add_parser("db", help="the card log and feedback database (DATABASE_URL)")
    database_commands = database.add_subparsers(required=True, metavar="ACTION")
    database_commands.add_parser("upgrade", help="apply the schema migrations").set_defaults(run=_db_upgrade)
    database_commands.add_parser("status", help="show the schema revision; exit 1 unless current").set_defaults(
        run=_db_status)

    report = commands.add_parser("report", help="print card outcomes per card kind (as GET /analytics)")
    report.add_argument("--days", type=_report_days, default=30, metavar="N",
                        help="UTC days up to today (1-365, default 30)")
    report.add_argument("--json", action="store_true", help="print the same numbers as /analytics.json")
    report.set_defaults(run=_report)

    commands.add_parser("openapi", help="print the OpenAPI document (as GET /openapi.json; docs/openapi.json)"
                        ).set_defaults(run=_openapi)
    return parser


def _openapi(args: argparse.Namespace) -> int:  # noqa: ARG001
    from service.openapi import document_text
    sys.stdout.write(document_text())
    return 0


def _instant(text: str) -> datetime:
    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an ISO date or date-time") from None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


# -- serve ---------------------------------------------------------------------------------

def _serve(args: argparse.Namespace) -> int:
    settings = Settings.from_env()
    host, port = args.host or settings.host, args.port or settings.port
    if settings.mode == "development" and not _is_loopback(host):
        raise CliError(f"refusing to listen on {host} in development mode, which serves unsigned calls; "
                       "set CDS_MODE=production with trusted clients (docs/security.md)")
    from service import create_app
    app = create_app(settings)  # fail here, with the reason, rather than in every worker
    if args.dev:
        app.run(host=host, port=port, debug=True, use_reloader=True)
        return 0
    os.execv(sys.executable, [
        sys.executable, "-m", "gunicorn",
        "--config", "python:service.gunicorn_conf",
        "--bind", f"[{host.strip('[]')}]:{port}" if ":" in host else f"{host}:{port}",
        "service.wsgi:app",
    ])
    return 0  # not reached


def _is_loopback(host: str) -> bool:
    if host.strip("[]") == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


# -- evaluate ------------------------------------------------------------------------------

def _evaluate(args: argparse.Namespace) -> int:
    if args.explain:
        return _explain(args)
    document = _read_json(args.file)
    as_of = args.as_of or datetime.now(UTC)
    # The cards are the output here; the service's per-call log lines would only bury them.
    # A local tool posting through the test client has no JWT to send, whatever CDS_MODE says.
    # Nor is an offline evaluation a card shown to anyone: keep it out of the card log.
    settings = Settings.from_env({**os.environ, "CDS_MODE": "development", "CDS_LOG_LEVEL": "ERROR",
                                  "DATABASE_URL": "sqlite://", "CDS_PATIENT_KEY_SECRET": secrets.token_hex(32)})
    if document.get("resourceType") == "Bundle":
        response = _evaluate_bundle(document, as_of, settings)
    elif "hook" in document:
        response = _evaluate_request(document, as_of, settings, args.service)
    else:
        raise CliError(f"{args.file}: neither a CDS Hooks request (no 'hook') nor a FHIR Bundle")
    if args.json:
        print(orjson.dumps(response, option=orjson.OPT_INDENT_2).decode())
    else:
        print(render_cards(response["cards"], as_of))
    return 0


def _explain(args: argparse.Namespace) -> int:
    """The data-quality report (cards/chart/explain.py) for a request's prefetch or a patient Bundle."""
    from cards.chart.explain import explain, render
    from service.fhir_client import bundle_resources

    document = _read_json(args.file)
    as_of = args.as_of or datetime.now(UTC)
    if document.get("resourceType") == "Bundle":
        resources = [(None, resource) for resource in bundle_resources(document)]
        patients = [r for _, r in resources if r.get("resourceType") == "Patient"]
        if len(patients) != 1 or not isinstance(patients[0].get("id"), str):
            raise CliError("a patient Bundle must hold exactly one Patient with an id")
        patient_id = patients[0]["id"]
    elif "hook" in document:
        patient_id = (document.get("context") or {}).get("patientId")
        if not isinstance(patient_id, str) or not patient_id:
            raise CliError(f"{args.file}: the request has no context.patientId")
        resources = [(key, resource) for key, value in (document.get("prefetch") or {}).items()
                     if isinstance(value, dict)
                     for resource in (bundle_resources(value) if value.get("resourceType") == "Bundle" else [value])]
    else:
        raise CliError(f"{args.file}: neither a CDS Hooks request (no 'hook') nor a FHIR Bundle")
    entries = explain(resources, patient_id=patient_id, now=as_of)
    if args.json:
        print(orjson.dumps({"patient": patient_id, "asOf": as_of.isoformat(),
                            "resources": [entry.as_json() for entry in entries]}, option=orjson.OPT_INDENT_2).decode())
    else:
        print(render(entries, patient_id=patient_id, now=as_of))
    return 0


def _read_json(path: Path) -> dict[str, Any]:
    try:
        document = orjson.loads(path.read_bytes())
    except OSError as error:
        raise CliError(f"{path}: {error.strerror or error}") from None
    except orjson.JSONDecodeError as error:
        raise CliError(f"{path}: not valid JSON ({error})") from None
    if not isinstance(document, dict):
        raise CliError(f"{path}: expected a JSON object")
    return document


def _evaluate_bundle(bundle: dict[str, Any], as_of: datetime, settings: Settings) -> dict[str, Any]:
    from hooks.declaration import HookCall
    from hooks.registry import ALL_SERVICES
    from service.fhir_client import bundle_resources

    resources = bundle_resources(bundle)
    patients = [r for r in resources if r.get("resourceType") == "Patient"]
    if len(patients) != 1 or not isinstance(patients[0].get("id"), str):
        raise CliError("a patient Bundle must hold exactly one Patient with an id")
    patient_id = patients[0]["id"]
    service = next(s for s in ALL_SERVICES if s.hook == "patient-view")
    call = HookCall(hook_instance="cli-evaluate", context={"patientId": patient_id, "userId": "Practitioner/cli"},
                    data={"bundle": resources}, now=as_of, locale=settings.locale)
    return {"cards": service.handler(call).cards}


def _evaluate_request(document: dict[str, Any], as_of: datetime, settings: Settings,
                      service_id: str | None) -> dict[str, Any]:
    from service import create_app
    app = create_app(settings, clock=lambda: as_of)
    services = app.extensions["fasciculation_cds"].services
    if service_id is None:
        matching = [s.id for s in services.values() if s.hook == document.get("hook")]
        if not matching:
            raise CliError(f"no service answers the hook {document.get('hook')!r}")
        service_id = matching[0]
    response = app.test_client().post(f"/cds-services/{service_id}", json=document)
    body = response.get_json(silent=True) or {}
    if response.status_code != 200:
        problems = "; ".join(issue.get("diagnostics", "") for issue in body.get("issue", []))
        raise CliError(f"HTTP {response.status_code}: {problems}",
                       EXIT_UNAVAILABLE if response.status_code == 412 else EXIT_USAGE)
    return body


def render_cards(cards: list[dict[str, Any]], as_of: datetime) -> str:
    if not cards:
        return f"No cards (as of {as_of.isoformat()})."
    blocks = [f"{len(cards)} card{'s' if len(cards) != 1 else ''} (as of {as_of.isoformat()})"]
    for card in cards:
        source = card["source"]
        topic = source.get("topic", {}).get("code", "-")
        lines = [f"[{card['indicator'].upper()}] {card['summary']}",
                 f"  topic: {topic}   source: {source['label']}"]
        if card.get("detail"):
            lines.append(textwrap.indent(card["detail"].strip(), "  | "))
        if card.get("suggestions"):
            lines.append(f"  suggestions ({card['selectionBehavior']}):")
            lines.extend(f"    - {suggestion['label']}" for suggestion in card["suggestions"])
        for link in card.get("links", []):
            lines.append(f"  link: {link['label']} <{link['url']}>")
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks)


# -- db, report ----------------------------------------------------------------------------

def _db_upgrade(args: argparse.Namespace) -> int:
    from service.store import StoreError, upgrade_schema
    settings = Settings.from_env()
    try:
        target, before, after = upgrade_schema(settings)
    except StoreError as error:
        raise CliError(f"cannot migrate the database: {_store_error(error)}") from None
    where = target.describe()
    print(f"{where}: already at {after}" if before == after else f"{where}: upgraded {before or 'empty'} -> {after}")
    return 0


def _db_status(args: argparse.Namespace) -> int:
    from service.store import StoreError, schema_problem, schema_status
    settings = Settings.from_env()
    try:
        target, current, head = schema_status(settings)
    except StoreError as error:
        raise CliError(f"cannot read the database: {_store_error(error)}") from None
    if current == head:
        print(f"{target.describe()}: at {head} (current)")
        return 0
    print(f"{target.describe()}: {schema_problem(current, head)}")
    return 1


def _report(args: argparse.Namespace) -> int:
    from service.analytics import build_report
    from service.store import StoreError, open_store
    settings = Settings.from_env()
    store = open_store(settings)
    try:
        report = build_report(store, datetime.now(UTC), args.days)
    except StoreError as error:
        raise CliError(f"cannot read the database: {_store_error(error)}") from None
    finally:
        store.close()
    print(orjson.dumps(report, option=orjson.OPT_INDENT_2).decode() if args.json else render_report(report))
    return 0


def _report_days(text: str) -> int:
    if not text.isdigit() or not 1 <= int(text) <= 365:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of days from 1 to 365")
    return int(text)


def _store_error(error: Exception) -> str:
    return " ".join(str(getattr(error, "orig", None) or error).split())[:300]


_SPARKS = "▁▂▃▄▅▆▇█"


def render_report(report: dict[str, Any]) -> str:
    period = report["period"]
    lines = [f"Card outcomes for cards issued {period['from']} to {period['to']} ({period['days']} UTC days)"]
    if report["knowledgeVersions"]:
        lines[0] += f", knowledge {', '.join(report['knowledgeVersions'])}"
    header = f"{'card kind':<34} {'shown':>7} {'accepted':>9} {'overridden':>11} {'accept %':>9}"
    lines += ["", header, "-" * len(header)]
    for kind in [*report["kinds"], {"display": "all kinds", **report["totals"], "series": report["series"]}]:
        rate = "-" if kind["acceptanceRate"] is None else f"{kind['acceptanceRate'] * 100:.1f}%"
        name = kind["display"] if len(kind["display"]) <= 34 else kind["display"][:33] + "…"
        lines.append(f"{name:<34} {kind['shown']:>7} {kind['accepted']:>9} {kind['overridden']:>11} {rate:>9}")
        lines.append(f"  shown per day  {_sparkline([day['shown'] for day in kind['series']])}")
        for reason in kind.get("topOverrideReasons", []):
            lines.append(f"  overridden: {reason['reason']} ({reason['count']})")
    if not report["kinds"]:
        lines.append("(no cards were issued in this period)")
    if report["unknownCardFeedback"]:
        lines += ["", f"Feedback naming a card this service never issued: {report['unknownCardFeedback']}"]
    return "\n".join(lines)


def _sparkline(values: list[int]) -> str:
    top = max(values, default=0)
    if not top:
        return _SPARKS[0] * len(values)
    return "".join(_SPARKS[min(len(_SPARKS) - 1, round(value / top * (len(_SPARKS) - 1)))] for value in values)


if __name__ == "__main__":
    sys.exit(main())

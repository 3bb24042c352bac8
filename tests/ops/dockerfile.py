"""A small Dockerfile reader: stages, instructions, and the final image's ENV, CMD, USER and more.

Enough for this repository's Dockerfile (exec-form CMD/HEALTHCHECK, `ENV k=v ...`, `\\`
continuations), so the tests check the file that is built rather than a copy of it.
"""
from __future__ import annotations

import json
import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class Stage:
    base: str
    name: str | None
    instructions: list[tuple[str, str]] = field(default_factory=list)

    def all(self, keyword: str) -> list[str]:
        return [args for word, args in self.instructions if word == keyword]

    def last(self, keyword: str) -> str | None:
        found = self.all(keyword)
        return found[-1] if found else None

    def env(self, args: dict[str, str] | None = None) -> dict[str, str]:
        values: dict[str, str] = {}
        for line in self.all("ENV"):
            for item in shlex.split(line):
                name, _, value = item.partition("=")
                values[name] = _expand(value, {**(args or {}), **values})
        return values

    def exec_form(self, keyword: str) -> list[str]:
        """The JSON (exec) form of CMD / ENTRYPOINT, or of HEALTHCHECK's CMD."""
        text = self.last(keyword) or ""
        if keyword == "HEALTHCHECK":
            text = text[text.index("CMD") + 3:]
        return json.loads(text)


@dataclass
class Dockerfile:
    args: dict[str, str]  # ARGs before the first FROM, with their defaults
    stages: list[Stage]

    @property
    def final(self) -> Stage:
        return self.stages[-1]


def logical_lines(text: str) -> list[str]:
    lines, current = [], ""
    for raw in text.splitlines():
        stripped = raw.strip()
        if not current and (not stripped or stripped.startswith("#")):
            continue
        if current and stripped.startswith("#"):
            continue  # a comment inside a continued instruction
        if stripped.endswith("\\"):
            current += stripped[:-1] + " "
            continue
        lines.append(current + stripped)
        current = ""
    if current:
        lines.append(current)
    return lines


def parse(path: Path) -> Dockerfile:
    args: dict[str, str] = {}
    stages: list[Stage] = []
    for line in logical_lines(path.read_text()):
        keyword, _, rest = line.partition(" ")
        keyword = keyword.upper()
        rest = rest.strip()
        if keyword == "FROM":
            parts = rest.split()
            base = _expand(parts[0], args)
            name = parts[2] if len(parts) >= 3 and parts[1].upper() == "AS" else None
            stages.append(Stage(base, name))
        elif not stages and keyword == "ARG":
            name, _, default = rest.partition("=")
            args[name] = default
        elif stages:
            stages[-1].instructions.append((keyword, rest))
    return Dockerfile(args, stages)


def _expand(value: str, variables: dict[str, str]) -> str:
    return re.sub(r"\$\{?(\w+)\}?", lambda match: variables.get(match.group(1), match.group(0)), value)


def header_command(path: Path, program: str) -> list[str]:
    """The example command the Dockerfile's header comment gives (`#   docker run ... \\`), as argv."""
    lines, taking = [], False
    for raw in path.read_text().splitlines():
        if not raw.startswith("#"):
            break
        text = raw.lstrip("#").strip()
        if text.startswith(f"docker {program} "):
            taking = True
        if taking:
            lines.append(text.removesuffix("\\").strip())
            if not text.endswith("\\"):
                break
    assert lines, f"the Dockerfile's header shows no `docker {program}` command"
    return shlex.split(" ".join(lines))

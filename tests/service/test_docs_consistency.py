"""The README's examples must keep working: every file it names exists."""
import re
from pathlib import Path

ROOT = Path(__file__).parents[2]


def test_every_repository_path_in_the_readme_exists():
    readme = (ROOT / "README.md").read_text()
    paths = set(re.findall(r"(?<![\w/.-])((?:fixtures|docs|deploy|scripts|tests|bench)/[\w./-]+\.\w+)", readme))
    assert paths, "the README should point at real files"
    missing = sorted(path for path in paths if not (ROOT / path).exists())
    assert not missing, f"README names files that do not exist: {missing}"

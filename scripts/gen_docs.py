"""Write docs/rules/NPxxx.md for every registered rule, and docs/rules/README.md as their index.

The pages come from the rule docstrings through `nnprobe.core.docs`, the same text `nnprobe rule`
prints. `--check` writes nothing and exits 1 naming every page that is stale, missing or extra,
which is how CI notices a docstring changed without its page.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

from nnprobe.core.docs import expected_pages

DOCS_DIR = Path(__file__).resolve().parent.parent / "docs" / "rules"
_GENERATED = re.compile(r"NP\d{3}\.md|README\.md")


def differences(directory: Path) -> list[str]:
    expected = expected_pages()
    present = {p.name for p in directory.glob("*.md")} if directory.is_dir() else set()
    problems = []
    for name, text in sorted(expected.items()):
        if name not in present:
            problems.append(f"missing: {directory / name}")
        elif (directory / name).read_text(encoding="utf-8") != text:
            problems.append(f"stale: {directory / name}")
    for name in sorted(present - set(expected)):
        if _GENERATED.fullmatch(name):
            problems.append(f"extra: {directory / name} (no registered rule has this code)")
    return problems


def write(directory: Path) -> list[str]:
    directory.mkdir(parents=True, exist_ok=True)
    expected = expected_pages()
    changed = []
    for name, text in sorted(expected.items()):
        path = directory / name
        if not path.is_file() or path.read_text(encoding="utf-8") != text:
            path.write_text(text, encoding="utf-8", newline="\n")
            changed.append(f"wrote: {path}")
    for path in sorted(directory.glob("*.md")):
        if path.name not in expected and _GENERATED.fullmatch(path.name):
            path.unlink()
            changed.append(f"removed: {path}")
    return changed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--check", action="store_true", help="report differences, write nothing")
    parser.add_argument("--dir", type=Path, default=DOCS_DIR, help="default: docs/rules")
    args = parser.parse_args(argv)
    if args.check:
        problems = differences(args.dir)
        for problem in problems:
            print(problem)
        if problems:
            print("run `python scripts/gen_docs.py` to regenerate the rule pages", file=sys.stderr)
        return 1 if problems else 0
    for line in write(args.dir):
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())

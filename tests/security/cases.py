"""Every hostile input nnprobe is tried on, collected in one place for tests/security/
test_corpus_all.py and bench/security_bench.py.

The inputs are corpus.CORPUS and the CASES list of each tests/security/corpus_*.py module, found
by glob so that a new module joins without being named here, plus (for the bench) the damaged
files of tests/robustness/corrupt_corpus.py. A case whose name starts with "trusted-" is meant for
a trusted run (what the trusted import may and may not evaluate); every other case is run
untrusted as well as trusted.
"""

from __future__ import annotations

import importlib
import os
import signal
import subprocess
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path

from corpus import CORPUS, Hostile

SECURITY = Path(__file__).resolve().parent
TESTS = SECURITY.parent


@dataclass(frozen=True)
class Entry:
    source: str  # the module the case came from: corpus, corpus_shadowing, corrupt, ...
    case: Hostile

    @property
    def name(self) -> str:
        return self.case.name

    @property
    def trusted_only(self) -> bool:
        return self.case.name.startswith("trusted-")


def corpus_modules() -> list[str]:
    """The names of the tests/security/corpus_*.py modules, sorted."""
    return sorted(path.stem for path in SECURITY.glob("corpus_*.py"))


def hostile(strict: bool = True) -> tuple[list[Entry], dict[str, str]]:
    """CORPUS then each module's CASES, names made unique, and {module: error} for the modules
    that failed to import or hold no CASES list (raised instead when `strict`)."""
    entries = [Entry("corpus", case) for case in CORPUS]
    broken: dict[str, str] = {}
    for module_name in corpus_modules():
        try:
            module = importlib.import_module(module_name)
            cases = module.CASES
            if not isinstance(cases, list | tuple):
                raise TypeError(f"{module_name}.CASES is a {type(cases).__name__}, not a list")
        except Exception as exc:
            if strict:
                raise
            broken[module_name] = f"{type(exc).__name__}: {exc}"
            continue
        entries.extend(Entry(module_name, case) for case in cases)
    seen: dict[str, int] = {}
    unique = []
    for entry in entries:
        count = seen.get(entry.name, 0) + 1
        seen[entry.name] = count
        if count > 1:  # two modules chose the same name: keep both, told apart
            entry = Entry(entry.source, replace(entry.case, name=f"{entry.name}#{count}"))
        unique.append(entry)
    return unique, broken


def _writer(name: str, data: bytes) -> Callable[[Path, Path], Path]:
    def build(folder: Path, sentinel: Path) -> Path:
        path = folder / name
        path.write_bytes(data)
        return path

    return build


def corrupt(folder: Path) -> list[Entry]:
    """The robustness corpus's damaged files (each written alone into the case's folder); the good
    files they come from are written by their real writers under `folder` (a few seconds)."""
    for extra in (TESTS, TESTS / "robustness"):
        if str(extra) not in sys.path:
            sys.path.insert(0, str(extra))
    import corrupt_corpus

    variants = corrupt_corpus.variants(corrupt_corpus.good_files(folder))
    return [
        Entry(
            "corrupt",
            Hostile(f"corrupt-{v.good.kind}-{v.label}", "", "", _writer(v.name, v.data)),
        )
        for v in variants
    ]


def clean_env(folder: Path, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """This environment without NNPROBE_* and PYTHONPATH, nnprobe's cache in `folder`/cache, then
    `extra` (a case's own variables)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("NNPROBE_", "PYTHONPATH"))}
    env["NNPROBE_CACHE_DIR"] = str(folder / "cache")
    env.update(extra or {})
    return env


def run_in_session(
    command: list[str], cwd: Path, env: Mapping[str, str], timeout: float
) -> tuple[subprocess.CompletedProcess[str], bool]:
    """(the run, whether it timed out) of `command` in a session of its own, stdin closed and its
    output captured as text; past `timeout` its whole process group (a worker it started too)
    is killed and what it had written is returned."""
    process = subprocess.Popen(
        command,
        cwd=cwd,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        stdout, stderr = process.communicate(timeout=timeout)
        timed_out = False
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        stdout, stderr = process.communicate()
        timed_out = True
    return subprocess.CompletedProcess(command, process.returncode, stdout, stderr), timed_out

"""What a process tree changes on disk, as the kernel saw it: strace's record of every successful
file-creating, -writing, -renaming or -removing system call, whichever code made it.

An audit hook (test_audit_io.py's) sees only what Python code opens; a native library writes past
it: ONNX Runtime's telemetry wrote ~/.cache/Microsoft/DeveloperTools/.onnxruntime/onnxruntime.db
from C++ while the hook recorded nothing. `traced(command, folder)` prefixes a command with strace
(one log per process, so no call is split across lines), and `written(folder, cwd)` reads the
logs back as the set of absolute paths written.

Paths are made absolute the way the kernel resolved them: strace -y prints a descriptor (and
AT_FDCWD) with its path; the plain calls (mkdir, unlink, rename ...) are resolved against the
process's working directory, followed through chdir/fchdir and inherited across clone/fork.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

WRITE_CALLS = (
    "open,openat,openat2,creat,mkdir,mkdirat,rename,renameat,renameat2,unlink,unlinkat,rmdir,"
    "link,linkat,symlink,symlinkat,truncate,mknod,mknodat"
)
TRACKING_CALLS = "chdir,fchdir,clone,clone3,fork,vfork"
WRITE_FLAGS = ("O_WRONLY", "O_RDWR", "O_CREAT", "O_TRUNC", "O_APPEND")

_LINE = re.compile(r"^(\w+)\((.*)\)\s+=\s+(-?\w+)(?:<(.*?)>)?(?:\s.*)?$")
_DIRFD = re.compile(r"^(?:AT_FDCWD|\d+)<(.*)>$")


def usable() -> str | None:
    """None when strace can trace here, else why not (not installed, ptrace not allowed)."""
    if shutil.which("strace") is None:
        return "strace is not installed (make deps-system installs it)"
    probe = subprocess.run(
        [
            "strace",
            "-f",
            "-qq",
            "-e",
            "status=successful",
            "-e",
            "trace=openat",
            "-o",
            os.devnull,
            "true",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    if probe.returncode != 0:
        return f"strace cannot trace here: {probe.stderr.strip()[:200]}"
    return None


def traced(command: list[str], folder: Path, name: str) -> list[str]:
    """`command` under strace, one log per process in `folder` (`name`.PID)."""
    return [
        "strace", "-ff", "-qq", "-y", "-s", "4096", "-e", "signal=none",
        "-e", "status=successful", "-e", f"trace={WRITE_CALLS},{TRACKING_CALLS}",
        "-o", str(folder / name), *command,
    ]  # fmt: skip


def _split(args: str) -> list[str]:
    """Top-level comma-separated arguments (quotes and brackets respected)."""
    parts, depth, quoted, escaped, current = [], 0, False, False, []
    for char in args:
        if quoted:
            current.append(char)
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                quoted = False
            continue
        if char == '"':
            quoted = True
        elif char in "([{<":
            depth += 1
        elif char in ")]}>":
            depth -= 1
        elif char == "," and depth == 0:
            parts.append("".join(current).strip())
            current = []
            continue
        current.append(char)
    parts.append("".join(current).strip())
    return parts


def _string(arg: str) -> str:
    text = arg[1 : arg.rindex('"')] if arg.startswith('"') else arg
    return text.encode("latin-1", "backslashreplace").decode("unicode_escape")


def _at(dirfd: str, path: str, cwd: str) -> str:
    if os.path.isabs(path):
        return os.path.normpath(path)
    match = _DIRFD.match(dirfd)
    base = match.group(1) if match else cwd
    return os.path.normpath(os.path.join(base, path))


def written(folder: Path, cwd: Path) -> dict[str, list[str]]:
    """{absolute path: [the calls that wrote it]} over every log in `folder`, each process
    starting in the working directory of the one that cloned it (the first in `cwd`)."""
    logs = {int(p.suffix[1:]): p for p in folder.iterdir() if p.suffix[1:].isdigit()}
    children: dict[int, list[int]] = {}
    lines: dict[int, list[str]] = {
        pid: path.read_text(errors="replace").splitlines() for pid, path in logs.items()
    }
    for pid, text in lines.items():
        for line in text:
            match = _LINE.match(line)
            if match and match.group(1) in ("clone", "clone3", "fork", "vfork"):
                if match.group(3).isdigit():
                    children.setdefault(pid, []).append(int(match.group(3)))
    roots = sorted(set(logs) - {c for kids in children.values() for c in kids})
    found: dict[str, list[str]] = {}
    todo = [(pid, str(cwd)) for pid in roots]
    while todo:
        pid, here = todo.pop()
        for line in lines.get(pid, []):
            match = _LINE.match(line)
            if match is None:
                continue
            call, args, result, result_path = match.groups()
            parts = _split(args)
            if call in ("clone", "clone3", "fork", "vfork") and result.isdigit():
                todo.append((int(result), here))
            elif call == "chdir":
                here = _at("", _string(parts[0]), here)
            elif call == "fchdir":
                dirfd = _DIRFD.match(parts[0])
                here = dirfd.group(1) if dirfd else here
            for path in _targets(call, parts, result_path, here):
                found.setdefault(path, []).append(call)
    return found


def _targets(call: str, parts: list[str], result_path: str | None, cwd: str) -> list[str]:
    if call in ("open", "openat", "openat2"):
        flags = parts[1] if call == "open" else parts[2]
        if not any(flag in flags for flag in WRITE_FLAGS):
            return []
        if result_path:
            return [os.path.normpath(result_path)]
        return [
            _at(parts[0], _string(parts[1]), cwd)
            if call != "open"
            else _at("", _string(parts[0]), cwd)
        ]
    plain = {
        "creat": [0],
        "mkdir": [0],
        "unlink": [0],
        "rmdir": [0],
        "truncate": [0],
        "mknod": [0],
        "rename": [0, 1],
        "link": [1],
        "symlink": [1],
    }
    if call in plain:
        return [_at("", _string(parts[i]), cwd) for i in plain[call]]
    at = {
        "mkdirat": [(0, 1)],
        "unlinkat": [(0, 1)],
        "mknodat": [(0, 1)],
        "renameat": [(0, 1), (2, 3)],
        "renameat2": [(0, 1), (2, 3)],
        "linkat": [(2, 3)],
        "symlinkat": [(1, 2)],
    }
    if call in at:
        return [_at(parts[d], _string(parts[p]), cwd) for d, p in at[call]]
    return []

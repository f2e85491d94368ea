"""The one guarded way nnprobe opens a file it was pointed at: every kind of file goes through here.

A workspace is untrusted input, and so is every name in it. Opening `train.py` must not block
forever (a FIFO), read a device (`metrics.csv -> /dev/zero`), follow a symbolic link out of the
workspace, or read a 50 MB "script" whole. `open_regular` refuses all of these before a byte is
read, and `read_bytes`/`read_text` stop at a size cap per kind of file. Every refusal is an
`Unreadable` whose message says what the file is and why it was not read, for an NP901 finding.

The file is opened with O_NONBLOCK (so opening a FIFO never waits for a writer) and checked with
fstat on the opened descriptor (so a swap between check and open cannot slip a device in).
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterable
from pathlib import Path
from typing import BinaryIO

MiB = 2**20

# Caps per kind of file, in bytes; a file over its cap is refused with NP901 and the run goes on.
# Scripts: the largest hand-written training scripts in public repositories are a few hundred KB;
# the largest Python file torch ships (common_methods_invocations.py, a test table) is 1.3 MB and
# took the static checks 2.4 s and 130 MB; 5.5 MB of it took 8.9 s and 464 MB (about 85 MB per
# MB, 140 for the densest code seen), so 2 MiB bounds a script's check near 4 s and 300 MB.
# Logs (CSV, JSON lines) are read in chunks, but every number in them is kept: 64 MiB of metrics
# is a million steps of a dozen curves. TensorBoard files stream record by record (images and
# histograms beside the scalars make them large); one record is read whole, hence its own cap.
# Export-cache entries are graphs without their weights: a few KB for a small CNN, a few hundred
# bytes a node, so about 15 MB at probe.onnx_weights.MAX_NODES; a bigger entry is not ours.
LIMITS: dict[str, int] = {
    "script": 2 * MiB,
    "notebook": 64 * MiB,
    "config": 1 * MiB,
    "log": 64 * MiB,
    "log-line": 1 * MiB,
    "tfevents": 16 * 1024 * MiB,
    "tfevents-record": 64 * MiB,
    "probe-data": 1024 * MiB,
    "cache": 64 * MiB,
}


class Unreadable(Exception):
    """A file nnprobe refused to read, or could not; `message` is for the user."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class TooLarge(Unreadable):
    """A regular file over its kind's cap (a caller may still peek at its head)."""


def over_limit(what: str, path: object, size: int, limit: int) -> str:
    """The one wording of "too big to read", for caps checked outside this module too."""
    cap = size_text(limit)
    return f"{what} {path} is {size_text(size)}, over the {cap} nnprobe reads for a {what}"


def _kind_of(mode: int) -> str:
    if stat.S_ISFIFO(mode):
        return "a named pipe (FIFO)"
    if stat.S_ISCHR(mode):
        return "a character device"
    if stat.S_ISBLK(mode):
        return "a block device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISDIR(mode):
        return "a directory"
    return "not a regular file"


def escapes(path: Path, roots: Iterable[Path]) -> Path | None:
    """Where `path` really is when a symbolic link (the file, or a folder on its way) leads
    outside every one of `roots`; None when it stays inside, or when no link is involved."""
    lexical = Path(os.path.normpath(path.absolute()))
    real = path.resolve()
    if real == lexical:
        return None
    for root in roots:
        if real.is_relative_to(root.resolve()):
            return None
    return real


def open_regular(
    path: str | os.PathLike[str],
    *,
    what: str = "file",
    limit: int | None = None,
    roots: Iterable[Path] | None = None,
) -> BinaryIO:
    """`path` opened for binary reading, refused unless it is a regular file (of at most `limit`
    bytes when given) that no symbolic link leads outside `roots` (when given) to reach."""
    path = Path(path)
    if roots is not None:
        real = escapes(path, list(roots))
        if real is not None:
            raise Unreadable(
                f"{what} {path} is a symbolic link to {real}, outside the workspace: not read"
            )
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
    except OSError as exc:
        raise Unreadable(f"cannot open {what} {path}: {exc.strerror or exc}") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise Unreadable(f"{what} {path} is {_kind_of(info.st_mode)}: not read")
        if limit is not None and info.st_size > limit:
            raise TooLarge(over_limit(what, path, info.st_size, limit) + ": not read")
        if hasattr(os, "set_blocking"):
            os.set_blocking(fd, True)
        handle = os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise
    return handle


def read_bytes(
    path: str | os.PathLike[str],
    *,
    what: str = "file",
    limit: int,
    roots: Iterable[Path] | None = None,
) -> bytes:
    """The whole of a regular file of at most `limit` bytes (re-checked while reading: a file
    that grows past its cap after the check is refused too)."""
    with open_regular(path, what=what, limit=limit, roots=roots) as handle:
        data = handle.read(limit + 1)
    if len(data) > limit:
        raise TooLarge(f"{what} {path} grew past {size_text(limit)} while read: not read")
    return data


def read_text(
    path: str | os.PathLike[str],
    *,
    what: str = "file",
    limit: int,
    roots: Iterable[Path] | None = None,
    errors: str = "strict",
) -> str:
    """A regular file's text (UTF-8, a BOM dropped), read as `read_bytes` reads it."""
    data = read_bytes(path, what=what, limit=limit, roots=roots)
    try:
        return data.decode("utf-8-sig", errors=errors)
    except UnicodeDecodeError as exc:
        reason = f"{exc.reason} at byte {exc.start}"
        raise Unreadable(f"{what} {path} is not UTF-8 text ({reason})") from None


def size_text(count: int) -> str:
    """A byte count as people read it (4.0 MiB, 128.0 KiB, 12 bytes)."""
    if count >= MiB:
        return f"{count / MiB:.1f} MiB"
    if count >= 1024:
        return f"{count / 1024:.1f} KiB"
    return f"{count} bytes"

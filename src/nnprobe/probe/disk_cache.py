"""Entries of nnprobe's on-disk cache: one file each, checksummed, written atomically.

Several processes share one cache directory (a language server's worker, CLI runs in a terminal,
CI jobs on one runner), and any of them can be killed mid-write; disks and users damage files. So
an entry is a single file, never a pair that could be seen half-updated, whose first line carries
a SHA-256 of everything after it:

    nnprobe-cache 1 <sha256 hex> <byte count>\\n
    {"kind": ..., "key": ..., ...metadata...}\\n
    <payload bytes>

It is written to a temporary file in the same directory, flushed and fsynced, then moved over
the entry's name with os.replace, so a reader sees the old entry, the new one or none. A reader
that finds a damaged entry (truncated, foreign bytes, another key's entry under this name) logs
it at debug level, deletes it and reports a miss; the caller rebuilds it. A directory that cannot
be written is logged once per process and the caller carries on uncached.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import tempfile
import time
from pathlib import Path
from typing import Any

from nnprobe.core.reading import LIMITS, Unreadable, open_regular

log = logging.getLogger("nnprobe.probe.cache")

MAGIC = b"nnprobe-cache"
ENTRY_VERSION = 1
STALE_TEMPORARY_SECONDS = 3600.0  # a writer killed between mkstemp and os.replace leaves one

_unwritable: set[Path] = set()


class DamagedEntry(Exception):
    """The file under an entry's name is not a sound entry for that key; the message says why."""


def pack(kind: str, key: str, meta: dict[str, Any], payload: bytes) -> bytes:
    body = json.dumps({**meta, "kind": kind, "key": key}).encode("utf-8") + b"\n" + payload
    digest = hashlib.sha256(body).hexdigest()
    return b"%s %d %s %d\n" % (MAGIC, ENTRY_VERSION, digest.encode("ascii"), len(body)) + body


def unpack(data: bytes, kind: str, key: str) -> tuple[dict[str, Any], bytes]:
    """The metadata and payload of an entry; raises DamagedEntry."""
    head, newline, body = data.partition(b"\n")
    fields = head.split(b" ")
    if not newline or len(fields) != 4 or fields[0] != MAGIC:
        raise DamagedEntry("not an nnprobe cache entry")
    if fields[1] != str(ENTRY_VERSION).encode():
        raise DamagedEntry(f"entry format {fields[1]!r}, expected {ENTRY_VERSION}")
    if fields[3] != str(len(body)).encode():
        raise DamagedEntry(
            f"{len(body)} bytes where the header says {fields[3].decode(errors='replace')}"
        )
    if hashlib.sha256(body).hexdigest().encode("ascii") != fields[2]:
        raise DamagedEntry("checksum mismatch")
    line, _, payload = body.partition(b"\n")
    try:
        meta = json.loads(line)
    except ValueError as exc:
        raise DamagedEntry(f"unreadable metadata ({exc})") from None
    if not isinstance(meta, dict) or meta.get("kind") != kind or meta.get("key") != key:
        raise DamagedEntry("the entry belongs to another key")
    return meta, payload


def read_entry(path: Path, kind: str, key: str) -> tuple[dict[str, Any], bytes] | None:
    """The entry at `path` if it is there and sound; a damaged one is discarded (None). Only a
    regular file of at most LIMITS["cache"] bytes in the cache directory is read: anything else
    under an entry's name (a FIFO, a device, a link out, a 6 GiB file) is not ours, so it is
    discarded unread, like a damaged entry, and rebuilt."""
    try:
        with open_regular(
            path, what="cache entry", limit=LIMITS["cache"], roots=[path.parent]
        ) as handle:
            stat = os.fstat(handle.fileno())
            data = handle.read(LIMITS["cache"] + 1)
    except Unreadable as exc:
        if not os.path.lexists(path):
            return None
        discard(path, exc.message)
        return None
    except OSError as exc:
        log.debug("cache entry %s cannot be read (%s): not used", path, exc)
        return None
    try:
        return unpack(data, kind, key)
    except DamagedEntry as exc:
        discard(path, str(exc), stat)
        return None


def discard(path: Path, reason: str, stat: os.stat_result | None = None) -> None:
    """Delete a damaged entry (unless another process has replaced it since it was read)."""
    log.debug("discarding damaged cache entry %s: %s; it is rebuilt", path, reason)
    with contextlib.suppress(OSError):
        now = os.stat(path)
        if stat is None or (now.st_ino, now.st_mtime_ns) == (stat.st_ino, stat.st_mtime_ns):
            os.unlink(path)


def write_entry(path: Path, kind: str, key: str, meta: dict[str, Any], payload: bytes) -> bool:
    """Commit an entry atomically; False (logged once per directory) when it cannot be written."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(path, pack(kind, key, meta, payload))
    except OSError as exc:
        directory = path.parent
        if directory not in _unwritable:
            _unwritable.add(directory)
            log.warning(
                "nnprobe: the cache directory %s cannot be written (%s); probing without a "
                "cache (set NNPROBE_CACHE_DIR to a writable folder)",
                directory,
                exc.strerror or exc,
            )
        return False
    _sweep_temporaries(path.parent)
    return True


def atomic_write(path: Path, data: bytes) -> None:
    """Write `data` to `path` so that no reader ever sees part of it, and it survives a crash."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    _fsync_directory(path.parent)


def _fsync_directory(directory: Path) -> None:
    """Make the rename durable (POSIX); directories cannot be opened for this on Windows."""
    with contextlib.suppress(OSError, AttributeError):
        fd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _sweep_temporaries(directory: Path) -> None:
    """Remove temporary files that writers killed mid-write left behind long ago."""
    cutoff = time.time() - STALE_TEMPORARY_SECONDS
    with contextlib.suppress(OSError), os.scandir(directory) as entries:
        for entry in entries:
            if entry.name.startswith(".") and entry.name.endswith(".tmp"):
                with contextlib.suppress(OSError):
                    if entry.stat(follow_symlinks=False).st_mtime < cutoff:
                        os.unlink(entry.path)

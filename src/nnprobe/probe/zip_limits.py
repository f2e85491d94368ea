"""Refuses zip bombs before torch, numpy or zipfile read an archive's members: checkpoints and
the probe data files that are zips (`.npz`, a torch.save `.pt`).

`torch.load` hands a .pt zip to its C++ reader (miniz), which allocates each record at the size the
central directory declares and inflates it whole: a deflated data.pkl or tensor record that
declares gigabytes takes gigabytes before the unpickler sees a byte, and a central directory
with millions of entries is parsed in full by zipfile as well as by torch. Only the end-of-archive
record and the central directory are read here, so the check is quick and its memory is bounded
by MAX_MEMBERS, whatever the members would inflate to.

torch.save writes members stored (uncompressed), so a real checkpoint declares about its own
size; one member per tensor storage plus four bookkeeping records.
"""

from __future__ import annotations

import zipfile
from pathlib import Path
from typing import BinaryIO

MAX_MEMBERS = 50_000  # far above any published checkpoint's storage count
MAX_DIRECTORY = 16 * 2**20  # central directory bytes: about 200 bytes a member at MAX_MEMBERS
MAX_RATIO = 20  # declared uncompressed bytes per byte of file
MIN_BUDGET = 64 * 2**20  # a small file may declare this much whatever its ratio


class ArchiveRefused(Exception):
    """The archive declares more than nnprobe will inflate; the message says what and why."""


def checked_members(source: Path | BinaryIO, size: int) -> list[str]:
    """The member names of the zip at `source` (a path, or a seekable file opened in binary mode
    and left where it was; `size` bytes), after refusing archives that list too many members or
    declare too many uncompressed bytes. zipfile's own errors propagate."""
    if isinstance(source, Path):
        with source.open("rb") as handle:
            return _checked(handle, size)
    where = source.tell()
    try:
        return _checked(source, size)
    finally:
        source.seek(where)


def _checked(handle: BinaryIO, size: int) -> list[str]:
    # zipfile's reader of the end-of-archive record (zip64 aware), not public API but stable
    # since Python 2.6; it reads at most the last 64 KiB of the file.
    end = zipfile._EndRecData(handle)  # type: ignore[attr-defined]
    if end is not None:
        members = int(end[zipfile._ECD_ENTRIES_TOTAL])  # type: ignore[attr-defined]
        directory = int(end[zipfile._ECD_SIZE])  # type: ignore[attr-defined]
        if members > MAX_MEMBERS:
            raise ArchiveRefused(
                f"the zip archive lists {members:,} members (nnprobe reads at most "
                f"{MAX_MEMBERS:,}; a checkpoint has one per tensor storage, an .npz one per "
                "array): refused unread"
            )
        if directory > MAX_DIRECTORY:
            raise ArchiveRefused(
                f"the zip archive's directory is {_size(directory)} (at most "
                f"{_size(MAX_DIRECTORY)} is read): refused unread"
            )
    with zipfile.ZipFile(handle) as archive:
        infos = archive.infolist()
    declared = sum(info.file_size for info in infos)
    budget = max(MIN_BUDGET, MAX_RATIO * size)
    if declared > budget:
        biggest = max(infos, key=lambda info: info.file_size)
        raise ArchiveRefused(
            f"the zip archive would inflate to {_size(declared)} from a {_size(size)} file "
            f"({biggest.filename} alone declares {_size(biggest.file_size)}): refused as a "
            "zip bomb, nothing was decompressed"
        )
    return [info.filename for info in infos]


def _size(n: int) -> str:
    value = float(n)
    for unit in ("bytes", "KiB", "MiB", "GiB"):
        if value < 1024:
            return f"{n} bytes" if unit == "bytes" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} TiB"

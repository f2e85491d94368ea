"""Incremental readers: a LogReader remembers how far it read, so a file that a running training
job is still writing is re-read from where the last read stopped.

Only complete lines are consumed: a partial last line (the writer is mid-write) stays for the next
read. A file that shrank or whose header changed (Lightning's CSVLogger rewrites metrics.csv when a
new metric appears) is read again from the start. TensorBoard event files are read with the
`tensorboard` package's own loader, which resumes where it stopped.

A log is untrusted input like every file in a workspace: it is opened through core.reading (a
regular file, no link out of the workspace, at most LIMITS["log"] / LIMITS["tfevents"]), read in
chunks with no line over LIMITS["log-line"], and a record TensorBoard's loader would read whole is
checked against LIMITS["tfevents-record"] first. What cannot be read is a NotALog with the reason.
"""

from __future__ import annotations

import csv
import fnmatch
import json
import math
import os
import struct
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import IO, Any

from nnprobe.core import reading
from nnprobe.logs.series import Run, Series, is_log_header, role_of

TFEVENTS = "events.out.tfevents.*"
LOG_SUFFIXES = (".csv", ".jsonl")
INSTALL_HINT = "pip install 'nnprobe[logs]'"
_CHUNK = 1024 * 1024
# A TFRecord frame: little-endian u64 length, masked CRC-32C of those 8 bytes, data, CRC of data.
_FRAME = struct.Struct("<QI")


class NotALog(Exception):
    """The file is readable but holds no training curves; the message says what is missing.
    `corrupt`: the file's name says it is a log (a TensorBoard event file), so its damage is
    reported even where files are discovered rather than named (a .csv may be any data)."""

    def __init__(self, message: str, *, corrupt: bool = False) -> None:
        super().__init__(message)
        self.corrupt = corrupt


def is_log_name(name: str) -> bool:
    lower = name.lower()
    return lower.endswith(LOG_SUFFIXES) or fnmatch.fnmatch(name, TFEVENTS)


def _number(text: object) -> float | None:
    if isinstance(text, bool):
        return None
    if isinstance(text, int | float):
        return float(text)
    if isinstance(text, str):
        stripped = text.strip()
        if not stripped:
            return None
        try:
            return float(stripped)  # float() reads "nan", "inf" and "-inf" too
        except ValueError:
            return None
    return None


def _whole(value: float | None) -> int | None:
    if value is None or not math.isfinite(value):
        return None
    return int(value)


class LogReader:
    """One log file read incrementally; `update()` returns the Run with everything read so far."""

    def __init__(
        self,
        path: Path,
        columns: Mapping[str, str] | None = None,
        roots: Iterable[Path] | None = None,
    ) -> None:
        self.path = path
        self.columns = dict(columns or {})
        self.roots = list(roots) if roots is not None else None  # None: follow links anywhere
        self.fmt = "tfevents" if fnmatch.fnmatch(path.name, TFEVENTS) else path.suffix.lower()[1:]
        self._reset()

    def _reset(self) -> None:
        self.run = Run(str(self.path), fmt=self.fmt, columns=self.columns)
        self.offset = 0
        self.line = 0
        self.header: list[str] | None = None
        self.header_bytes = b""
        self._loader: Any = None
        self.events = 0
        self.framed = 0  # how far the TensorBoard record framing has been checked

    def update(self) -> Run:
        """Read what was appended since the last call. Raises NotALog, OSError, ImportError."""
        tfevents = self.fmt == "tfevents"
        kind = "tfevents" if tfevents else "log"
        try:
            handle = reading.open_regular(
                self.path, what="training log", limit=reading.LIMITS[kind], roots=self.roots
            )
        except reading.TooLarge as exc:
            # A big data table found in a folder walk is not a log; a big log is reported.
            raise NotALog(exc.message, corrupt=tfevents or self._head_is_log()) from None
        except reading.Unreadable as exc:
            raise NotALog(exc.message, corrupt=True) from None
        with handle:
            size = os.fstat(handle.fileno()).st_size
            if size == 0:
                raise NotALog("empty file (0 bytes)")
            if tfevents:
                self._read_events(handle, size)
            else:
                self._read_lines(handle, size)
        return self.run

    # ---- line formats

    def _head_is_log(self) -> bool:
        """Whether the first line reads as a log's header (CSV) or record (JSON lines)."""
        try:
            with reading.open_regular(self.path, what="training log", roots=self.roots) as handle:
                first = handle.read(reading.LIMITS["log-line"]).split(b"\n", 1)[0]
        except reading.Unreadable:
            return True
        text = first.decode("utf-8", errors="replace")
        if self.fmt == "csv":
            try:
                names = [c.strip() for c in next(csv.reader([text]), [])]
            except csv.Error:
                return False
        else:
            try:
                record = json.loads(text)
            except (ValueError, RecursionError):
                return False
            names = list(record) if isinstance(record, dict) else []
        return is_log_header(names) or bool(set(self.columns.values()) & set(names))

    def _known(self) -> bool:
        """Whether what was read so far says this is a training log (so damage is reported)."""
        return self.header is not None if self.fmt == "csv" else bool(self.run.series)

    def _damaged(self, reason: str) -> NotALog:
        if self._known():
            return NotALog(f"training log {self.path}: {reason}: not read further", corrupt=True)
        return NotALog(reason)

    def _new_lines(self, handle: IO[bytes], size: int) -> Iterator[str]:
        if size < self.offset or (
            self.header_bytes and handle.read(len(self.header_bytes)) != self.header_bytes
        ):
            self._reset()
        handle.seek(self.offset)
        longest = reading.LIMITS["log-line"]
        pending = b""
        while chunk := handle.read(_CHUNK):
            *lines, pending = (pending + chunk).split(b"\n")
            for raw in lines:
                self.offset += len(raw) + 1
                self.line += 1
                if len(raw) > longest:
                    raise self._too_long()
                if self.line == 1 and self.fmt == "csv":
                    self.header_bytes = raw + b"\n"
                yield raw.decode("utf-8", errors="replace").rstrip("\r")
            if len(pending) > longest:
                self.line += 1
                raise self._too_long()

    def _too_long(self) -> NotALog:
        cap = reading.size_text(reading.LIMITS["log-line"])
        return self._damaged(f"line {self.line} is longer than the {cap} nnprobe reads in a log")

    def _read_lines(self, handle: IO[bytes], size: int) -> None:
        if self.fmt == "csv":
            for text in self._new_lines(handle, size):
                try:
                    row = next(csv.reader([text]), [])
                except csv.Error as exc:
                    reason = f"is not CSV ({exc})"
                    if "field limit" in reason:
                        cap = reading.size_text(csv.field_size_limit())
                        reason = f"has a field longer than the {cap} Python's csv reads"
                    raise self._damaged(f"line {self.line} {reason}") from None
                if self.header is None:
                    names = [c.strip() for c in row]
                    if not (is_log_header(names) or set(self.columns.values()) & set(names)):
                        raise NotALog(
                            "no epoch/step column and loss/metric column in the header "
                            f"({', '.join(names[:8]) or 'empty'})"
                        )
                    self.header = names
                    continue
                self._record(dict(zip(self.header, row, strict=False)), self.line)
        else:
            for text in self._new_lines(handle, size):
                if not text.strip():
                    continue
                try:
                    record = json.loads(text)
                except ValueError:
                    continue
                except RecursionError:
                    raise NotALog(
                        f"training log {self.path}: line {self.line} nests JSON deeper than "
                        "Python's reader follows (about a thousand levels): not read",
                        corrupt=True,
                    ) from None
                if isinstance(record, dict):
                    self._record(record, self.line)
            if self.line and not self.run.series:
                raise NotALog("no record has a loss or metric key")

    def _axis(self, record: Mapping[str, Any], role: str) -> int | None:
        configured = self.columns.get(role)
        for key in [configured] if configured else record:
            if key in record and (configured or role_of(key) == role):
                return _whole(_number(record[key]))
        return None

    def _record(self, record: Mapping[str, Any], line: int | None) -> None:
        step = self._axis(record, "step")
        epoch = self._axis(record, "epoch")
        configured = set(self.columns.values())
        for key, raw in record.items():
            role = role_of(key)
            if role in ("epoch", "step") and key not in configured:
                continue
            if role is None and key not in configured:
                continue
            value = _number(raw)
            if value is None:
                continue
            self.run.series.setdefault(key, Series(key)).add(value, step, epoch, line)

    # ---- TensorBoard

    def _check_frames(self, handle: IO[bytes], size: int) -> None:
        """Walk the record framing appended since the last walk before tensorboard's loader reads
        it: the loader reads each record whole, whatever length its header declares. Only a
        length over the cap has its checksum verified (verifying every header in pure-Python
        CRC-32C took 2.3 s for 200,000 scalars); one that fails stops the walk, as the loader
        stops at any header that fails, so a walk thrown off by a damaged header never leads
        the loader anywhere. A record not yet complete waits for the writer."""
        from tensorboard.compat.tensorflow_stub.pywrap_tensorflow import (  # type: ignore[import-untyped]
            masked_crc32c,
        )

        if size < self.framed:
            self.framed = 0
        cap = reading.LIMITS["tfevents-record"]
        head, unpack = _FRAME.size, _FRAME.unpack_from
        position = self.framed
        while position + head <= size:
            handle.seek(position)
            window = handle.read(_CHUNK)  # the headers of the records starting in this chunk
            at = 0
            while at + head <= len(window):
                length, check = unpack(window, at)
                if length > cap:
                    if masked_crc32c(window[at : at + 8]) != check:
                        self.framed = position + at
                        return  # damage: the loader stops at this header too
                    raise NotALog(
                        f"corrupt TensorBoard event file {self.path}: the record at byte "
                        f"{position + at} declares {length} bytes, over the "
                        f"{reading.size_text(cap)} nnprobe reads for one record: not read",
                        corrupt=True,
                    )
                at += head + length + 4
            if position + at > size:  # the last record is still being written
                break
            position += at
        self.framed = min(position, size)

    def _read_events(self, handle: IO[bytes], size: int) -> None:
        if self._loader is not None and size < self.offset:
            self._reset()
        if self._loader is None:
            try:
                from tensorboard.backend.event_processing.event_file_loader import (  # type: ignore[import-untyped]
                    EventFileLoader,
                )
            except ImportError as exc:
                raise ImportError(
                    f"reading TensorBoard event files needs the tensorboard package: {INSTALL_HINT}"
                ) from exc
            self._check_frames(handle, size)
            self._loader = EventFileLoader(str(self.path))
        else:
            self._check_frames(handle, size)
        self.offset = size
        for event in self._loader.Load():
            self.events += 1
            if not event.HasField("summary"):
                continue
            for value in event.summary.value:
                number = _event_value(value)
                if number is None:
                    continue
                series = self.run.series.setdefault(value.tag, Series(value.tag))
                series.add(number, int(event.step), None, None)
        if not self.events:
            # Every writer starts the file with a version record; tensorboard's loader logs and
            # skips what it cannot read, so damage before that record would otherwise be silent.
            raise NotALog(
                "corrupt TensorBoard event file: not one complete event record could be read",
                corrupt=True,
            )


def _event_value(value: Any) -> float | None:
    kind = value.WhichOneof("value")
    if kind == "simple_value":
        return float(value.simple_value)
    if kind != "tensor":
        return None
    tensor = value.tensor
    if len(tensor.tensor_shape.dim) != 0:
        return None
    for field_name in ("float_val", "double_val", "half_val", "int_val", "int64_val"):
        values = getattr(tensor, field_name)
        if len(values):
            return float(values[0])
    if tensor.tensor_content:
        from tensorboard.util import tensor_util  # type: ignore[import-untyped]

        return float(tensor_util.make_ndarray(tensor).item())
    return None


def read_log(path: Path, columns: Mapping[str, str] | None = None) -> Run:
    """A whole log file at once (the CLI's case)."""
    return LogReader(path, columns).update()

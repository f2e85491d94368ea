"""Incremental readers: a LogReader remembers how far it read, so a file that a running training
job is still writing is re-read from where the last read stopped.

Only complete lines are consumed: a partial last line (the writer is mid-write) stays for the next
read. A file that shrank or whose header changed (Lightning's CSVLogger rewrites metrics.csv when a
new metric appears) is read again from the start. TensorBoard event files are read with the
`tensorboard` package's own loader, which resumes where it stopped.
"""

from __future__ import annotations

import csv
import fnmatch
import json
import math
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from nnprobe.logs.series import Run, Series, is_log_header, role_of

TFEVENTS = "events.out.tfevents.*"
LOG_SUFFIXES = (".csv", ".jsonl")
INSTALL_HINT = "pip install 'nnprobe[logs]'"


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

    def __init__(self, path: Path, columns: Mapping[str, str] | None = None) -> None:
        self.path = path
        self.columns = dict(columns or {})
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

    def update(self) -> Run:
        """Read what was appended since the last call. Raises NotALog, OSError, ImportError."""
        if self.path.stat().st_size == 0:
            raise NotALog("empty file (0 bytes)")
        if self.fmt == "tfevents":
            self._read_events()
        else:
            self._read_lines()
        return self.run

    # ---- line formats

    def _new_lines(self) -> Iterator[str]:
        size = self.path.stat().st_size
        if size < self.offset or (self.header_bytes and not self._starts_with(self.header_bytes)):
            self._reset()
        with self.path.open("rb") as handle:
            handle.seek(self.offset)
            data = handle.read()
        end = data.rfind(b"\n")
        if end < 0:
            return
        complete = data[: end + 1]
        self.offset += len(complete)
        for raw in complete.split(b"\n")[:-1]:
            self.line += 1
            if self.line == 1 and self.fmt == "csv":
                self.header_bytes = raw + b"\n"
            yield raw.decode("utf-8", errors="replace").rstrip("\r")

    def _starts_with(self, prefix: bytes) -> bool:
        with self.path.open("rb") as handle:
            return handle.read(len(prefix)) == prefix

    def _read_lines(self) -> None:
        if self.fmt == "csv":
            for text in self._new_lines():
                row = next(csv.reader([text]), [])
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
            for text in self._new_lines():
                if not text.strip():
                    continue
                try:
                    record = json.loads(text)
                except ValueError:
                    continue
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

    def _read_events(self) -> None:
        if self._loader is None:
            try:
                from tensorboard.backend.event_processing.event_file_loader import (  # type: ignore[import-untyped]
                    EventFileLoader,
                )
            except ImportError as exc:
                raise ImportError(
                    f"reading TensorBoard event files needs the tensorboard package: {INSTALL_HINT}"
                ) from exc
            self._loader = EventFileLoader(str(self.path))
            self.offset = self.path.stat().st_size
        elif self.path.stat().st_size < self.offset:
            self._reset()
            self._read_events()
            return
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
        self.offset = self.path.stat().st_size
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

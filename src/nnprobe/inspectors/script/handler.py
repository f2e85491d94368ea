"""Reads one `.py` file and runs the static rules on it, turning every kind of bad input into a
finding: unreadable, binary, undecodable, syntax error. Files that do not use torch are skipped."""

from __future__ import annotations

import ast
import gc
import io
import re
import tokenize
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from nnprobe.core import reading
from nnprobe.core.config import Config
from nnprobe.core.engine import FileResult, finalize, instantiate, internal_finding, run_rules
from nnprobe.core.files import Target, roots_for
from nnprobe.core.finding import Evidence, Finding, Range
from nnprobe.core.registry import all_rules
from nnprobe.core.suppressions import parse_suppressions
from nnprobe.inspectors.script.context import ScriptContext

_TORCH_IMPORT = re.compile(
    rb"^[ \t]*(?:import|from)[ \t]+(?:torch|lightning|pytorch_lightning)\b", re.MULTILINE
)


class Unreadable(Exception):
    pass


def decode(data: bytes) -> str:
    """Source bytes to text the way Python does (BOM, PEP 263 coding line, else UTF-8)."""
    if b"\x00" in data[:8192]:
        raise Unreadable("binary file (contains NUL bytes), not Python source")
    try:
        encoding, _ = tokenize.detect_encoding(io.BytesIO(data).readline)
    except SyntaxError as exc:
        raise Unreadable(str(exc)) from None
    try:
        return data.decode(encoding)
    except UnicodeDecodeError as exc:
        raise Unreadable(
            f"not valid {encoding} text: byte 0x{data[exc.start]:02x} at offset {exc.start}"
        ) from None
    except LookupError:
        raise Unreadable(f"unknown source encoding {encoding!r}") from None


# How much of an oversized script found in a folder walk is read to tell whether it is a training
# script at all (a generated protobuf module or a data table is not, and gets no NP901).
_PEEK = 64 * 1024


def read_source(path: Path, roots: list[Path] | None = None) -> bytes:
    """A script's bytes through the guarded reader (regular file, size cap, no link out of
    `roots`); raises reading.Unreadable with the message for NP901."""
    return reading.read_bytes(path, what="script", limit=reading.LIMITS["script"], roots=roots)


def check_script(target: Target, config: Config) -> FileResult:
    display = target.display
    roots = roots_for(target, config)
    try:
        data = read_source(target.path, roots)
    except reading.TooLarge as exc:
        if not target.explicit and not _imports_torch_early(target.path, roots):
            return FileResult(display, [], analysed=False)
        return _unreadable(target, config, exc.message)
    except reading.Unreadable as exc:
        return _unreadable(target, config, exc.message)
    if not _TORCH_IMPORT.search(data):
        if target.explicit and b"\x00" in data[:8192]:
            message = "binary file (contains NUL bytes), not Python source"
            return FileResult(
                display,
                finalize(
                    [internal_finding("NP901", display, message, config)], config, target.path
                ),
            )
        return FileResult(display, [], analysed=False)
    try:
        text = decode(data)
    except Unreadable as exc:
        findings = [internal_finding("NP901", display, f"could not read this file: {exc}", config)]
        return FileResult(display, finalize(findings, config, target.path))
    return FileResult(display, check_text(text, display, config, target.path), analysed=True)


def _imports_torch_early(path: Path, roots: list[Path] | None) -> bool:
    try:
        with reading.open_regular(path, what="script", roots=roots) as handle:
            return _TORCH_IMPORT.search(handle.read(_PEEK)) is not None
    except reading.Unreadable:
        return True


def _unreadable(target: Target, config: Config, message: str) -> FileResult:
    finding = internal_finding("NP901", target.display, message, config)
    return FileResult(target.display, finalize([finding], config, target.path))


@contextmanager
def _collector_paused() -> Iterator[None]:
    """No cyclic garbage collection while one script is analysed: the tree and its indexes are
    tens of thousands of live objects that every collection the analysis's own allocations
    trigger would walk again, for nothing (they stay alive until the check ends); that was a
    sixth of a check's time. What the check leaves behind is collected once it is over."""
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def check_text(
    text: str, display: str, config: Config, path: Path | str | None = None
) -> list[Finding]:
    """Static findings for source text (the language server calls this on unsaved buffers)."""
    limit = reading.LIMITS["script"]
    if len(text) > limit:  # an editor buffer is capped as a file on disk is
        size = len(text.encode("utf-8", "surrogatepass"))
        message = reading.over_limit("script", display, size, limit) + ": not analysed"
        return finalize(
            [internal_finding("NP901", display, message, config)], config, path or display
        )
    with _collector_paused():
        return _check_text(text, display, config, path)


def _check_text(
    text: str, display: str, config: Config, path: Path | str | None = None
) -> list[Finding]:
    suppressions = parse_suppressions(text)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", SyntaxWarning)
            warnings.simplefilter("ignore", DeprecationWarning)  # '\-' escapes on Python 3.11
            tree = ast.parse(text, filename=display)
    except SyntaxError as exc:
        line = exc.lineno or 1
        column = exc.offset or 1
        end_line = exc.end_lineno or line
        end_column = exc.end_offset if exc.end_offset and exc.end_lineno else column + 1
        if (end_line, end_column) <= (line, column):
            end_line, end_column = line, column + 1
        finding = internal_finding(
            "NP906",
            display,
            f"syntax error: {exc.msg}; the other checks are skipped until it parses",
            config,
            range=Range.of(line, column, end_line, end_column),
        )
        return finalize([finding], config, path or display, suppressions)
    except (ValueError, RecursionError, MemoryError) as exc:
        finding = internal_finding("NP901", display, f"cannot parse: {exc}", config)
        return finalize([finding], config, path or display, suppressions)
    ctx = ScriptContext(display, text, tree)
    try:
        if not ctx.imports_torch:
            return []
        codes = config.enabled_codes(path or display)
        rules = instantiate(
            config, codes, (r for r in all_rules() if r.evidence is Evidence.SOURCE)
        )
        findings = run_rules(rules, ctx, display, config)
    finally:
        ctx.release()
    return finalize(findings, config, path or display, suppressions)

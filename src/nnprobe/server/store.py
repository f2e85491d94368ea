"""Diagnostics kept per (source, uri), merged on publish.

LSP replaces every diagnostic of a document with each publishDiagnostics, so two producers writing
the same URI would erase each other: static findings arrive within milliseconds of a keystroke,
runtime findings seconds after a checkpoint is written. Each producer owns its source key and only
ever replaces its own entry; `publish(uri)` sends the union.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace

import attrs
from lsprotocol import types

STATIC = "static"
RUNTIME = "runtime"


@dataclass(frozen=True)
class Entry:
    diagnostics: tuple[types.Diagnostic, ...]
    # The document version the diagnostics were computed on; None when they describe a file on
    # disk rather than an editor buffer. Fixes are offered only while it matches the buffer.
    version: int | None = None


class DiagnosticStore:
    def __init__(self, send: Callable[[types.PublishDiagnosticsParams], None]) -> None:
        self._send = send
        self._entries: dict[str, dict[str, Entry]] = {}
        self._unsent: set[str] = set()  # URIs whose diagnostics moved since their last publish

    def replace(
        self,
        source: str,
        uri: str,
        diagnostics: Sequence[types.Diagnostic],
        version: int | None = None,
        *,
        publish: bool = True,
    ) -> None:
        """Replace `source`'s diagnostics on `uri` (an empty list is kept with its version: it
        says the document was checked and is clean)."""
        self._entries.setdefault(uri, {})[source] = Entry(tuple(diagnostics), version)
        if publish:
            self.publish(uri)

    def clear(self, source: str, uri: str | None = None, *, publish: bool = True) -> None:
        """Forget `source`'s diagnostics on `uri`, or on every URI when `uri` is None."""
        uris = [uri] if uri is not None else [u for u, e in self._entries.items() if source in e]
        for each in uris:
            by_source = self._entries.get(each, {})
            by_source.pop(source, None)
            if not by_source:
                self._entries.pop(each, None)
            if publish:
                self.publish(each)

    def shift(self, uri: str, line_of: Callable[[int], int], *, publish: bool = True) -> bool:
        """Move every non-static diagnostic on `uri` to the line `line_of` gives its old line
        (the static lint recomputes its own); True when one moved. Unpublished moves are sent
        by `publish` or `flush`."""
        moved = False
        for source, entry in self._entries.get(uri, {}).items():
            if source == STATIC:
                continue
            shifted = tuple(_moved(d, line_of) for d in entry.diagnostics)
            if shifted != entry.diagnostics:
                moved = True
                self._entries[uri][source] = replace(entry, diagnostics=shifted)
        if moved:
            self._unsent.add(uri)
            if publish:
                self.publish(uri)
        return moved

    def flush(self, uri: str) -> None:
        """Publish `uri` if its diagnostics moved since it was last published."""
        if uri in self._unsent:
            self.publish(uri)

    def entries(self, uri: str) -> dict[str, Entry]:
        return dict(self._entries.get(uri, {}))

    def items(self, uri: str) -> Iterator[tuple[str, Entry, types.Diagnostic]]:
        """Every stored diagnostic on `uri` with its source and entry, static first."""
        for source, entry in sorted(self.entries(uri).items(), key=_source_order):
            for diagnostic in entry.diagnostics:
                yield source, entry, diagnostic

    def diagnostics(self, uri: str) -> list[types.Diagnostic]:
        return [diagnostic for _, _, diagnostic in self.items(uri)]

    def uris(self, source: str | None = None) -> set[str]:
        return {u for u, e in self._entries.items() if source is None or source in e}

    def publish(self, uri: str) -> None:
        """Send the union of every source's diagnostics on `uri` (an empty list clears them)."""
        self._unsent.discard(uri)
        versions = [e.version for e in self._entries.get(uri, {}).values() if e.version is not None]
        self._send(
            types.PublishDiagnosticsParams(
                uri=uri,
                diagnostics=self.diagnostics(uri),
                version=max(versions) if versions else None,
            )
        )


def _moved(diagnostic: types.Diagnostic, line_of: Callable[[int], int]) -> types.Diagnostic:
    start, end = diagnostic.range.start, diagnostic.range.end
    new_start = types.Position(line=line_of(start.line), character=start.character)
    new_end = types.Position(line=line_of(end.line), character=end.character)
    if (new_end.line, new_end.character) < (new_start.line, new_start.character):
        new_end = new_start  # both ends fell into one replaced line
    if new_start == start and new_end == end:
        return diagnostic
    return attrs.evolve(diagnostic, range=types.Range(start=new_start, end=new_end))


def _source_order(item: tuple[str, Entry]) -> tuple[int, str]:
    return (0 if item[0] == STATIC else 1, item[0])

"""Diagnostics kept per (source, uri), merged on publish.

LSP replaces every diagnostic of a document with each publishDiagnostics, so two producers writing
the same URI would erase each other: static findings arrive within milliseconds of a keystroke,
runtime findings seconds after a checkpoint is written. Each producer owns its source key and only
ever replaces its own entry; `publish(uri)` sends the union.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

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
        versions = [e.version for e in self._entries.get(uri, {}).values() if e.version is not None]
        self._send(
            types.PublishDiagnosticsParams(
                uri=uri,
                diagnostics=self.diagnostics(uri),
                version=max(versions) if versions else None,
            )
        )


def _source_order(item: tuple[str, Entry]) -> tuple[int, str]:
    return (0 if item[0] == STATIC else 1, item[0])

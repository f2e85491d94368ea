"""Client-side helpers for the end-to-end tests: a pytest-lsp client that records every
publishDiagnostics and showMessage and lets a test wait for the one it expects (never a sleep),
an editor-buffer model, and a WorkspaceEdit applier that uses pygls' document model.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lsprotocol import types
from pygls.protocol import default_converter
from pygls.workspace import TextDocument
from pytest_lsp import ClientServerConfig, LanguageClient, client_capabilities
from pytest_lsp.client import DEFAULT_CLIENT_FEATURES, register_lsp_features

Predicate = Callable[[types.PublishDiagnosticsParams], bool]
TIMEOUT_S = 20.0


@dataclass
class Recorder:
    """Every publishDiagnostics by URI, and futures waiting for one that matches a predicate."""

    history: dict[str, list[types.PublishDiagnosticsParams]] = field(default_factory=dict)
    waiters: list[tuple[str, Predicate, asyncio.Future[types.PublishDiagnosticsParams]]] = field(
        default_factory=list
    )
    messages: list[types.ShowMessageParams] = field(default_factory=list)
    message_waiters: list[asyncio.Future[types.ShowMessageParams]] = field(default_factory=list)

    def record(self, params: types.PublishDiagnosticsParams) -> None:
        self.history.setdefault(params.uri, []).append(params)
        for waiter in list(self.waiters):
            uri, predicate, future = waiter
            if uri == params.uri and not future.done() and predicate(params):
                future.set_result(params)
                self.waiters.remove(waiter)

    def latest(self, uri: str) -> types.PublishDiagnosticsParams | None:
        published = self.history.get(uri)
        return published[-1] if published else None

    def expect(self, uri: str, predicate: Predicate = lambda p: True) -> asyncio.Future[Any]:
        """A future for the next publish on `uri` matching `predicate` (arm it before acting)."""
        future: asyncio.Future[types.PublishDiagnosticsParams] = (
            asyncio.get_running_loop().create_future()
        )
        self.waiters.append((uri, predicate, future))
        return future

    async def wait(self, uri: str, predicate: Predicate = lambda p: True) -> Any:
        """The latest publish on `uri` if it matches, else the next one that does."""
        latest = self.latest(uri)
        if latest is not None and predicate(latest):
            return latest
        return await asyncio.wait_for(self.expect(uri, predicate), TIMEOUT_S)

    def record_message(self, params: types.ShowMessageParams) -> None:
        self.messages.append(params)
        for future in self.message_waiters:
            if not future.done():
                future.set_result(params)
        self.message_waiters.clear()

    def next_message(self) -> Awaitable[types.ShowMessageParams]:
        """The next window/showMessage after this call (not after the await: a message sent
        while the test waits on something else must not be missed)."""
        future: asyncio.Future[types.ShowMessageParams] = asyncio.get_running_loop().create_future()
        self.message_waiters.append(future)
        return asyncio.wait_for(future, TIMEOUT_S)


def make_client() -> LanguageClient:
    client = LanguageClient(converter_factory=default_converter)
    recorder = Recorder()
    client.recorder = recorder  # type: ignore[attr-defined]
    features = dict(DEFAULT_CLIENT_FEATURES)

    def publish(client: LanguageClient, params: types.PublishDiagnosticsParams) -> None:
        client.diagnostics[params.uri] = params.diagnostics
        recorder.record(params)

    def show_message(client: LanguageClient, params: types.ShowMessageParams) -> None:
        client.messages.append(params)
        recorder.record_message(params)

    def register_capability(client: LanguageClient, params: types.RegistrationParams) -> None:
        client.registrations = [  # type: ignore[attr-defined]
            *getattr(client, "registrations", []),
            *params.registrations,
        ]

    def refresh(client: LanguageClient, params: None = None) -> None:
        client.code_lens_refreshes = getattr(client, "code_lens_refreshes", 0) + 1  # type: ignore[attr-defined]

    features[types.TEXT_DOCUMENT_PUBLISH_DIAGNOSTICS] = publish
    features[types.WINDOW_SHOW_MESSAGE] = show_message
    features[types.CLIENT_REGISTER_CAPABILITY] = register_capability
    features[types.WORKSPACE_CODE_LENS_REFRESH] = refresh
    register_lsp_features(client, features)
    return client


def serve(env: dict[str, str] | None = None) -> ClientServerConfig:
    """The real `nnprobe serve` in a subprocess (with `env` when given), driven by make_client."""
    return ClientServerConfig(
        server_command=[sys.executable, "-m", "nnprobe", "serve"],
        client_factory=make_client,
        server_env=env,
    )


async def initialize(
    client: LanguageClient, root: Path, options: dict[str, Any]
) -> types.InitializeResult:
    """Open a session as VS Code does on the folder `root`, with `options` as
    initializationOptions."""
    return await client.initialize_session(
        types.InitializeParams(
            capabilities=client_capabilities("visual-studio-code"),
            root_uri=root.as_uri(),
            workspace_folders=[types.WorkspaceFolder(uri=root.as_uri(), name=root.name)],
            initialization_options=options,
        )
    )


class Document:
    """An editor buffer: open, change (whole text, as the server asks) and save."""

    def __init__(self, client: LanguageClient, path: Path, text: str) -> None:
        self.client = client
        self.path = path
        self.uri = path.as_uri()
        self.text = text
        self.version = 0

    @property
    def recorder(self) -> Recorder:
        return self.client.recorder  # type: ignore[attr-defined,no-any-return]

    def open(self) -> None:
        self.version = 1
        self.client.text_document_did_open(
            types.DidOpenTextDocumentParams(
                text_document=types.TextDocumentItem(
                    uri=self.uri, language_id="python", version=self.version, text=self.text
                )
            )
        )

    def change(self, text: str) -> int:
        self.version += 1
        self.text = text
        self.client.text_document_did_change(
            types.DidChangeTextDocumentParams(
                text_document=types.VersionedTextDocumentIdentifier(
                    uri=self.uri, version=self.version
                ),
                content_changes=[types.TextDocumentContentChangeWholeDocument(text=text)],
            )
        )
        return self.version

    def save(self) -> None:
        self.path.write_text(self.text, encoding="utf-8")
        self.client.text_document_did_save(
            types.DidSaveTextDocumentParams(
                text_document=types.TextDocumentIdentifier(uri=self.uri)
            )
        )

    def close(self) -> None:
        self.client.text_document_did_close(
            types.DidCloseTextDocumentParams(
                text_document=types.TextDocumentIdentifier(uri=self.uri)
            )
        )

    async def diagnostics(self, predicate: Predicate = lambda p: True) -> list[types.Diagnostic]:
        """Diagnostics published for the current version that satisfy `predicate`."""
        version = self.version
        params = await self.recorder.wait(self.uri, lambda p: p.version == version and predicate(p))
        return list(params.diagnostics)

    async def code_actions(
        self, range: types.Range, only: list[str] | None = None
    ) -> list[types.CodeAction]:
        result = await self.client.text_document_code_action_async(
            types.CodeActionParams(
                text_document=types.TextDocumentIdentifier(uri=self.uri),
                range=range,
                context=types.CodeActionContext(diagnostics=[], only=only),
            )
        )
        return [a for a in result or [] if isinstance(a, types.CodeAction)]


def apply_workspace_edit(text: str, uri: str, edit: types.WorkspaceEdit) -> str:
    """The text after the edit, applied by pygls' own document model (UTF-16 positions)."""
    edits: list[types.TextEdit] = []
    for change in edit.document_changes or []:
        assert isinstance(change, types.TextDocumentEdit)
        assert change.text_document.uri == uri
        edits.extend(e for e in change.edits if isinstance(e, types.TextEdit))
    edits.extend((edit.changes or {}).get(uri, []))
    document = TextDocument(uri, text)
    for text_edit in sorted(
        edits, key=lambda e: (e.range.start.line, e.range.start.character), reverse=True
    ):
        document.apply_change(
            types.TextDocumentContentChangePartial(range=text_edit.range, text=text_edit.new_text)
        )
    return document.source


def codes(diagnostics: list[types.Diagnostic]) -> list[str]:
    return sorted(str(d.code) for d in diagnostics)

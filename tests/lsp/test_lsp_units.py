"""The server's pure parts, without a process: position conversion, the suppression edit,
settings validation and precedence, the diagnostics store, payload shapes."""

from __future__ import annotations

import base64
import logging
from pathlib import Path

import pytest
from lsprotocol import types

from nnprobe.core.config import Config, ConfigError, parse_config
from nnprobe.core.finding import Confidence, Edit, Finding, Fix, Position, Range, Severity
from nnprobe.server import payloads
from nnprobe.server.configs import ConfigResolver, apply_editor
from nnprobe.server.convert import message, text_edits, to_diagnostic
from nnprobe.server.features.code_actions import _overlaps, wanted
from nnprobe.server.main import parse_address
from nnprobe.server.positions import UTF8, UTF16, UTF32, LineIndex, code_points
from nnprobe.server.settings import merge, parse_settings, section
from nnprobe.server.store import STATIC, DiagnosticStore
from nnprobe.server.suppress import suppression_edit

# --------------------------------------------------------------------------- positions

LINE = 'x = "é😀𝐱" + y'


@pytest.mark.parametrize(
    ("encoding", "expected"),
    [(UTF16, 12 + 2), (UTF32, 12), (UTF8, len('x = "é😀𝐱" + '.encode()))],
)
def test_columns_after_non_bmp_characters(encoding: str, expected: int) -> None:
    index = LineIndex(f"import torch\n{LINE}\n", encoding)
    assert LINE.index("y") == 12
    column = LINE.index("y") + 1
    assert index.to_lsp(Position(2, column)) == (1, expected)
    assert index.to_core(1, expected) == Position(2, column)


def test_positions_are_clamped_and_lines_split_like_python() -> None:
    index = LineIndex("a\fb\nsecond\r\nthird")
    assert index.lines == ["a\fb", "second", "third"]
    assert index.to_lsp(Position(1, 99)) == (0, 3)
    assert index.to_lsp(Position(9, 1)) == (2, 5)
    assert index.to_lsp(Position(0, 0)) == (0, 0)
    assert LineIndex("").to_lsp(Position(3, 3)) == (0, 0)
    assert code_points("😀a", 1, UTF16) == 1  # inside the surrogate pair: after it


# --------------------------------------------------------------------------- conversion


def finding(**changes: object) -> Finding:
    base = Finding(
        code="NP104",
        name="softmax-before-cross-entropy",
        severity=Severity.ERROR,
        confidence=Confidence.HIGH,
        message="softmax feeds CrossEntropyLoss",
        path="t.py",
        range=Range.of(2, 5, 2, 6),
        url="https://nnprobe.dev/rules/NP104",
        fix=Fix("remove the softmax", (Edit(Range.of(2, 5, 2, 6), "z"),)),
    )
    return base.with_(**changes)


def test_diagnostic_shape_and_fix_data_round_trip() -> None:
    diagnostic = to_diagnostic(finding(), LineIndex(f"import torch\n{LINE}\n"))
    assert diagnostic.severity == types.DiagnosticSeverity.Error
    assert diagnostic.code == "NP104" and diagnostic.source == "nnprobe"
    assert diagnostic.data["fix"]["title"] == "Remove the softmax"
    (edit,) = text_edits(diagnostic.data) or []
    assert edit.new_text == "z" and edit.range == diagnostic.range
    assert text_edits({"name": "x"}) is None
    assert text_edits({"fix": {"edits": [{"range": {}}]}}) is None


def test_info_maps_to_information_and_heuristics_say_so() -> None:
    info = to_diagnostic(
        finding(severity=Severity.INFO, confidence=Confidence.MEDIUM, fix=None), LineIndex("")
    )
    assert info.severity == types.DiagnosticSeverity.Information
    assert info.message.endswith("(medium confidence)")
    assert "fix" not in info.data
    assert message(finding()) == "softmax feeds CrossEntropyLoss"


# --------------------------------------------------------------------------- suppression

CODE = "import torch\nx = torch.load(p)\ny = f(a,\n      b)\nz = g(1) \\\n    + 2\n"


def test_suppression_appends_after_trimmed_content() -> None:
    text = "import torch\nx = torch.load(p)   \n"
    assert suppression_edit(text, 2, 2, "NP122") == Edit(
        Range.of(2, 18, 2, 21), "  # nnprobe: ignore[NP122]"
    )


def test_suppression_merges_into_an_existing_list_and_skips_covered_lines() -> None:
    text = "x = load(p)  # nnprobe: ignore[NP101]\n"
    edit = suppression_edit(text, 1, 1, "NP122")
    assert edit is not None
    assert edit.range.start == Position(1, text.index("]") + 1) and edit.new_text == ", NP122"
    assert suppression_edit("x = 1  # nnprobe: ignore\n", 1, 1, "NP122") is None
    assert suppression_edit("x = 1  # nnprobe: ignore[NP122]\n", 1, 1, "NP122") is None
    empty = suppression_edit("x = 1  # nnprobe: ignore[]\n", 1, 1, "NP122")
    assert empty is not None and empty.new_text == "NP122"


def test_suppression_avoids_continuations_and_strings() -> None:
    after_backslash = suppression_edit(CODE, 5, 6, "NP101")
    assert after_backslash is not None and after_backslash.range.start.line == 6
    assert suppression_edit(CODE, 5, 5, "NP101") is None
    in_string = 'import torch\ns = """\nlr=0.5\n"""\n'
    assert suppression_edit(in_string, 3, 3, "NP101") is None
    inside_parens = suppression_edit(CODE, 3, 4, "NP101")
    assert inside_parens is not None and inside_parens.range.start.line == 3


def test_suppression_other_comments_and_file_wide_ignores() -> None:
    text = "x = 1  # the rate\n# nnprobe: ignore-file[NP103]\n"
    edit = suppression_edit(text, 1, 1, "NP101")
    assert edit is not None and edit.new_text == "  # nnprobe: ignore[NP101]"
    edit = suppression_edit("x = 1  # nnprobe: ignore-file[NP103]\n", 1, 1, "NP101")
    assert edit is not None and edit.new_text == "  # nnprobe: ignore[NP101]"


# --------------------------------------------------------------------------- settings


def test_settings_defaults_aliases_and_wrapping() -> None:
    settings = parse_settings(
        section({"nnprobe": {"extendSelect": ["NP113"], "select": [], "trace": {"server": "x"}}})
    )
    assert settings.lint == {"extend-select": ["NP113"]}
    assert settings.debounce == 0.2 and settings.log_level == "info"
    assert not settings.trusted and settings.interpreter is None
    assert merge({"debounce": 10, "ignore": ["NP101"]}, {"debounce": None, "ignore": []}) == {
        "debounce": 10,
        "ignore": [],
    }


@pytest.mark.parametrize(
    ("raw", "named"),
    [
        ({"select": ["NP999"]}, "nnprobe.select"),
        ({"severity": {"NP104": "fatal"}}, "nnprobe.severity.NP104"),
        ({"rules": {"NP101": {"sgd-max": "high"}}}, "nnprobe.rules.NP101.sgd-max"),
        ({"debounce": True}, "nnprobe.debounce"),
        ({"debounce": 20_000}, "nnprobe.debounce"),
        ({"logLevel": "loud"}, "nnprobe.logLevel"),
        ({"interpreter": 3}, "nnprobe.interpreter"),
        ({"trusted": "yes"}, "nnprobe.trusted"),
        ({"ignroe": ["NP101"]}, "nnprobe.ignroe"),
    ],
)
def test_bad_settings_name_the_key(raw: dict[str, object], named: str) -> None:
    with pytest.raises(ConfigError, match=named.replace(".", r"\.")):
        parse_settings(raw)


def test_editor_settings_apply_like_cli_flags_over_the_file(tmp_path: Path) -> None:
    file = parse_config(
        {
            "ignore": ["NP103"],
            "severity": {"NP104": "warning"},
            "rules": {"NP101": {"sgd-max": 0.05}},
            "exclude": ["legacy"],
        },
        root=tmp_path,
    )
    combined = apply_editor(
        file,
        {
            "ignore": ["NP122"],
            "extend-select": ["NP113"],
            "severity": {"NP120": "info"},
            "rules": {"NP101": {"adaptive-max": 0.1}},
            "exclude": ["scratch"],
        },
    )
    assert {"NP103", "NP122"} <= combined.ignore
    assert "NP113" in combined.select and "NP113" not in file.select
    assert combined.severity == {"NP104": Severity.WARNING, "NP120": Severity.INFO}
    assert combined.rules["NP101"] == {"sgd-max": 0.05, "adaptive-max": 0.1}
    assert combined.exclude == ["legacy", "scratch"]
    assert file.ignore == {"NP103"}  # the file's config is not touched
    replaced = apply_editor(file, {"select": ["NP104"]})
    assert replaced.enabled_codes() == {"NP104"}


def test_resolver_reads_once_and_keeps_the_last_good_file(tmp_path: Path) -> None:
    (tmp_path / "nnprobe.toml").write_text('ignore = ["NP104"]\n')
    errors: list[str] = []
    resolver = ConfigResolver(tmp_path, {}, errors.append)
    script = tmp_path / "train.py"
    assert "NP104" in resolver.config_for(script).ignore
    (tmp_path / "nnprobe.toml").write_text("ignore = [")
    assert "NP104" in resolver.config_for(script).ignore  # cached: no re-read per keystroke
    resolver.invalidate()
    assert "NP104" in resolver.config_for(script).ignore  # broken now: the last good one
    resolver.invalidate()
    resolver.config_for(script)
    assert len(errors) == 2 and "invalid TOML" in errors[0]
    assert ConfigResolver(None, {}, errors.append).config_for(None).select == (
        Config.default().select
    )


# --------------------------------------------------------------------------- store


def diagnostic(code: str) -> types.Diagnostic:
    return types.Diagnostic(
        range=types.Range(
            start=types.Position(line=0, character=0), end=types.Position(line=0, character=1)
        ),
        message=code,
        code=code,
    )


def test_store_keeps_sources_apart_and_publishes_their_union() -> None:
    sent: list[types.PublishDiagnosticsParams] = []
    store = DiagnosticStore(sent.append)
    store.replace("runtime", "file:///a.py", [diagnostic("NP301")])
    store.replace(STATIC, "file:///a.py", [diagnostic("NP104")], version=3)
    assert [d.code for d in sent[-1].diagnostics] == ["NP104", "NP301"]
    assert sent[-1].version == 3
    store.replace(STATIC, "file:///a.py", [], version=4)
    assert [d.code for d in sent[-1].diagnostics] == ["NP301"] and sent[-1].version == 4
    store.clear("runtime")
    assert list(sent[-1].diagnostics) == [] and store.uris("runtime") == set()
    store.clear(STATIC, "file:///a.py")
    assert store.uris() == set() and sent[-1].version is None


# --------------------------------------------------------------------------- misc


def test_payload_shapes() -> None:
    assert payloads.unavailable("why") == {"kind": "unavailable", "reason": "why"}
    image = payloads.image(b"\x89PNG", "filters")
    assert image["mime"] == "image/png" and base64.b64decode(image["data"]) == b"\x89PNG"
    scatter = payloads.scatter([(1, 2.5)], ["cat"], "embeddings")
    assert scatter == {
        "kind": "scatter",
        "points": [[1.0, 2.5]],
        "labels": ["cat"],
        "title": "embeddings",
    }
    with pytest.raises(ValueError):
        payloads.scatter([(1, 2)], [], "bad")


def test_code_action_kinds_and_overlaps() -> None:
    assert wanted("source.fixAll.nnprobe", ["source"])
    assert wanted("source.fixAll.nnprobe", ["source.fixAll"])
    assert not wanted("source.fixAll.nnprobe", ["quickfix"])
    assert wanted("quickfix", None)

    def rng(a: int, b: int) -> types.Range:
        return types.Range(
            start=types.Position(line=0, character=a), end=types.Position(line=0, character=b)
        )

    assert _overlaps(rng(0, 5), rng(4, 6))
    assert not _overlaps(rng(0, 4), rng(4, 6))
    assert _overlaps(rng(3, 3), rng(3, 3))


def test_tcp_addresses() -> None:
    assert parse_address("127.0.0.1:2087") == ("127.0.0.1", 2087)
    assert parse_address("2087") == ("127.0.0.1", 2087)
    assert parse_address("[::1]:2087") == ("::1", 2087)
    with pytest.raises(ValueError):
        parse_address("localhost:http")


def test_publish_findings_converts_against_the_file_and_keeps_static_results(
    tmp_path: Path,
) -> None:
    from nnprobe.server.app import create_server

    script = tmp_path / "train.py"
    script.write_text(f"import torch\n{LINE}\n", encoding="utf-8")
    uri = script.as_uri()
    server = create_server()
    logger = logging.getLogger("nnprobe")
    # create_server sends the nnprobe logger to the client; this test has none.
    logger.removeHandler(server.log_handler)
    logger.propagate, logger.level = True, logging.NOTSET
    sent: list[types.PublishDiagnosticsParams] = []
    server.store = DiagnosticStore(sent.append)
    server.store.replace(STATIC, uri, [diagnostic("NP104")], version=2)

    column = LINE.index("y") + 1
    runtime = finding(code="NP301", range=Range.of(2, column, 2, column + 1), fix=None)
    server.publish_findings("runtime", uri, [runtime])
    assert [d.code for d in sent[-1].diagnostics] == ["NP104", "NP301"]
    assert sent[-1].diagnostics[1].range.start == types.Position(line=1, character=12 + 2)

    server.clear_findings("runtime")
    assert [d.code for d in sent[-1].diagnostics] == ["NP104"]

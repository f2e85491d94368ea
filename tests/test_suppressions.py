"""Inline suppression comments, as users write them."""

from __future__ import annotations

from nnprobe.core.finding import Confidence, Finding, Range, Severity
from nnprobe.core.suppressions import parse_suppressions


def finding(code: str, line: int, end_line: int | None = None) -> Finding:
    return Finding(
        code=code,
        name="x",
        severity=Severity.ERROR,
        confidence=Confidence.HIGH,
        message="m",
        path="t.py",
        range=Range.of(line, 1, end_line or line, 5),
    )


def test_code_list_suppresses_only_those_codes() -> None:
    s = parse_suppressions("a = 1  # nnprobe: ignore[NP906, NP907]\n")
    assert s.suppresses(finding("NP906", 1))
    assert s.suppresses(finding("NP907", 1))
    assert not s.suppresses(finding("NP901", 1))
    assert not s.suppresses(finding("NP906", 2))


def test_bare_ignore_suppresses_everything_on_the_line() -> None:
    s = parse_suppressions("a = 1\nb = 2  # nnprobe: ignore\n")
    assert s.suppresses(finding("NP906", 2))
    assert not s.suppresses(finding("NP906", 1))


def test_rule_names_work_like_codes() -> None:
    s = parse_suppressions("a = 1  # nnprobe: ignore[internal-error]\n")
    assert s.suppresses(finding("NP907", 1))


def test_noqa_with_np_codes_counts_but_bare_noqa_does_not() -> None:
    s = parse_suppressions("a = 1  # noqa: NP906,E501\nb = 2  # noqa\n")
    assert s.suppresses(finding("NP906", 1))
    assert not s.suppresses(finding("NP906", 2))


def test_comment_on_any_line_of_a_multiline_finding() -> None:
    s = parse_suppressions("x = f(\n    1,\n)  # nnprobe: ignore[NP906]\n")
    assert s.suppresses(finding("NP906", 1, 3))


def test_hash_inside_a_string_is_not_a_comment() -> None:
    s = parse_suppressions('a = "# nnprobe: ignore"\n')
    assert not s.suppresses(finding("NP906", 1))


def test_file_wide_suppression() -> None:
    s = parse_suppressions("# nnprobe: ignore-file[NP906]\nimport torch\n")
    assert s.suppresses(finding("NP906", 40))
    assert not s.suppresses(finding("NP907", 40))


def test_broken_source_still_honours_comments() -> None:
    s = parse_suppressions('x = (\n  "unterminated  # nnprobe: ignore\n')
    assert s.suppresses(finding("NP906", 2))

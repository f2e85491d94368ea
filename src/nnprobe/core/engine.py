"""Runs rules and turns their output into the findings a user sees.

Inspectors register a handler per file suffix; the engine finds the files, calls the handler, keeps
one file's failure from touching the others, and applies selection, severity overrides and
suppressions the same way for every kind of evidence.
"""

from __future__ import annotations

import fnmatch
import traceback
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from nnprobe.core.config import Config
from nnprobe.core.files import Target, discover
from nnprobe.core.finding import Finding, Range, Severity
from nnprobe.core.registry import all_rules, get_rule
from nnprobe.core.rule import Rule
from nnprobe.core.suppressions import Suppressions


@dataclass
class FileResult:
    path: str
    findings: list[Finding]
    analysed: bool = True  # False when the file turned out not to be ours (a .py without torch)


Handler = Callable[[Target, Config], FileResult]
_HANDLERS: dict[str, Handler] = {}


def register_handler(suffixes: Iterable[str], handler: Handler) -> None:
    for suffix in suffixes:
        _HANDLERS[suffix.lower()] = handler


# Files whose kind is in the name, not the suffix (`events.out.tfevents.1700000000.host.42.0`).
_NAME_HANDLERS: dict[str, Handler] = {}


def register_name_handler(patterns: Iterable[str], handler: Handler) -> None:
    for pattern in patterns:
        _NAME_HANDLERS[pattern] = handler


def handled_suffixes() -> frozenset[str]:
    all_rules()  # importing the inspectors registers their handlers
    return frozenset(_HANDLERS)


def handled_names() -> frozenset[str]:
    all_rules()
    return frozenset(_NAME_HANDLERS)


def handler_for(path: Path) -> Handler | None:
    for pattern, handler in _NAME_HANDLERS.items():
        if fnmatch.fnmatch(path.name, pattern):
            return handler
    return _HANDLERS.get(path.suffix.lower())


@dataclass
class Report:
    findings: list[Finding] = field(default_factory=list)
    files: int = 0
    missing: list[str] = field(default_factory=list)  # named paths that do not exist

    def count(self, severity: Severity) -> int:
        return sum(1 for f in self.findings if f.severity is severity)


def inspect_paths(paths: Sequence[str], config: Config) -> Report:
    report = Report()
    suffixes = handled_suffixes()
    existing = []
    for raw in paths:
        if Path(raw).exists():
            existing.append(raw)
        else:
            report.missing.append(raw)
    for target in discover(existing, config, suffixes, handled_names()):
        result = inspect_target(target, config)
        if result.analysed:
            report.files += 1
        report.findings.extend(result.findings)
    report.findings.sort(key=Finding.sort_key)
    return report


def inspect_target(target: Target, config: Config) -> FileResult:
    handler = handler_for(target.path)
    if handler is None:
        if target.explicit:
            kind = target.path.suffix or target.path.name
            message = f"nnprobe cannot inspect '{kind}' files"
            finding = internal_finding("NP901", target.display, message, config)
            return FileResult(target.display, finalize([finding], config, target.path))
        return FileResult(target.display, [], analysed=False)
    try:
        return handler(target, config)
    except Exception as exc:  # one file's crash never stops the run
        message = f"nnprobe crashed on this file ({type(exc).__name__}: {exc}); please report it"
        finding = internal_finding("NP907", target.display, message, config, trace=exc)
        return FileResult(target.display, finalize([finding], config, target.path))


def instantiate(config: Config, codes: set[str], rules: Iterable[type[Rule]]) -> list[Rule]:
    """Rule objects for the enabled codes, with the user's thresholds applied."""
    return [rule(config.rules.get(rule.code)) for rule in rules if rule.code in codes]


def run_rules(rules: Iterable[Rule], ctx: object, path: str, config: Config) -> list[Finding]:
    """Every rule's findings; a rule that raises yields an NP907 naming it, the rest still run."""
    findings: list[Finding] = []
    for rule in rules:
        try:
            findings.extend(rule.check(ctx))
        except Exception as exc:
            message = (
                f"rule {rule.code} ({rule.name}) crashed on this file "
                f"({type(exc).__name__}: {exc}); its findings are missing, the other rules ran"
            )
            findings.append(internal_finding("NP907", path, message, config, trace=exc))
    return findings


def finalize(
    findings: Iterable[Finding],
    config: Config,
    path: Path | str,
    suppressions: Suppressions | None = None,
) -> list[Finding]:
    """Drop what is not selected or suppressed; apply severity overrides; sort."""
    enabled = config.enabled_codes(path)
    out = []
    for finding in findings:
        if finding.code not in enabled:
            continue
        if suppressions is not None and suppressions.suppresses(finding):
            continue
        severity = config.severity_for(finding.code, finding.severity)
        out.append(finding if severity is finding.severity else finding.with_(severity=severity))
    out.sort(key=Finding.sort_key)
    return out


def internal_finding(
    code: str,
    path: str,
    message: str,
    config: Config | None = None,
    range: Range | None = None,
    trace: BaseException | None = None,
) -> Finding:
    rule_cls = get_rule(code)
    assert rule_cls is not None, code
    rule = rule_cls()
    finding = rule.finding(path, range or Range.of(1, 1, 1, 1), message=message)
    if trace is not None:
        finding.data["traceback"] = "".join(traceback.format_exception(trace))
    if config is not None:
        finding = finding.with_(severity=config.severity_for(code, finding.severity))
    return finding

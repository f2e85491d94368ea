"""The `nnprobe` command: argument parsing, exit codes and where output goes.

Exit codes are a contract CI scripts rely on: 0 nothing at or above --fail-on, 1 something is,
2 the run itself went wrong (usage, config, a missing path, an internal error). Every failure is one
line on stderr; a traceback only with NNPROBE_DEBUG=1.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TextIO

import nnprobe
from nnprobe.core import trust
from nnprobe.core.config import (
    DEFAULT_PROBE_TIMEOUT,
    Config,
    ConfigError,
    ModelEntry,
    load_config,
    split_factory,
)
from nnprobe.core.docs import render_rule_page
from nnprobe.core.engine import Report, finalize, inspect_paths, internal_finding
from nnprobe.core.finding import Finding, Severity
from nnprobe.core.registry import all_rules, expand, get_rule
from nnprobe.core.rule import docs_url
from nnprobe.report import FORMATS, RenderOptions, render

EXIT_CLEAN = 0
EXIT_FINDINGS = 1
EXIT_ERROR = 2

FAIL_ON = {"error": Severity.ERROR, "warning": Severity.WARNING, "info": Severity.INFO}


class UsageError(Exception):
    """A mistake on the command line that argparse cannot see (a bad rule selector)."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="nnprobe", description="Finds why a neural network will not train."
    )
    parser.add_argument("--version", action="version", version=f"nnprobe {nnprobe.__version__}")
    # More commands (serve, report, embed) join here, each with its own `handler`.
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    inspect = commands.add_parser(
        "inspect",
        help="inspect training scripts, checkpoints and logs",
        description=(
            "Inspect files and directories; exit 0 when clean, 1 when a finding is at or above "
            "--fail-on, 2 when the run itself failed."
        ),
    )
    inspect.add_argument("paths", nargs="+", metavar="PATH", help="files or directories")
    inspect.add_argument(
        "--output-format", choices=FORMATS, default="text", help="output format (default: text)"
    )
    inspect.add_argument("--output", metavar="FILE", help="write the report to FILE, not stdout")
    for flag, what in (
        ("--select", "run only these rules (replaces the configured selection)"),
        ("--extend-select", "also run these rules"),
        ("--ignore", "never run these rules"),
    ):
        inspect.add_argument(
            flag,
            action="append",
            metavar="CODES",
            help=f"{what}: comma-separated codes, names or prefixes (NP1, NP10); repeatable",
        )
    inspect.add_argument(
        "--fail-on",
        choices=(*FAIL_ON, "never"),
        default="error",
        help="lowest severity that makes the exit code 1 (default: error)",
    )
    inspect.add_argument(
        "--statistics", action="store_true", help="count findings per rule (text output)"
    )
    inspect.add_argument(
        "--quiet", action="store_true", help="print the findings only, without the summary"
    )
    inspect.add_argument(
        "--show-fixes", action="store_true", help="print each available fix as a diff"
    )
    inspect.add_argument(
        "--config", metavar="FILE", help="settings file (default: searched upward)"
    )
    inspect.add_argument("--no-color", action="store_true", help="never colour the text output")
    inspect.add_argument(
        "--allow-pickle",
        action="store_true",
        help="load checkpoints that need arbitrary unpickling (this runs code: trusted files only)",
    )
    _add_probe_arguments(inspect)
    inspect.set_defaults(handler=_inspect)

    rules = commands.add_parser("rules", help="list every rule")
    rules.add_argument("--output-format", choices=("text", "json"), default="text")
    rules.set_defaults(handler=_rules)

    rule = commands.add_parser("rule", help="print a rule's documentation")
    rule.add_argument("rule", metavar="CODE", help="a rule code (NP104) or name")
    rule.set_defaults(handler=_rule)

    curves = commands.add_parser(
        "curves", help="plot a training log's curves with the NP5xx events marked (PNG)"
    )
    curves.add_argument("log", metavar="LOG", help="a CSV, JSON lines or TensorBoard event file")
    curves.add_argument("-o", "--output", metavar="PNG", required=True, help="where to write it")
    curves.add_argument("--config", metavar="FILE", help="settings file (default: searched upward)")
    curves.set_defaults(handler=_curves)

    from nnprobe.visuals.commands import add_commands

    add_commands(commands, _add_probe_arguments)

    serve = commands.add_parser("serve", help="run the language server (stdio by default)")
    serve.add_argument("--tcp", metavar="HOST:PORT", help="listen on TCP instead of stdio")
    serve.set_defaults(handler=_serve)
    return parser


def _add_probe_arguments(inspect: argparse.ArgumentParser) -> None:
    probe = inspect.add_argument_group(
        "probing checkpoints",
        "State_dicts are probed by building their model: its factory comes from --model, "
        "[tool.nnprobe.models], or the training script that saves them. Building it imports "
        "your workspace code (definitions only, never the training top level).",
    )
    probe.add_argument(
        "--model",
        action="append",
        metavar="[GLOB=]FILE.py:FACTORY",
        help="the model factory for every checkpoint, or for those matching GLOB; repeatable",
    )
    probe.add_argument(
        "--probe",
        metavar="DATA|FILE.py:FUNC",
        help="probe inputs: .npz (x, optional y), .npy or .pt data, or a function returning "
        "inputs or (inputs, labels) (default: synthetic inputs)",
    )
    probe.add_argument(
        "--input-shape", metavar="SHAPE", help="one sample's shape for synthetic inputs: 3,32,32"
    )
    probe.add_argument(
        "--probe-batch", type=int, metavar="N", help="samples per forward pass while probing"
    )
    probe.add_argument(
        "--probe-timeout",
        type=float,
        metavar="SECONDS",
        default=DEFAULT_PROBE_TIMEOUT,
        help=f"time budget per probe (default: {DEFAULT_PROBE_TIMEOUT:g})",
    )
    probe.add_argument(
        "--no-probe", action="store_true", help="weights only: no forward or backward pass"
    )
    probe.add_argument(
        "--no-import",
        action="store_true",
        help="never import workspace code (no model factories, no probe functions) and never "
        "unpickle",
    )
    probe.add_argument(
        "--untrusted",
        action="store_true",
        help=f"run as on a checkout you do not trust (CI on pull requests from forks): import no "
        f"workspace code, unpickle nothing, ignore allow-pickle in any config (also {trust.ENV}=1)",
    )


def _probe_config(config: Config, args: argparse.Namespace) -> Config:
    """The command line's probe settings over the file's (paths relative to the cwd)."""
    cwd = Path.cwd()
    entries = []
    for value in args.model or []:
        pattern, sep, factory = value.rpartition("=")
        try:
            split_factory(factory)
        except ValueError as exc:
            raise UsageError(f"--model: {exc}") from None
        entries.append(ModelEntry(factory, pattern if sep else None, cwd, "--model"))
    config.models = entries + config.models
    if args.probe:
        config.probe, config.probe_base, config.probe_named = args.probe, cwd, True
    if args.input_shape:
        from nnprobe.probe.inputs import parse_shape

        try:
            config.input_shape = parse_shape(args.input_shape)
        except ValueError as exc:
            raise UsageError(f"--input-shape: {exc}") from None
    if args.probe_batch is not None:
        if args.probe_batch <= 0:
            raise UsageError("--probe-batch must be a positive integer")
        config.probe_batch = args.probe_batch
    if args.probe_timeout <= 0:
        raise UsageError("--probe-timeout must be a positive number of seconds")
    config.probe_timeout = args.probe_timeout
    config.run_probes = not args.no_probe
    # Running `nnprobe inspect` is the user asking to look inside their own workspace, as running
    # pytest is; a checkout they do not trust is run with --untrusted.
    why = _untrusted_by(args)
    if why and getattr(args, "allow_pickle", False):
        raise UsageError(f"--allow-pickle cannot be used with {why}: unpickling runs code")
    config.trusted = why is None
    return trust.settle(config)


def _untrusted_by(args: argparse.Namespace) -> str | None:
    """What makes this run untrusted, as the user would recognise it, or None."""
    if args.untrusted:
        return "--untrusted"
    if trust.env_untrusted():
        return f"{trust.ENV}={os.environ[trust.ENV]}"
    return "--no-import" if args.no_import else None


def main(argv: Sequence[str] | None = None) -> int:
    _tolerate_unencodable(sys.stdout)
    # The picture commands run ONNX Runtime here: no telemetry (worker.library_environment).
    os.environ["ORT_DISABLE_TELEMETRY"] = "1"
    try:
        parser = build_parser()
        try:
            args = parser.parse_args(argv)
        except SystemExit as exc:  # --help, --version, usage errors
            if exc.code is None or isinstance(exc.code, int):
                return exc.code or EXIT_CLEAN
            return EXIT_ERROR
        handler: Callable[[argparse.Namespace], int] = args.handler
        return handler(args)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        _silence_stdout()
        return EXIT_ERROR
    except (ConfigError, UsageError) as exc:
        return _fail(str(exc))
    except Exception as exc:
        if os.environ.get("NNPROBE_DEBUG") == "1":
            traceback.print_exc()
        return _fail(f"internal error ({type(exc).__name__}: {exc}); NNPROBE_DEBUG=1 shows more")


def _tolerate_unencodable(stream: TextIO) -> None:
    """A message quoting a non-ASCII line must not crash on a terminal that cannot show it."""
    reconfigure = getattr(stream, "reconfigure", None)
    if reconfigure is not None:
        with contextlib.suppress(OSError, ValueError):
            reconfigure(errors="backslashreplace")


def _fail(message: str) -> int:
    first_line = message.strip().splitlines()[0] if message.strip() else "unknown error"
    print(f"nnprobe: error: {first_line}", file=sys.stderr)
    return EXIT_ERROR


def _silence_stdout() -> None:
    """After the reader of a pipe went away, keep the interpreter's final flush from failing."""
    with contextlib.suppress(OSError, ValueError):
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())


def _selectors(values: list[str] | None, flag: str) -> list[str] | None:
    if values is None:
        return None
    items = [item.strip() for value in values for item in value.split(",") if item.strip()]
    try:
        expand(items)
    except ValueError as exc:
        raise UsageError(f"{flag}: {exc}") from None
    return items


def _config(args: argparse.Namespace) -> Config:
    config = _load(args)
    config = config.with_overrides(
        select=_selectors(args.select, "--select"),
        extend_select=_selectors(args.extend_select, "--extend-select"),
        ignore=_selectors(args.ignore, "--ignore"),
    )
    if getattr(args, "allow_pickle", False):
        config.allow_pickle = True
    return config


def _load(args: argparse.Namespace) -> Config:
    """The named config, or the one found above the cwd (read only within the cwd or its own
    folder when it is a link: see core.config)."""
    if args.config:
        return load_config(Path(args.config))
    return load_config(start=Path.cwd(), roots=[Path.cwd()])


def _config_problems(config: Config) -> list[Finding]:
    """NP901 on each settings file that was found but not obeyed."""
    findings = []
    for path, message in config.problems:
        display = os.path.relpath(path) if path.is_absolute() else str(path)
        finding = internal_finding("NP901", Path(display).as_posix(), message, config)
        findings.extend(finalize([finding], config, path))
    return findings


def _use_color(args: argparse.Namespace, stream: TextIO) -> bool:
    if args.no_color or args.output or os.environ.get("NO_COLOR"):
        return False
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def _inspect(args: argparse.Namespace) -> int:
    if args.statistics and args.output_format != "text":
        raise UsageError("--statistics works with --output-format text only")
    config = _probe_config(_config(args), args)
    with trust.guard(config.trusted):
        report = inspect_paths(args.paths, config)
    report.findings[:0] = _config_problems(config)
    options = RenderOptions(
        color=_use_color(args, sys.stdout),
        show_fixes=args.show_fixes,
        statistics=args.statistics,
        quiet=args.quiet,
        # Paths are shown as the user named them, so they are relative to the cwd.
        root=Path.cwd() if args.output_format == "sarif" else None,
    )
    output = render(args.output_format, report, options)
    if args.output:
        try:
            Path(args.output).write_text(output, encoding="utf-8")
        except OSError as exc:
            return _fail(f"cannot write {args.output}: {exc.strerror or exc}")
    else:
        sys.stdout.write(output)
        sys.stdout.flush()
    for path in report.missing:
        print(f"nnprobe: error: path does not exist: {path}", file=sys.stderr)
    if report.missing:
        return EXIT_ERROR
    return EXIT_FINDINGS if _fails(report, args.fail_on) else EXIT_CLEAN


def _fails(report: Report, fail_on: str) -> bool:
    if fail_on == "never":
        return False
    threshold = FAIL_ON[fail_on].rank
    return any(finding.severity.rank >= threshold for finding in report.findings)


def _rules(args: argparse.Namespace) -> int:
    rules = all_rules()
    if args.output_format == "json":
        rows = [
            {
                "code": rule.code,
                "name": rule.name,
                "summary": rule.summary(),
                "evidence": rule.evidence.value,
                "severity": rule.severity.value,
                "confidence": rule.confidence.value,
                "fixable": rule.fixable,
                "enabled_by_default": rule.enabled_by_default,
                "since": rule.since,
                "url": docs_url(rule.code),
            }
            for rule in rules
        ]
        sys.stdout.write(json.dumps(rows, indent=2) + "\n")
        return EXIT_CLEAN
    header = ("code", "name", "evidence", "severity", "fix", "default")
    table = [header] + [
        (
            rule.code,
            rule.name,
            rule.evidence.value,
            rule.severity.value,
            "yes" if rule.fixable else "no",
            "on" if rule.enabled_by_default else "off",
        )
        for rule in rules
    ]
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    for row in table:
        cells = (cell.ljust(width) for cell, width in zip(row, widths, strict=True))
        sys.stdout.write("  ".join(cells).rstrip() + "\n")
    return EXIT_CLEAN


def _rule(args: argparse.Namespace) -> int:
    rule = get_rule(args.rule)
    if rule is None:
        raise UsageError(f"unknown rule code or name {args.rule!r} (see `nnprobe rules`)")
    sys.stdout.write(render_rule_page(rule))
    return EXIT_CLEAN


def _curves(args: argparse.Namespace) -> int:
    from nnprobe.logs.curves import curves_png
    from nnprobe.logs.reader import NotALog

    config = _load(args)
    for _, message in config.problems:
        print(f"nnprobe: warning: {message}", file=sys.stderr)
    try:
        png, _ = curves_png(Path(args.log), config)
    except (NotALog, OSError, ImportError) as exc:
        return _fail(f"{args.log}: {exc}")
    Path(args.output).write_bytes(png)
    return EXIT_CLEAN


def _serve(args: argparse.Namespace) -> int:
    try:
        from nnprobe.server.main import parse_address, serve
    except ImportError as exc:
        message = f"nnprobe serve needs the lsp extra: pip install 'nnprobe[lsp]' ({exc})"
        raise UsageError(message) from None
    if args.tcp:
        try:
            parse_address(args.tcp)
        except ValueError as exc:
            raise UsageError(str(exc)) from None
    return serve(args.tcp)

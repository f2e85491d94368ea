"""The picture subcommands of the CLI: `nnprobe embed|filters|activations|top|occlusion
CHECKPOINT -o out.png|html` and `nnprobe report PATH... -o report.html`.

They take the same model and probe options as `nnprobe inspect` (the CLI's own helpers add and
read them) and run the picture jobs in this process: a one-off command has no editor to keep
responsive, and no time budget to enforce.
"""

from __future__ import annotations

import argparse
import base64
import os
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from nnprobe.core import trust
from nnprobe.visuals.params import CHECKPOINT_SUFFIXES, PictureError, picture_params

HELP = {
    "embed": "2-D embedding of a hidden layer (PCA, UMAP or t-SNE), coloured by label",
    "filters": "a conv layer's filters with their NP204 roughness",
    "activations": "a layer's feature maps for one input, dead channels marked",
    "top": "the probe inputs that most excite one unit, its receptive field outlined",
    "occlusion": "occlusion sensitivity of one input (drop of the true class's probability)",
}
REPORT_PICTURES: tuple[tuple[str, dict[str, Any]], ...] = (
    ("embed", {}),
    ("filters", {}),
    ("activations", {"input": 0}),
    ("top", {"unit": 0}),
    ("occlusion", {"input": 0}),
)


def add_commands(
    commands: Any, add_probe_arguments: Callable[[argparse.ArgumentParser], None]
) -> None:
    for kind, text in HELP.items():
        sub = commands.add_parser(kind, help=text, description=text + ".")
        sub.add_argument("checkpoint", metavar="CHECKPOINT", help="a checkpoint or ONNX file")
        sub.add_argument("-o", "--output", metavar="OUT", required=True, help="out.png or .html")
        sub.add_argument("--layer", metavar="NAME", help="module path (default: a sensible one)")
        if kind == "top":
            sub.add_argument("--unit", type=int, default=0, metavar="N", help="unit or channel")
            sub.add_argument("-k", type=int, default=9, help="how many inputs (default 9)")
        if kind in ("activations", "occlusion"):
            sub.add_argument("--input", type=int, default=0, metavar="N", help="probe input")
        if kind == "embed":
            sub.add_argument(
                "--method", choices=("pca", "umap", "tsne"), default="umap", help="projection"
            )
        _common(sub, add_probe_arguments)
        sub.set_defaults(handler=_picture, kind=kind)
    report = commands.add_parser(
        "report", help="one offline HTML file: findings and every checkpoint's pictures"
    )
    report.add_argument("paths", nargs="+", metavar="PATH", help="files or directories")
    report.add_argument("-o", "--output", metavar="HTML", required=True, help="report.html")
    report.add_argument(
        "--embedding",
        choices=("pca", "umap", "tsne"),
        default="pca",
        help="projection for the embedding previews (default pca: umap costs 20-60 s of "
        "compilation on its first call)",
    )
    _common(report, add_probe_arguments)
    report.set_defaults(handler=_report)


def _common(
    sub: argparse.ArgumentParser, add_probe_arguments: Callable[[argparse.ArgumentParser], None]
) -> None:
    sub.add_argument("--config", metavar="FILE", help="settings file (default: searched upward)")
    sub.add_argument(
        "--allow-pickle", action="store_true", help="load full pickled models (trusted files)"
    )
    add_probe_arguments(sub)


def _config(args: argparse.Namespace) -> Any:
    from nnprobe.cli import _probe_config
    from nnprobe.core.config import load_config

    config = load_config(Path(args.config)) if args.config else load_config(start=Path.cwd())
    # As `nnprobe inspect`: the flag, or the config's allow-pickle, counts in a trusted run only.
    config.allow_pickle = config.allow_pickle or bool(args.allow_pickle)
    return _probe_config(config, args)


def _options(args: argparse.Namespace) -> dict[str, Any]:
    names = ("layer", "unit", "k", "input", "method")
    return {name: getattr(args, name) for name in names if hasattr(args, name)}


def compute(params: dict[str, Any]) -> dict[str, Any]:
    from nnprobe.visuals.jobs import run_picture

    return run_picture(params)


def _picture(args: argparse.Namespace) -> int:
    from nnprobe.cli import EXIT_CLEAN, _fail

    path = Path(args.checkpoint)
    if not path.is_file():
        return _fail(f"path does not exist: {path}")
    config = _config(args)
    try:
        params = picture_params(path, config, args.kind, args.checkpoint, **_options(args))
    except PictureError as exc:
        return _fail(f"{args.checkpoint}: {exc}")
    params["png"] = True
    with trust.guard(config.trusted):
        payload = compute(params)
    if "error" in payload:
        error = payload["error"]
        return _fail(f"{args.checkpoint}: {error['code']}: {error['message']}")
    out = Path(args.output)
    if out.suffix.lower() in (".html", ".htm"):
        from nnprobe.core.engine import Report
        from nnprobe.report.html import render_report

        text = render_report(Report(), {args.checkpoint: [payload]}, payload.get("title", ""))
        out.write_text(text, encoding="utf-8")
    else:
        out.write_bytes(base64.b64decode(payload.get("png") or payload["data"]))
    return EXIT_CLEAN


def checkpoints(paths: list[str]) -> Iterator[Path]:
    return _files(paths, lambda name: Path(name).suffix.lower() in CHECKPOINT_SUFFIXES)


def _files(paths: list[str], wanted: Callable[[str], bool]) -> Iterator[Path]:
    for raw in paths:
        path = Path(raw)
        if path.is_file() and wanted(path.name):
            yield path
        elif path.is_dir():
            for root, dirs, files in os.walk(path):
                dirs[:] = sorted(d for d in dirs if not d.startswith("."))
                for name in sorted(files):
                    if wanted(name):
                        yield Path(root) / name


def log_curves(paths: list[str], config: Any) -> dict[str, list[dict[str, Any]]]:
    """Each training log's curves as an image payload; files that hold no curves are skipped."""
    from nnprobe.logs.curves import curves_png
    from nnprobe.logs.reader import NotALog, is_log_name

    out: dict[str, list[dict[str, Any]]] = {}
    for path in _files(paths, is_log_name):
        try:
            png, title = curves_png(path, config)
        except (NotALog, OSError, ImportError):
            continue
        data = base64.b64encode(png).decode("ascii")
        payload = {"kind": "image", "mime": "image/png", "data": data, "title": title}
        out[path.as_posix()] = [payload]
    return out


def report_pictures(
    path: Path, config: Any, embedding: str, dead: Sequence[str] = ()
) -> list[dict[str, Any]]:
    """The pictures of one checkpoint; `dead` names the layers NP301 found dead in it, whose
    feature maps the activation picture shows (the first that is one) instead of the first's."""
    out: list[dict[str, Any]] = []
    for kind, options in REPORT_PICTURES:
        extra = {"method": embedding} if kind == "embed" else {}
        try:
            params = picture_params(path, config, kind, path.as_posix(), **options, **extra)
        except PictureError as exc:
            return [{"error": {"code": "NP905", "message": str(exc)}}]
        flagged = (compute({**params, "layer": layer}) for layer in dead if kind == "activations")
        payload = next((p for p in flagged if "error" not in p), None) or compute(params)
        out.append(payload)
        if "error" in payload and payload["error"].get("code") in ("NP901", "NP905", "NP903"):
            if kind == "embed":  # the model itself could not be run: the rest would repeat it
                break
    return out


def _report(args: argparse.Namespace) -> int:
    from nnprobe.cli import EXIT_CLEAN, _fail
    from nnprobe.core.engine import inspect_paths
    from nnprobe.report.html import render_report

    config = _config(args)
    with trust.guard(config.trusted):
        report = inspect_paths(args.paths, config)
        if report.missing:
            return _fail(f"path does not exist: {report.missing[0]}")
        dead: dict[str, list[str]] = {}
        for finding in report.findings:
            if finding.code == "NP301" and finding.module:
                dead.setdefault(finding.path, []).append(finding.module)
        pictures = {
            path.as_posix(): report_pictures(
                path, config, args.embedding, dead.get(path.as_posix(), [])
            )
            for path in checkpoints(args.paths)
        }
    pictures.update(log_curves(args.paths, config))
    title = "nnprobe report: " + ", ".join(args.paths)
    Path(args.output).write_text(render_report(report, pictures, title), encoding="utf-8")
    return EXIT_CLEAN

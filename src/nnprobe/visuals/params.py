"""A picture job's parameters, built where no torch may be imported (the language server, the
CLI before it decides where to run): the checkpoint, its model factory (resolved statically,
nnprobe.probe.factory), the probe inputs (nnprobe.probe.runtime.probe_source) and the picture's
options. The worker turns them into a picture (nnprobe.visuals.jobs)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from nnprobe.core import trust
from nnprobe.core.config import Config
from nnprobe.core.files import CHECKPOINT_SUFFIXES as CHECKPOINT_SUFFIXES  # re-exported

PICTURE_KINDS = ("embed", "filters", "activations", "top", "occlusion")


class PictureError(Exception):
    """The picture cannot be asked for (no trust to import the model, bad probe settings)."""


def picture_params(
    path: Path, config: Config, kind: str, display: str | None = None, **options: Any
) -> dict[str, Any]:
    from nnprobe.probe.factory import resolve_factory
    from nnprobe.probe.runtime import probe_source

    if kind not in PICTURE_KINDS:
        raise PictureError(f"unknown picture {kind!r} (one of {', '.join(PICTURE_KINDS)})")
    params: dict[str, Any] = {
        "kind": kind,
        "checkpoint": str(path.resolve()),
        "display": display or path.as_posix(),
        "trusted": config.trusted,
        "allow_pickle": trust.may_unpickle(config),
        "input_shape": list(config.input_shape) if config.input_shape else None,
    }
    params.update({k: v for k, v in options.items() if v is not None})
    try:
        params["probe"] = probe_source(config)
    except ValueError as exc:
        raise PictureError(str(exc)) from None
    if path.suffix.lower() != ".onnx":
        resolution = resolve_factory(path, config)
        if resolution.spec is not None:
            if not config.trusted:
                raise PictureError(
                    f"the model factory {resolution.spec.describe()} was found, but importing "
                    f"workspace code is not allowed here ({trust.UNTRUSTED_WAYS})"
                )
            params["factory"] = resolution.spec.to_dict()
        else:
            params["factory_reason"] = resolution.reason
    return params

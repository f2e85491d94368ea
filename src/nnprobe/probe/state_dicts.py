"""What a `torch.load` result holds: the state_dict inside the bundle people actually save, its
names as module paths, and the training metadata saved beside it.

People save weights in many shapes: a bare `model.state_dict()`, `{"model": sd, "optimizer": osd,
"epoch": 3}`, Lightning's `{"state_dict": ..., "global_step": ...}` whose names carry the
LightningModule's `model.` attribute, DDP's `module.` prefix, torch.compile's `_orig_mod.`. This
module finds the weights in all of them and reads the numbers that say how far training got (step,
epoch) and with which optimizer settings (lr, momentum, weight_decay from the saved param_groups).
Only plain containers are walked; nothing here unpickles.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

# Keys under which bundles keep the model's state_dict, most specific first.
WEIGHT_KEYS = (
    "state_dict",
    "model_state_dict",
    "model_state",
    "model",
    "net",
    "network",
    "module",
    "weights",
    "params",
)
# Keys under which bundles keep an optimizer's state_dict (Lightning keeps a list).
OPTIMIZER_KEYS = ("optimizer", "optimizer_state_dict", "optimizer_state", "optim", "opt")
LIGHTNING_OPTIMIZERS = "optimizer_states"
# Wrappers whose attribute name prefixes every parameter: Lightning's `self.model`, DDP and
# DataParallel's `module`, torch.compile's `_orig_mod`. Stripped only when every name has one.
WRAPPER_PREFIXES = ("model.", "module.", "_orig_mod.")
STEP_KEYS = ("global_step", "step", "iteration", "iter")
EPOCH_KEYS = ("epoch",)
OPTIMIZER_SETTINGS = ("lr", "momentum", "weight_decay", "betas", "nesterov", "dampening")
# Top-level keys of files that hold probe data rather than weights.
DATA_KEYS = frozenset({"x", "y", "inputs", "labels", "targets", "data", "images", "features"})
# Non-tensor entries a real state_dict may carry (nn.Module.get_extra_state).
_EXTRA_STATE = "_extra_state"


class NotWeights(Exception):
    """The object holds no model weights; `data_like` when it looks like a probe data file."""

    def __init__(self, message: str, data_like: bool = False) -> None:
        super().__init__(message)
        self.data_like = data_like


def is_tensor(value: object) -> bool:
    return type(value).__module__.startswith("torch") and hasattr(value, "dtype")


def is_state_dict(value: object) -> bool:
    """A non-empty mapping from names to tensors (extra-state entries aside)."""
    if not isinstance(value, Mapping) or not value:
        return False
    tensors = 0
    for key, item in value.items():
        if not isinstance(key, str):
            return False
        if is_tensor(item):
            tensors += 1
        elif not key.endswith(_EXTRA_STATE):
            return False
    return tensors > 0


def find_state_dict(obj: object, depth: int = 0) -> tuple[Mapping[str, Any], str | None]:
    """The state_dict inside `obj` and the bundle key path it sat under (None: at the top).

    An nn.Module (only reachable when pickles are allowed) gives its own state_dict.
    Raises NotWeights when there is none.
    """
    if hasattr(obj, "state_dict") and hasattr(obj, "named_modules"):
        return obj.state_dict(), None
    if is_state_dict(obj) and not _looks_like_data(obj):
        assert isinstance(obj, Mapping)
        return obj, None
    if isinstance(obj, Mapping) and depth < 3:
        for key in WEIGHT_KEYS:
            if key in obj:
                try:
                    found, below = find_state_dict(obj[key], depth + 1)
                except NotWeights:
                    continue
                return found, key if below is None else f"{key}.{below}"
        loose = {k: v for k, v in obj.items() if isinstance(k, str) and "." in k and is_tensor(v)}
        if loose:
            return loose, None
    raise NotWeights(*_describe_non_weights(obj))


def _looks_like_data(obj: object) -> bool:
    """{"x": inputs, "y": labels}: a probe data file, whose names are no module paths."""
    return (
        isinstance(obj, Mapping)
        and bool(obj)
        and all(isinstance(k, str) and k.lower() in DATA_KEYS for k in obj)
    )


def _describe_non_weights(obj: object) -> tuple[str, bool]:
    if is_tensor(obj):
        shape = "x".join(str(d) for d in getattr(obj, "shape", ())) or "scalar"
        return f"holds a single tensor ({shape}), not model weights", True
    if isinstance(obj, list | tuple):
        if obj and all(is_tensor(v) for v in obj):
            return f"holds a {type(obj).__name__} of {len(obj)} tensors, not model weights", True
        return f"holds a {type(obj).__name__}, not a state_dict", False
    if isinstance(obj, Mapping):
        if not obj:
            return "holds an empty dict, no weights", False
        keys = [str(k) for k in obj]
        shown = ", ".join(keys[:8]) + (", ..." if len(keys) > 8 else "")
        if {k.lower() for k in keys} & DATA_KEYS and all(
            is_tensor(v) or isinstance(v, int | float | str) for v in obj.values()
        ):
            return f"holds data arrays ({shown}), not model weights", True
        return (
            f"no state_dict found (top-level keys: {shown}); nnprobe looks for a state_dict, or "
            f"one under {', '.join(repr(k) for k in WEIGHT_KEYS[:5])}, ...",
            False,
        )
    return f"holds a {type(obj).__name__}, not a state_dict", False


def strip_wrappers(names: list[str]) -> str:
    """The wrapper prefix shared by every name ("model.", "module.model.", ...), or ""."""
    prefix = ""
    rest = names
    while rest:
        for wrapper in WRAPPER_PREFIXES:
            if all(name.startswith(wrapper) and len(name) > len(wrapper) for name in rest):
                prefix += wrapper
                rest = [name[len(wrapper) :] for name in rest]
                break
        else:
            break
    return prefix


def to_numpy(tensor: Any) -> tuple[np.ndarray | None, str]:
    """(array, original dtype name): floating tensors as float32 (float64 kept), other dtypes as
    they are; None for what numpy cannot hold (complex, meta tensors)."""
    import torch

    dtype = str(tensor.dtype).removeprefix("torch.")
    t = tensor.detach()
    if t.device.type == "meta":
        return None, dtype
    if t.is_quantized:
        t = t.dequantize()
    if t.layout != torch.strided:
        t = t.to_dense()
    t = t.cpu()
    if t.is_complex():
        return None, dtype
    if t.is_floating_point():
        if dtype not in ("float32", "float64"):
            t = t.float()
        return t.numpy(), dtype
    return t.numpy(), dtype


def scalar(value: object) -> int | float | None:
    """A plain number from an int, float or one-element tensor; None otherwise."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return value
    if is_tensor(value) and getattr(value, "numel", lambda: 0)() == 1:
        item = value.item()  # type: ignore[attr-defined]
        return item if isinstance(item, int | float) else None
    if isinstance(value, np.generic) and value.size == 1:
        item = value.item()
        return item if isinstance(item, int | float) else None
    return None


def bundle_metadata(bundle: object) -> dict[str, Any]:
    """Training progress and optimizer settings saved beside the weights."""
    meta: dict[str, Any] = {}
    if not isinstance(bundle, Mapping) or is_state_dict(bundle):
        return meta
    for key in (*STEP_KEYS, *EPOCH_KEYS):
        if key in bundle:
            number = scalar(bundle[key])
            if number is not None:
                meta[key] = int(number) if float(number).is_integer() else number
    optimizer = None
    for key in OPTIMIZER_KEYS:
        if isinstance(bundle.get(key), Mapping) and "param_groups" in bundle[key]:
            optimizer = bundle[key]
            break
    states = bundle.get(LIGHTNING_OPTIMIZERS)
    if optimizer is None and isinstance(states, list | tuple) and states:
        if isinstance(states[0], Mapping) and "param_groups" in states[0]:
            optimizer = states[0]
    if optimizer is not None:
        meta.update(optimizer_settings(optimizer))
    hparams = bundle.get("hyper_parameters")
    if isinstance(hparams, Mapping):
        plain = {str(k): v for k, v in hparams.items() if isinstance(v, int | float | str | bool)}
        if plain:
            meta["hyper_parameters"] = plain
    version = bundle.get("pytorch-lightning_version")
    if isinstance(version, str):
        meta["lightning_version"] = version
    return meta


def optimizer_settings(state: Mapping[str, Any]) -> dict[str, Any]:
    """lr, momentum, weight_decay (and betas, nesterov, dampening) of the first param group, and the
    number of groups when there are several."""
    groups = state.get("param_groups")
    if not isinstance(groups, list | tuple) or not groups or not isinstance(groups[0], Mapping):
        return {}
    out: dict[str, Any] = {}
    for key in OPTIMIZER_SETTINGS:
        if key not in groups[0]:
            continue
        value = groups[0][key]
        if key == "betas" and isinstance(value, list | tuple):
            betas = [scalar(b) for b in value]
            if all(b is not None for b in betas):
                out[key] = tuple(betas)
            continue
        number = value if isinstance(value, bool) else scalar(value)
        if number is not None:
            out[key] = number
    if len(groups) > 1:
        out["param_groups"] = len(groups)
    return out

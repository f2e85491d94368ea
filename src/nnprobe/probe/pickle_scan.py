"""What an opted-in load of a refused pickle would import, read from its opcodes, never unpickled.

NP902 refuses files that `torch.load(weights_only=True)` will not read; its message names the
globals a `weights_only=False` load would import (`posix.system`, `builtins.exec`, a model class),
the way model scanners report them, so the user can judge the file before opting in. The opcodes
are read by picklescan (bench/pickle_scan_bench.py compares it with fickling, modelscan and the
former hand-written walker: it named every import in the hostile corpus, flagged no ordinary
checkpoint, scans a 48 MiB state_dict in about 1 ms and has no dependencies). It walks bare pickles,
the legacy torch format, and every pickle member of a .pt/.pth/.ckpt zip with `pickletools.genops`.

Globals torch's weights-only unpickler accepts (tensor rebuilders, OrderedDict) are left out: they
are in every checkpoint and cannot run code.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

# Accepted by torch's weights-only unpickler in every version nnprobe supports; the live allowlist
# is added when torch is importable.
_ALWAYS_SAFE = frozenset(
    {"collections.OrderedDict", "builtins.set", "builtins.frozenset", "_codecs.encode"}
)
_SAFE_PREFIXES = ("torch._utils._rebuild_", "torch._tensor._rebuild_", "torch.serialization._")


def would_import(path: Path) -> list[str] | None:
    """The non-weights globals unpickling `path` would import, the dangerous ones first; [] when
    there are none, None when the scanner is missing or cannot read the file."""
    try:
        from picklescan.scanner import SafetyLevel, scan_file_path
    except ImportError:
        return None
    logging.getLogger("picklescan").setLevel(logging.CRITICAL)
    try:
        result = scan_file_path(str(path))
    except Exception:
        return None
    safe = _torch_allowlist()
    rank = {SafetyLevel.Dangerous: 0, SafetyLevel.Suspicious: 1, SafetyLevel.Innocuous: 2}
    found: dict[str, int] = {}
    for item in result.globals:
        name = _canonical(f"{item.module}.{item.name}")
        if name in safe or name.startswith(_SAFE_PREFIXES):
            continue
        found[name] = min(found.get(name, 3), rank[item.safety])
    return sorted(found, key=lambda n: (found[n], n))


def _canonical(name: str) -> str:
    """Protocol 2 pickles spell builtins the Python 2 way."""
    old = "__builtin__."
    return "builtins." + name.removeprefix(old) if name.startswith(old) else name


def _torch_allowlist() -> frozenset[str]:
    try:
        from torch import _weights_only_unpickler as unpickler
    except ImportError:
        return _ALWAYS_SAFE
    allowed: Any = getattr(unpickler, "_get_allowed_globals", dict)()
    return _ALWAYS_SAFE | frozenset(str(key) for key in allowed)

"""What an opted-in load of a refused pickle would import, read from its opcodes, never unpickled.

NP902 refuses files that `torch.load(weights_only=True)` will not read; its message names the
globals a `weights_only=False` load would import (`posix.system`, `builtins.exec`, a model class),
the way model scanners report them, so the user can judge the file before opting in. The opcodes
are read by picklescan (bench/pickle_scan_bench.py compares it with fickling, modelscan and the
former hand-written walker: it named every import in the hostile corpus, flagged no ordinary
checkpoint, scans a 48 MiB state_dict in about 1 ms and has no dependencies). It walks bare pickles,
the legacy torch format, and every pickle member of a .pt/.pth/.ckpt zip with `pickletools.genops`.

Globals torch's weights-only unpickler accepts (tensor rebuilders, OrderedDict) are left out: they
are in every checkpoint and cannot run code. picklescan keeps every opcode of a pickle in a list
(about 100 bytes of memory per byte of pickle), so it is handed at most SCAN_LIMIT bytes of each
pickle: a state_dict's data.pkl is about 150 bytes a tensor, and a hostile pickle padded to
gigabytes is still refused (torch decides that), its message then saying the scan stopped early.
"""

from __future__ import annotations

import io
import logging
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SCAN_LIMIT = 2**20  # bytes of each pickle handed to the scanner

# Accepted by torch's weights-only unpickler in every version nnprobe supports; the live allowlist
# is added when torch is importable.
_ALWAYS_SAFE = frozenset(
    {"collections.OrderedDict", "builtins.set", "builtins.frozenset", "_codecs.encode"}
)
# Only the rebuilders: other private torch names (torch.serialization._open_file opens any path)
# are as dangerous as any other global.
_SAFE_PREFIXES = ("torch._utils._rebuild_", "torch._tensor._rebuild_")
# picklescan's word for a STACK_GLOBAL operand it cannot resolve statically (built on the stack).
_UNKNOWN = "unknown"
COMPUTED = "a global whose name is computed while unpickling"


@dataclass
class Imports:
    """The globals found, the dangerous ones first; `complete` is False when a pickle was longer
    than SCAN_LIMIT and only its start was read."""

    names: list[str]
    complete: bool = True
    dangerous: tuple[str, ...] = ()  # the names picklescan rates dangerous (code execution, I/O)


def would_import(path: Path) -> Imports | None:
    """The non-weights globals unpickling `path` would import; None when the scanner is missing
    or cannot read the file. Call it on archives that passed zip_limits."""
    try:
        from picklescan.scanner import SafetyLevel, scan_bytes, scan_pickle_bytes
    except ImportError:
        return None
    logging.getLogger("picklescan").setLevel(logging.CRITICAL)
    found: list[Any] = []
    complete = True
    try:
        if zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as archive:
                for info in archive.infolist():
                    if not info.filename.endswith(".pkl"):
                        continue
                    complete &= info.file_size <= SCAN_LIMIT
                    with archive.open(info) as member:
                        head = io.BytesIO(member.read(SCAN_LIMIT))
                    found += scan_pickle_bytes(head, info.filename).globals
        else:
            with path.open("rb") as handle:
                head = io.BytesIO(handle.read(SCAN_LIMIT + 1))
            complete = len(head.getbuffer()) <= SCAN_LIMIT
            head.truncate(SCAN_LIMIT)
            found = scan_bytes(head, path.name, path.suffix).globals
    except Exception:
        return None
    safe = _torch_allowlist()
    rank = {SafetyLevel.Dangerous: 0, SafetyLevel.Suspicious: 1, SafetyLevel.Innocuous: 2}
    ranked: dict[str, int] = {}
    for item in found:
        name = _canonical(f"{item.module}.{item.name}")
        if _UNKNOWN in (item.module, item.name):
            name = COMPUTED
        if name in safe or name.startswith(_SAFE_PREFIXES):
            continue
        ranked[name] = min(ranked.get(name, 3), rank[item.safety])
    names = sorted(ranked, key=lambda n: (ranked[n], n))
    return Imports(names, complete, tuple(n for n in names if ranked[n] == 0))


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

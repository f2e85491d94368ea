"""Files that must not be read the way their name invites: scripts, settings and training logs
that are named pipes, devices, links out of the workspace, too large, or nested past what a parser
follows (issue 12, item 4). Each is refused with one NP901 naming the file and the reason, and
the good file written beside it keeps its findings.

The builds are cheap: the large files are sparse, the deep ones a few hundred KB. A file "outside
the workspace" is written beside the sentinel, which lies outside the folder in every harness.
The first two cases (a FIFO and an oversized script) are refused whether they are found in a
folder or named; a link out of the workspace is followed when the user names the link itself,
so those cases are meant for folder walks and the language server.
"""

from __future__ import annotations

import json
import os
import struct
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from corpus import Hostile

GOOD_SCRIPT = """import torch
from torch import nn

model = nn.Linear(4, 2)
optimizer = torch.optim.SGD(model.parameters(), lr=5.0)
"""
GOOD_SCRIPT_CODE = "NP101"  # lr 5.0 with SGD
GOOD_LOG = "epoch,train_loss\n0,2.3\n1,1.9\n2,nan\n3,nan\n"
GOOD_LOG_CODE = "NP501"  # the loss became NaN
SPARSE_SCRIPT = 50 * 2**20  # the attacker's 50 MB script
SPARSE_LOG = 100 * 2**20
DEPTH = 100_000


@dataclass(frozen=True)
class Reading(Hostile):
    """A case with the environment its run needs, and the good file written beside the bad one
    (`good`: its name in the folder, `good_code`: the finding it must keep)."""

    env: Mapping[str, str] = field(default_factory=dict)
    good: str = ""
    good_code: str = ""


def outside(sentinel: Path) -> Path:
    folder = sentinel.parent / "outside-the-workspace"
    folder.mkdir(exist_ok=True)
    return folder


def with_good_script(bad: Callable[[Path, Path], Path]) -> Callable[[Path, Path], Path]:
    def build(folder: Path, sentinel: Path) -> Path:
        (folder / "good.py").write_text(GOOD_SCRIPT, encoding="utf-8")
        return bad(folder, sentinel)

    return build


def with_good_log(bad: Callable[[Path, Path], Path]) -> Callable[[Path, Path], Path]:
    def build(folder: Path, sentinel: Path) -> Path:
        (folder / "good_metrics.csv").write_text(GOOD_LOG, encoding="utf-8")
        return bad(folder, sentinel)

    return build


def fifo(name: str) -> Callable[[Path, Path], Path]:
    def build(folder: Path, sentinel: Path) -> Path:
        path = folder / name
        os.mkfifo(path)
        return path

    return build


def sparse(name: str, head: str, size: int) -> Callable[[Path, Path], Path]:
    """`head` then zeros up to `size` bytes, without writing them."""

    def build(folder: Path, sentinel: Path) -> Path:
        path = folder / name
        with path.open("wb") as handle:
            handle.write(head.encode())
            handle.truncate(size)
        return path

    return build


def link(name: str, target: str) -> Callable[[Path, Path], Path]:
    def build(folder: Path, sentinel: Path) -> Path:
        path = folder / name
        path.symlink_to(target)
        return path

    return build


def link_out(name: str, content: str) -> Callable[[Path, Path], Path]:
    """`name` in the workspace, a link to a file of `content` outside it."""

    def build(folder: Path, sentinel: Path) -> Path:
        real = outside(sentinel) / name
        real.write_text(content, encoding="utf-8")
        path = folder / name
        path.symlink_to(real)
        return path

    return build


def write(name: str, content: str) -> Callable[[Path, Path], Path]:
    def build(folder: Path, sentinel: Path) -> Path:
        path = folder / name
        path.write_text(content, encoding="utf-8")
        return path

    return build


def tfevents_huge_record(folder: Path, sentinel: Path) -> Path:
    """A TFRecord frame declaring 2^62 bytes, with a valid header checksum so that a reader
    trusting the framing goes on to read that many."""
    from tensorboard.compat.tensorflow_stub.pywrap_tensorflow import masked_crc32c

    length = struct.pack("<Q", 2**62)
    path = folder / "events.out.tfevents.1700000000.host.1.0"
    path.write_bytes(length + struct.pack("<I", masked_crc32c(length)) + b"\0" * 16)
    return path


IGNORE_NP101 = '[tool.nnprobe]\nignore = ["NP101"]\n'
DEEP_TOML = "[tool.nnprobe]\nselect = " + "[" * DEPTH + "]" * DEPTH + "\n"
DEEP_JSON = json.dumps({"epoch": 0, "train_loss": 2.0}) + "\n" + "[" * DEPTH + "]" * DEPTH + "\n"
WIDE_CSV = 'epoch,train_loss\n0,2.3\n1,"' + "x" * 200_000 + '"\n'


def script_case(
    name: str, code: str, says: str, bad: Callable[[Path, Path], Path], **env: str
) -> Reading:
    """A bad file built beside good.py, which keeps its NP101."""
    good = with_good_script(bad)
    return Reading(name, code, says, good, env=env, good="good.py", good_code=GOOD_SCRIPT_CODE)


def log_case(name: str, says: str, bad: Callable[[Path, Path], Path]) -> Reading:
    """A bad log built beside good_metrics.csv, which keeps its NP501; the bad one's NP901."""
    good = with_good_log(bad)
    return Reading(name, "NP901", says, good, good="good_metrics.csv", good_code=GOOD_LOG_CODE)


CASES: list[Hostile] = [
    script_case("script-fifo", "NP901", "named pipe", fifo("train.py")),
    script_case(
        "script-50mb",
        "NP901",
        "over the 2.0 MiB nnprobe reads for a script",
        sparse("train.py", "import torch\n", SPARSE_SCRIPT),
    ),
    script_case(
        "script-link-dev-zero", "NP901", "outside the workspace", link("train.py", "/dev/zero")
    ),
    script_case(
        "script-link-out", "NP901", "outside the workspace", link_out("train.py", GOOD_SCRIPT)
    ),
    script_case(
        "config-link-out",
        "NP901",
        "outside the workspace",
        link_out("pyproject.toml", IGNORE_NP101),
    ),
    script_case(
        "config-deep-toml",
        "NP901",
        "nests arrays or tables deeper",
        write("pyproject.toml", DEEP_TOML),
    ),
    script_case("config-fifo", "NP901", "named pipe", fifo("nnprobe.toml")),
    script_case(
        "docs-url-bad-template",
        GOOD_SCRIPT_CODE,
        "SGD",
        lambda folder, sentinel: folder / "good.py",
        NNPROBE_DOCS_URL="{",
    ),
    log_case("log-csv-field-200kb", "field longer than", write("metrics.csv", WIDE_CSV)),
    log_case("log-jsonl-deep", "nests JSON deeper", write("log.jsonl", DEEP_JSON)),
    log_case(
        "log-tfevents-2e62-record", "declares 4611686018427387904 bytes", tfevents_huge_record
    ),
    log_case("log-link-dev-zero", "outside the workspace", link("metrics.csv", "/dev/zero")),
    log_case("log-link-out", "outside the workspace", link_out("metrics.csv", GOOD_LOG)),
    log_case("log-fifo", "named pipe", fifo("metrics.csv")),
    log_case(
        "log-100mb",
        "over the 64.0 MiB",
        sparse("metrics.csv", "epoch,train_loss\n0,2.3\n", SPARSE_LOG),
    ),
]

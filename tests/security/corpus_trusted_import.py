"""Trusted-mode cases: a training script whose definitions-only import must not run a hostile
statement sitting beside a legitimate model.

Each case writes `train.py` (and, for some, workspace modules beside it) into the folder: a
model `Net` built the way real scripts build one (module constants as default arguments, a
frozen dataclass config, `import torch.nn as nn`, a helper function called in `__init__`) plus
one statement that, if Python ran it, would create the sentinel. The path a case returns is
`net.pt`, the state_dict of Net, which a trusted run must still build and probe; or, for the
cases where discovery would call the hostile thing itself (`model = subprocess.Popen(...)`),
`evil.pt`, which must get NP905 and nothing run. Run as Python runs them (`python train.py`),
every payload does create its sentinel (test_trusted_import.py checks that too).
"""

from __future__ import annotations

import shlex
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from corpus import Hostile

SCRIPT = '''\
"""A training script with one hostile statement beside its model."""
import os
import subprocess
import sys
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

SENTINEL = {sentinel!r}
HIDDEN = 8
DEVICE = torch.device("cuda" if torch.cuda.is_available() else "cpu")

{hostile}


@dataclass(frozen=True)
class Config:
    width: int = 4
    classes: int = 2


def make_head(width, classes):
    return nn.Linear(width, classes)


class {base_line}
    def __init__(self, hidden: int = HIDDEN, config: Config | None = None) -> None:
        super().__init__()
        config = config or Config()
        {init_extra}self.fc1 = nn.Linear(config.width, hidden)
        self.fc2 = make_head(hidden, config.classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(F.relu(self.fc1(x)))


if __name__ == "__main__":
    model = Net().to(DEVICE)
    torch.save(model.state_dict(), "net.pt")
{main_extra}'''

NET_KEYS = {"fc1.weight": (8, 4), "fc1.bias": (8,), "fc2.weight": (2, 8), "fc2.bias": (2,)}


def save_net(path: Path) -> Path:
    """Net's weights as torch.save writes a state_dict (seeded, so runs compare)."""
    generator = torch.Generator().manual_seed(0)
    state = {name: torch.randn(*shape, generator=generator) for name, shape in NET_KEYS.items()}
    torch.save(state, path)
    return path


def script(
    hostile: str = "",
    *,
    base: str = "nn.Module",
    init_extra: str = "",
    main_extra: str = "",
    files: dict[str, str] | None = None,
    target: str = "net.pt",
    folder_name: str = "",
) -> Callable[[Path, Path], Path]:
    """A builder writing train.py with `hostile` at its top level (and `files` beside it, where
    `{sentinel}` is replaced by the sentinel's path), returning `target`."""

    def build(folder: Path, sentinel: Path) -> Path:
        home = folder / folder_name if folder_name else folder
        home.mkdir(parents=True, exist_ok=True)
        values = {
            "{sentinel}": repr(str(sentinel)),
            "{command}": repr("touch " + shlex.quote(str(sentinel))),
        }

        def fill(text: str) -> str:
            text = textwrap.dedent(text).strip()
            for key, value in values.items():
                text = text.replace(key, value)
            return text

        text = SCRIPT.format(
            sentinel=str(sentinel),
            hostile=fill(hostile),
            base_line=f"Net({base}):",
            init_extra=init_extra + ("\n        " if init_extra else ""),
            main_extra=textwrap.indent(fill(main_extra), "    ") + "\n" if main_extra else "",
        )
        (home / "train.py").write_text(text, encoding="utf-8")
        for name, content in (files or {}).items():
            path = home / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(fill(content) + "\n", encoding="utf-8")
        save_net(home / "net.pt")
        if target == "evil.pt":
            save_net(home / "evil.pt")
        return home / target

    return build


TOUCH = "open(SENTINEL, 'w').close()"


def runs_nothing(name: str, hostile: str = "", **options: Any) -> Hostile:
    """A hostile statement that must not run: no finding expected, net.pt still built and probed."""
    return Hostile(name, "", "", script(hostile, **options))


def discovered(name: str, says: str, evil: str, hostile: str = "") -> Hostile:
    """The script's main saves `evil` (an expression) as evil.pt, which discovery must refuse
    with NP905 instead of calling it."""
    main = f'evil = {evil}\ntorch.save(evil.state_dict(), "evil.pt")'
    return Hostile(name, "NP905", says, script(hostile, main_extra=main, target="evil.pt"))


CASES: list[Hostile] = [
    runs_nothing(
        "trusted-class-body",
        """
        class Registry:
            created = open(SENTINEL, "w")
        """,
    ),
    runs_nothing(
        "trusted-metaclass",
        f"""
        class Meta(type):
            def __new__(mcs, name, bases, namespace):
                {TOUCH}
                return super().__new__(mcs, name, bases, namespace)


        class Tagged(metaclass=Meta):
            pass
        """,
    ),
    runs_nothing(
        "trusted-decorator",
        f"""
        def register(obj):
            {TOUCH}
            return obj


        @register
        def helper():
            return 1


        @register
        class Plugin:
            pass
        """,
    ),
    runs_nothing(
        "trusted-default-argument",
        """
        def helper(handle=open(SENTINEL, "w")):
            return handle
        """,
    ),
    runs_nothing(
        "trusted-except-expression",
        """
        try:
            import no_such_module_for_nnprobe
        except (ImportError if open(SENTINEL, "w") else ImportError):
            no_such_module_for_nnprobe = None
        """,
    ),
    discovered(
        "trusted-discovered-popen",
        "nn.Module classes of the workspace",
        'subprocess.Popen(["touch", {sentinel}])',
    ),
    discovered(
        "trusted-discovered-os-system",
        "nn.Module classes of the workspace",
        "os.system({command})",
    ),
    discovered(
        "trusted-discovered-open",
        "nn.Module classes of the workspace",
        'open({sentinel}, "w")',
    ),
    discovered(
        "trusted-discovered-function",
        "could train",
        "fit()",
        f"""
        def fit():
            {TOUCH}
            return Net()
        """,
    ),
    discovered(
        "trusted-discovered-expression",
        "calls open()",
        'nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2), open({sentinel}, "w"))',
    ),
    runs_nothing(
        "trusted-module-if",
        f"""
        if True:
            {TOUCH}
        if open(SENTINEL, "w"):
            pass
        """,
    ),
    runs_nothing(
        "trusted-module-for",
        f"""
        for _ in range(1):
            {TOUCH}
        """,
    ),
    runs_nothing(
        "trusted-module-with",
        """
        with open(SENTINEL, "w"):
            pass
        """,
    ),
    runs_nothing(
        "trusted-sibling-module",
        "import helpers\nfrom helpers import WIDTH",
        files={
            "helpers.py": """
            WIDTH = 4
            open({sentinel}, "w").close()
            """
        },
    ),
    runs_nothing(
        "trusted-sibling-imported-in-init",
        init_extra="import lazy_layers  # noqa: F401",
        files={"lazy_layers.py": 'open({sentinel}, "w").close()\n'},
    ),
    runs_nothing(
        "trusted-package-init",
        "from .layers import WIDTH",
        files={
            "__init__.py": 'open({sentinel}, "w").close()\n',
            "layers.py": "WIDTH = 4\n",
        },
        folder_name="project",
    ),
    runs_nothing(
        "trusted-module-getattr",
        """
        try:
            from helpers import anything
        except ImportError:
            anything = None
        """,
        files={
            "helpers.py": """
            def __getattr__(name):
                open({sentinel}, "w").close()
                return name
            """
        },
    ),
    runs_nothing(
        "trusted-walrus-default",
        """
        def helper(x=(made := open(SENTINEL, "w"))):
            return x
        """,
    ),
    runs_nothing(
        "trusted-init-subclass",
        f"""
        class Base(nn.Module):
            def __init_subclass__(cls, **kwargs):
                {TOUCH}
                super().__init_subclass__(**kwargs)
        """,
        base="Base",
    ),
    runs_nothing(
        "trusted-class-keyword",
        """
        class Tagged(nn.Module, flag=open(SENTINEL, "w")):
            pass
        """,
    ),
    runs_nothing(
        "trusted-class-getitem",
        f"""
        class Typed:
            def __class_getitem__(cls, item):
                {TOUCH}
                return cls


        ALIAS = Typed[int]


        class Uses(Typed[int]):
            pass
        """,
    ),
    runs_nothing(
        "trusted-annotation",
        """
        def helper(x: open(SENTINEL, "w")) -> None:
            return None


        LIMIT: open(SENTINEL, "w") = 3
        """,
    ),
    runs_nothing(
        "trusted-shadowed-builtin",
        f"""
        def len(obj):
            {TOUCH}
            return 0


        N = len("abc")
        """,
    ),
    runs_nothing(
        "trusted-callback-argument",
        f"""
        class Keys:
            def keys():
                {TOUCH}
                return []


        def key(x):
            {TOUCH}
            return x


        ORDER = sorted([2, 1], key=key)
        TABLE = dict(Keys)
        """,
    ),
    runs_nothing(
        "trusted-builtins-override",
        f"""
        def hook(*args, **kwargs):
            {TOUCH}


        __builtins__ = {{"__import__": hook, "__build_class__": hook}}
        import json
        """,
    ),
    runs_nothing(
        "trusted-monkeypatch",
        f"""
        def hijack(self, *args, **kwargs):
            {TOUCH}


        nn.Module.__call__ = hijack
        """,
        main_extra="model(torch.zeros(1, 4))",
    ),
    runs_nothing(
        "trusted-enum-member-init",
        f"""
        from enum import Enum


        class Color(Enum):
            RED = 1

            def __init__(self, value):
                {TOUCH}
        """,
    ),
    runs_nothing(
        "trusted-lambda-default",
        """
        CALLBACK = lambda handle=open(SENTINEL, "w"): handle
        """,
    ),
    Hostile(
        "trusted-power-bomb",
        "",
        "",
        script(f"BIG = 10 ** 10 ** 9\nif BIG:\n    {TOUCH}"),
    ),
]

# Cases whose payload plain Python would not show: the power bomb's is the hours it computes;
# the builtins override works only on a runner that executes statements one by one (Python
# reads a module's builtins once), which is what a definitions-only import is.
NO_PLAIN_PAYLOAD = frozenset({"trusted-power-bomb", "trusted-builtins-override"})

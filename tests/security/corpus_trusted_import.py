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

CASES: list[Hostile] = [
    Hostile(
        "trusted-class-body",
        "",
        "",
        script(
            """
            class Registry:
                created = open(SENTINEL, "w")
            """
        ),
    ),
    Hostile(
        "trusted-metaclass",
        "",
        "",
        script(
            f"""
            class Meta(type):
                def __new__(mcs, name, bases, namespace):
                    {TOUCH}
                    return super().__new__(mcs, name, bases, namespace)


            class Tagged(metaclass=Meta):
                pass
            """
        ),
    ),
    Hostile(
        "trusted-decorator",
        "",
        "",
        script(
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
            """
        ),
    ),
    Hostile(
        "trusted-default-argument",
        "",
        "",
        script(
            """
            def helper(handle=open(SENTINEL, "w")):
                return handle
            """
        ),
    ),
    Hostile(
        "trusted-except-expression",
        "",
        "",
        script(
            """
            try:
                import no_such_module_for_nnprobe
            except (ImportError if open(SENTINEL, "w") else ImportError):
                no_such_module_for_nnprobe = None
            """
        ),
    ),
    Hostile(
        "trusted-discovered-popen",
        "NP905",
        "nn.Module classes of the workspace",
        script(
            main_extra="""
            evil = subprocess.Popen(["touch", {sentinel}])
            torch.save(evil.state_dict(), "evil.pt")
            """,
            target="evil.pt",
        ),
    ),
    Hostile(
        "trusted-discovered-os-system",
        "NP905",
        "nn.Module classes of the workspace",
        script(
            main_extra="""
            evil = os.system({command})
            torch.save(evil.state_dict(), "evil.pt")
            """,
            target="evil.pt",
        ),
    ),
    Hostile(
        "trusted-discovered-open",
        "NP905",
        "nn.Module classes of the workspace",
        script(
            main_extra="""
            evil = open({sentinel}, "w")
            torch.save(evil.state_dict(), "evil.pt")
            """,
            target="evil.pt",
        ),
    ),
    Hostile(
        "trusted-discovered-function",
        "NP905",
        "could train",
        script(
            f"""
            def fit():
                {TOUCH}
                return Net()
            """,
            main_extra="""
            evil = fit()
            torch.save(evil.state_dict(), "evil.pt")
            """,
            target="evil.pt",
        ),
    ),
    Hostile(
        "trusted-discovered-expression",
        "NP905",
        "calls open()",
        script(
            main_extra="""
            evil = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2), open({sentinel}, "w"))
            torch.save(evil.state_dict(), "evil.pt")
            """,
            target="evil.pt",
        ),
    ),
    Hostile(
        "trusted-module-if",
        "",
        "",
        script(
            f"""
            if True:
                {TOUCH}
            if open(SENTINEL, "w"):
                pass
            """
        ),
    ),
    Hostile(
        "trusted-module-for",
        "",
        "",
        script(
            f"""
            for _ in range(1):
                {TOUCH}
            """
        ),
    ),
    Hostile(
        "trusted-module-with",
        "",
        "",
        script(
            """
            with open(SENTINEL, "w"):
                pass
            """
        ),
    ),
    Hostile(
        "trusted-sibling-module",
        "",
        "",
        script(
            "import helpers\nfrom helpers import WIDTH",
            files={
                "helpers.py": """
                WIDTH = 4
                open({sentinel}, "w").close()
                """
            },
        ),
    ),
    Hostile(
        "trusted-sibling-imported-in-init",
        "",
        "",
        script(
            init_extra="import lazy_layers  # noqa: F401",
            files={"lazy_layers.py": 'open({sentinel}, "w").close()\n'},
        ),
    ),
    Hostile(
        "trusted-package-init",
        "",
        "",
        script(
            "from .layers import WIDTH",
            files={
                "__init__.py": 'open({sentinel}, "w").close()\n',
                "layers.py": "WIDTH = 4\n",
            },
            folder_name="project",
        ),
    ),
    Hostile(
        "trusted-module-getattr",
        "",
        "",
        script(
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
    ),
    Hostile(
        "trusted-walrus-default",
        "",
        "",
        script(
            """
            def helper(x=(made := open(SENTINEL, "w"))):
                return x
            """
        ),
    ),
    Hostile(
        "trusted-init-subclass",
        "",
        "",
        script(
            f"""
            class Base(nn.Module):
                def __init_subclass__(cls, **kwargs):
                    {TOUCH}
                    super().__init_subclass__(**kwargs)
            """,
            base="Base",
        ),
    ),
    Hostile(
        "trusted-class-keyword",
        "",
        "",
        script(
            """
            class Tagged(nn.Module, flag=open(SENTINEL, "w")):
                pass
            """
        ),
    ),
    Hostile(
        "trusted-class-getitem",
        "",
        "",
        script(
            f"""
            class Typed:
                def __class_getitem__(cls, item):
                    {TOUCH}
                    return cls


            ALIAS = Typed[int]


            class Uses(Typed[int]):
                pass
            """
        ),
    ),
    Hostile(
        "trusted-annotation",
        "",
        "",
        script(
            """
            def helper(x: open(SENTINEL, "w")) -> None:
                return None


            LIMIT: open(SENTINEL, "w") = 3
            """
        ),
    ),
    Hostile(
        "trusted-shadowed-builtin",
        "",
        "",
        script(
            f"""
            def len(obj):
                {TOUCH}
                return 0


            N = len("abc")
            """
        ),
    ),
    Hostile(
        "trusted-callback-argument",
        "",
        "",
        script(
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
            """
        ),
    ),
    Hostile(
        "trusted-builtins-override",
        "",
        "",
        script(
            f"""
            def hook(*args, **kwargs):
                {TOUCH}


            __builtins__ = {{"__import__": hook, "__build_class__": hook}}
            import json
            """
        ),
    ),
    Hostile(
        "trusted-monkeypatch",
        "",
        "",
        script(
            f"""
            def hijack(self, *args, **kwargs):
                {TOUCH}


            nn.Module.__call__ = hijack
            """,
            main_extra="model(torch.zeros(1, 4))",
        ),
    ),
    Hostile(
        "trusted-enum-member-init",
        "",
        "",
        script(
            f"""
            from enum import Enum


            class Color(Enum):
                RED = 1

                def __init__(self, value):
                    {TOUCH}
            """
        ),
    ),
    Hostile(
        "trusted-lambda-default",
        "",
        "",
        script(
            """
            CALLBACK = lambda handle=open(SENTINEL, "w"): handle
            """
        ),
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

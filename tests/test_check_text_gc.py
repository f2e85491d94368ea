"""check_text pauses the cyclic garbage collector while it analyses one script (handler.py says
why) and must hand the process back as it found it, also when the script does not parse."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from pathlib import Path

import pytest

from nnprobe.core.config import Config
from nnprobe.inspectors.script.handler import check_text

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = (ROOT / "tests/fixtures/static/np104_softmax_before_cross_entropy.py").read_text()
BROKEN = "import torch\ndef f(:\n"


@pytest.fixture
def collector() -> Iterator[None]:
    enabled = gc.isenabled()
    yield
    if enabled:
        gc.enable()
    else:
        gc.disable()


@pytest.mark.usefixtures("collector")
@pytest.mark.parametrize("text", [SCRIPT, BROKEN], ids=["parses", "syntax-error"])
@pytest.mark.parametrize("enabled", [True, False], ids=["gc-on", "gc-off"])
def test_check_text_leaves_the_collector_as_it_was(text: str, enabled: bool) -> None:
    (gc.enable if enabled else gc.disable)()
    findings = check_text(text, "train.py", Config.default(ROOT))
    assert findings  # NP104 on the script, NP906 on the broken one: the check really ran
    assert gc.isenabled() is enabled

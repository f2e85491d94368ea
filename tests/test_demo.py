"""`make demo` shows what nnprobe finds in a real training run, and that it stays quiet on a
healthy one. The demo (scripts/demo.py) is run here as `make demo` runs it, into a temporary
folder: it trains examples/digits_cnn_lr_too_high.py and its twin digits_cnn_lr_ok.py, then runs
`nnprobe inspect` and `nnprobe report` over the scripts, checkpoints and logs.

What must hold: the faulty twin's lesson is reported in every band the demo promises (the static
lr, dead ReLUs in the checkpoint, the dead gradients behind them, the stalled log), its runtime
findings land on the script's layer lines, the healthy twin gets no finding at all, and the HTML
report holds one picture of each kind for each checkpoint and log, none of them blank.
"""

from __future__ import annotations

import base64
import importlib.util
import io
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FAULTY = ROOT / "examples" / "digits_cnn_lr_too_high.py"
HEALTHY = ROOT / "examples" / "digits_cnn_lr_ok.py"
MISSING = [
    name
    for name in ("torch", "sklearn", "onnxruntime", "matplotlib", "PIL")
    if importlib.util.find_spec(name) is None
]
FINDING = re.compile(r"^(?P<path>\S+):(?P<line>\d+):\d+: (?P<code>NP\d{3}) \[\w+\] ", re.M)
IMAGE = re.compile(r'<img src="data:image/png;base64,([A-Za-z0-9+/=]+)" alt="([^"]*)"')
TIMEOUT_S = 600

pytestmark = pytest.mark.skipif(
    bool(MISSING), reason=f"the demo needs {', '.join(MISSING)} (make demo installs them)"
)


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> tuple[subprocess.CompletedProcess[str], Path]:
    out = tmp_path_factory.mktemp("demo")
    env = dict(os.environ)
    env.pop("NNPROBE_UNTRUSTED", None)
    command = [sys.executable, str(ROOT / "scripts" / "demo.py"), "--out", str(out)]
    # Its own session, so a timeout also ends the trainings and nnprobe runs it started.
    proc = subprocess.Popen(
        command,
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        stdout, stderr = proc.communicate(timeout=TIMEOUT_S)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        stdout, stderr = proc.communicate()
        pytest.fail(f"the demo took over {TIMEOUT_S} s:\n{stdout}\n{stderr}")
    return subprocess.CompletedProcess(command, proc.returncode, stdout, stderr), out


def findings(run: subprocess.CompletedProcess[str]) -> list[tuple[str, int, str]]:
    return [(m["path"], int(m["line"]), m["code"]) for m in FINDING.finditer(run.stdout)]


def line_of(script: Path, text: str) -> int:
    lines = script.read_text(encoding="utf-8").splitlines()
    (number,) = [i for i, line in enumerate(lines, 1) if text in line]
    return number


def test_the_demo_runs_and_says_both_lessons_are_shown(demo) -> None:
    run, out = demo
    assert run.returncode == 0, f"{run.stdout}\n{run.stderr}"
    assert run.stdout.count("as its docstring says") == 2, run.stdout
    assert "NOT AS EXPECTED" not in run.stdout
    for twin in ("digits_cnn_lr_too_high", "digits_cnn_lr_ok"):
        assert (out / "runs" / twin / "last.pt").is_file()
        assert (out / "runs" / twin / "metrics.csv").is_file()
    assert f"Report: {out / 'report.html'}" in run.stdout


def test_the_faulty_twin_is_caught_in_every_band(demo) -> None:
    run, _ = demo
    found = findings(run)
    in_run = {code for path, _, code in found if "digits_cnn_lr_too_high/" in path}
    on_script = {(line, code) for path, line, code in found if path.endswith(FAULTY.name)}
    codes = in_run | {code for _, code in on_script}
    # static, activations, gradients, logs: the lesson told four ways
    assert {"NP101", "NP301", "NP405", "NP502"} <= codes, run.stdout
    assert "NP301" in in_run and "NP502" in in_run
    # the static finding on the optimizer line, the runtime ones on the layers that died
    assert (line_of(FAULTY, "torch.optim.SGD("), "NP101") in on_script
    assert (line_of(FAULTY, "self.relu2 = nn.ReLU()"), "NP301") in on_script
    assert (line_of(FAULTY, "self.relu3 = nn.ReLU()"), "NP301") in on_script
    assert (line_of(FAULTY, "self.fc1 = nn.Linear("), "NP405") in on_script
    assert not [code for _, _, code in found if code.startswith("NP9")], run.stdout


def test_the_healthy_twin_gets_no_finding(demo) -> None:
    run, _ = demo
    found = findings(run)
    assert found, "the demo printed no finding at all"
    healthy = [f for f in found if "digits_cnn_lr_ok" in f[0]]
    assert healthy == [], run.stdout


def test_the_report_holds_every_picture_and_none_is_blank(demo) -> None:
    _, out = demo
    page = (out / "report.html").read_text(encoding="utf-8")
    assert not re.search(r'\bsrc="(?!data:)', page), "the report must load nothing from elsewhere"
    assert "<link" not in page
    for code in ("NP101", "NP301", "NP405", "NP502"):
        assert f">{code}</a>" in page
    sections = dict(re.findall(r"<h2>Pictures: (\S+)</h2>(.*?)(?=<h2>|<script>)", page, re.S))
    expected = {
        "last.pt": ("filters", "channels dead", "most excite", "occlusion"),
        "metrics.csv": ("Training curves",),
    }
    for twin in ("digits_cnn_lr_too_high", "digits_cnn_lr_ok"):
        for name, kinds in expected.items():
            path = next((p for p in sections if p.endswith(f"{twin}/{name}")), None)
            assert path, f"no pictures of {twin}/{name} in the report: {sorted(sections)}"
            images = IMAGE.findall(sections[path])
            assert [any(k in alt for _, alt in images) for k in kinds] == [True] * len(kinds), (
                f"{path}: {[alt for _, alt in images]}"
            )
            assert len(images) == len(kinds)
            for data, alt in images:
                assert_not_blank(data, alt)
    # The activation maps shown are those of the layer NP301 found dead, not the first layer's.
    assert re.search(r'alt="[^"]*digits_cnn_lr_too_high/last.pt: relu2 on input 0; 32/32 ch', page)
    assert re.search(r'alt="[^"]*digits_cnn_lr_ok/last.pt: relu1 on input 0; 0/16 ch', page)
    for twin in ("digits_cnn_lr_too_high", "digits_cnn_lr_ok"):
        # The embedding preview is inline SVG: the 450 validation digits, coloured by label.
        checkpoint = next(p for p in sections if p.endswith(f"{twin}/last.pt"))
        (svg,) = re.findall(r'<svg id="scatter[^>]*>(.*?)</svg>', sections[checkpoint], re.S)
        points = re.findall(r'<circle cx="([\d.]+)" cy="([\d.]+)"', svg)
        assert len(points) == 450
        if twin == "digits_cnn_lr_ok":
            assert len(set(points)) > 300, "the healthy twin's embedding collapsed"
        else:  # every unit of the embedded layer is dead: one point, drawn mid-plot, and said
            from nnprobe.report.html import HEIGHT, WIDTH

            assert set(points) == {(f"{WIDTH / 2:.1f}", f"{HEIGHT / 2:.1f}")}
            assert "all 450 points coincide" in sections[checkpoint]


def assert_not_blank(data: str, alt: str) -> None:
    from PIL import Image, ImageStat

    picture = Image.open(io.BytesIO(base64.b64decode(data))).convert("L")
    assert picture.width >= 200 and picture.height >= 150, alt
    spread = ImageStat.Stat(picture).stddev[0]
    histogram = picture.histogram()
    drawn = 1 - max(histogram) / (picture.width * picture.height)  # not the background colour
    assert spread > 10 and drawn > 0.05, f"{alt!r} is blank (std {spread:.1f}, {drawn:.0%} drawn)"

"""NP9xx: findings about the inspection itself, emitted by the engine rather than by a check."""

from __future__ import annotations

from collections.abc import Iterable

from nnprobe.core.finding import Confidence, Evidence, Finding, Severity
from nnprobe.core.registry import register
from nnprobe.core.rule import Rule


class InspectionRule(Rule):
    evidence = Evidence.INSPECTION
    confidence = Confidence.HIGH

    def check(self, ctx: object) -> Iterable[Finding]:
        return ()


@register
class LoadFailed(InspectionRule):
    """
    ## What it does
    Reports a file nnprobe was asked to inspect but could not read: it does not exist as a regular
    file, is not text in a known encoding, is a binary file with a `.py` name, or is a truncated or
    malformed checkpoint, ONNX model or log.

    ## Why is this bad?
    Whatever is wrong in that file goes unseen. The message says why it could not be read; every
    other file in the run is still inspected.

    ## Example
    ```text
    data/blob.py:1:1: NP901 [error] not a text file: byte 0x89 at offset 0 is not valid UTF-8
    ```

    ## How to fix
    Save scripts as UTF-8 (or declare their encoding with a PEP 263 coding line), and re-write
    checkpoints that were truncated. Exclude files that are not meant to be inspected with
    `exclude = [...]` under `[tool.nnprobe]`.

    ## Options
    None.

    ## References
    - PEP 263, Defining Python Source Code Encodings
    """

    code = "NP901"
    name = "load-failed"
    message = "could not read this file: {reason}"
    severity = Severity.ERROR


@register
class SyntaxErrorRule(InspectionRule):
    """
    ## What it does
    Reports a training script that Python cannot parse, at the place where parsing failed, the way
    a linter or the interpreter would.

    ## Why is this bad?
    The script will not run, and none of nnprobe's other checks can look at it until it parses.

    ## Example
    ```python
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1  # error: [NP906]
    ```

    ## How to fix
    Fix the syntax error; nnprobe re-checks the file as soon as it parses.

    ## Options
    None.

    ## References
    - The Python Language Reference, Lexical analysis
    """

    code = "NP906"
    name = "syntax-error"
    message = "syntax error: {reason}"
    severity = Severity.ERROR


@register
class InternalError(InspectionRule):
    """
    ## What it does
    Reports that one of nnprobe's rules, or its handling of one file, failed with an internal error.
    The message names the rule and the file; every other rule and file is still checked.

    ## Why is this bad?
    Findings that rule would have made on this file are missing. It is a bug in nnprobe, not in your
    code.

    ## Example
    ```text
    train.py:1:1: NP907 [error] rule NP104 (softmax-before-cross-entropy) crashed on this file ...
    ```

    ## How to fix
    Please report it with the file (or a reduced copy). Until it is fixed, `--ignore NP907` hides
    the report, and `# nnprobe: ignore-file[NP104]` skips the failing rule for that file.

    ## Options
    None.

    ## References
    - nnprobe issue tracker
    """

    code = "NP907"
    name = "internal-error"
    message = "internal error: {reason}"
    severity = Severity.ERROR

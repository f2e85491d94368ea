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

    Some files are refused unread, and the message says so: a zip archive posing as a checkpoint
    that would inflate to far more than its size (more than 20 times it and over 64 MiB), or that
    lists more than 50,000 members, is a zip bomb and is refused from its directory before
    anything is decompressed; a symbolic link that leads outside the workspace is not followed by
    a directory walk, the editor's checkpoint watcher or the probe worker (name the file itself on
    the command line to inspect it); ONNX external data outside the model's folder is refused.

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
class UnsafePickleRefused(InspectionRule):
    """
    ## What it does
    Reports a checkpoint that can only be loaded by unpickling arbitrary Python objects: a whole
    model saved with `torch.save(model)`, or a bundle holding custom classes (an
    `argparse.Namespace` of hyperparameters, numpy scalars in old checkpoints). nnprobe reads
    checkpoints with `torch.load(weights_only=True)`, which only rebuilds tensors and plain
    containers, and refuses the rest unless you opt in.

    The message names every global an opted-in load would import (`posix.system`,
    `builtins.exec`, the model's class), the way model scanners report them, leaving out the
    tensor rebuilders `weights_only` accepts. They are read from the pickle's opcodes with
    picklescan, in bare pickles and in every pickle inside a `.pt/.pth/.ckpt` zip; nothing is
    unpickled to find them. Without picklescan the message names the one global torch's loader
    reported.

    It also reports a TorchScript archive (`torch.jit.save`, whatever its suffix: it is
    recognised by its content). A TorchScript archive is a program: `torch.jit.load` runs its code,
    and a scripted `__setstate__` can write any file (`torch.save`), read one into the weights
    (`torch.from_file`), print (on nnprobe's stdout that would break `--output-format json` and
    inject GitHub workflow commands), loop forever or allocate gigabytes from a few kilobytes;
    probing it runs its `forward`. So it is refused like a pickle, and its weights are read
    without running it, for the weight rules: the module tree is unpickled with the archive's
    classes as inert records and nothing but tensor storages (every other global refused), and
    parameters are told from other attributes by the `__parameters__` lines of its code, read
    as text. A module whose class defines its own `__getstate__` pickles whatever that returned:
    its weights cannot be named, and the message says so.

    ## Why is this bad?
    Unpickling runs whatever code the file names: loading an untrusted checkpoint is running an
    untrusted program (PyTorch made `weights_only=True` the default in 2.6 for this reason). A
    pickled model also breaks as soon as its class moves or is renamed, and cannot be loaded
    without the training code. Loading a TorchScript archive is running it too, with the same
    access to files; only its language differs.

    ## Example
    ```text
    runs/model.pt:1:1: NP902 [error] refused to unpickle: this file holds a whole pickled model
    (__main__.Net); loading it would import __main__.Net, posix.system, and unpickling can run
    arbitrary code. Save the weights instead, ...
    export/model.ts.pt:1:1: NP902 [error] refused to load TorchScript: a TorchScript archive is a
    program: torch.jit.load runs its code (a class's __setstate__, ...) and the probe runs its
    forward; its 4 weight tensors were read without running it; if you trust this file, opt in
    with --allow-pickle ...
    ```

    ## How to fix
    Save the state_dict, `torch.save(model.state_dict(), "model.pt")`, and rebuild the model from
    code before `model.load_state_dict(torch.load("model.pt", weights_only=True))`; or use
    safetensors; a model you want to ship with its graph can be exported to ONNX, which nnprobe
    reads and probes without running Python or TorchScript. Keep hyperparameters as plain dicts,
    numbers and strings. If you trust the file, opt in with `nnprobe inspect --allow-pickle` or
    `allow-pickle = true` under `[tool.nnprobe]`.

    The same opt-in loads TorchScript: trusted and opted in, the archive is loaded (and probed)
    only in nnprobe's probe worker, never in the CLI's or the language server's process, within
    the probe's time and memory budget (`--probe-timeout`; a load or probe that overruns it is
    NP904, and the weight rules then run on the weights read without running it), and whatever
    it prints goes to the worker's stderr, never to nnprobe's output. The picture
    commands (`nnprobe filters` ...) draw in their own process, so they refuse TorchScript.

    The opt-in counts only in a trusted run. A config file is part of the repository it sits in,
    so a pull request could set `allow-pickle` itself: run checkouts you do not trust (pull
    requests from forks in CI) with `nnprobe inspect --untrusted` or `NNPROBE_UNTRUSTED=1`, and
    nothing is unpickled, no TorchScript is run and no workspace code is imported, whatever any
    config says; the message then says the run is untrusted. `--no-import` and an untrusted
    editor workspace do the same.

    ## Options
    None.

    ## References
    - PyTorch documentation, torch.load and weights_only
    - PyTorch documentation, Saving and Loading Models
    - Python documentation, pickle (the warning at the top)
    - PyTorch documentation, TorchScript: `__getstate__` and `__setstate__` of scripted modules
    """

    code = "NP902"
    name = "unsafe-pickle-refused"
    message = "refused to unpickle: {reason}"
    severity = Severity.ERROR


@register
class ExportFallback(InspectionRule):
    """
    ## What it does
    Reports that a model could not be exported to ONNX faithfully, so its activations (NP3xx) were
    measured with eager PyTorch forward hooks instead. The message says why export failed: an
    operator the exporters do not support, a forward whose control flow depends on the data (one
    trace would describe only one branch), or a graph that disagreed with the eager forward.

    It is also how a probe that could not run at all is reported: the forward raised on the probe
    inputs, or ONNX Runtime and the eager fallback both failed. The message quotes the error, and
    that file gets no NP3xx or NP4xx findings.

    ## Why is this bad?
    The findings are still valid, but the eager probe is slower, sees only module outputs (a
    functional `F.relu` inside a forward has no hook), and is redone in full for every checkpoint
    instead of re-binding weights to a cached graph.

    ## Example
    ```text
    runs/ckpt_3.pt:1:1: NP903 [info] ONNX export failed (torchscript exporter: the forward has
    data-dependent control flow ...); activations were measured with eager forward hooks instead
    ```

    ## How to fix
    Nothing is required. To get the faster probe, make the forward traceable: replace `if
    x.sum() > 0:` on tensor values with `torch.where`, or move data-dependent branches out of the
    model. `--ignore NP903` hides the notice.

    ## Options
    None.

    ## References
    - PyTorch documentation, `torch.onnx.export` (TorchScript-based and torch.export-based
      exporters, tracing limitations)
    """

    code = "NP903"
    name = "export-fallback"
    message = (
        "ONNX export failed ({reason}); activations were measured with eager forward hooks instead"
    )
    severity = Severity.INFO


@register
class ProbeTimeout(InspectionRule):
    """
    ## What it does
    Reports a probe (activations or gradients on a probe batch) that exceeded its time or memory
    budget and was stopped. Weight findings for the file are still reported.

    Probes run in a worker process (`python -m nnprobe.worker`). Each checkpoint's probe gets
    `--probe-timeout` seconds (default 120); past it the worker is killed, which stops even a
    forward stuck in native code, and the next file gets a fresh worker. A worker that dies on its
    own (the system's out-of-memory killer, a crash in native code) is reported the same way,
    with the signal that ended it. Each job's memory budget also caps the worker's address
    space, so a single allocation too large for it (a forward building a 16 GiB tensor) fails
    at once inside the job: "ran out of memory", and the worker stays for the next file.

    ## Why is this bad?
    The activation and gradient findings for that file are missing.

    ## Example
    ```text
    runs/big.pt:1:1: NP904 [warning] the probe exceeded its 60 s budget and was stopped
    ```

    ## How to fix
    Probe in smaller sub-batches (`--probe-batch`) or with less probe data, give the probe more
    time (`--probe-timeout 300`), or inspect weights only with `--no-probe`.

    ## Options
    None.

    ## References
    - nnprobe documentation, probe inputs and budgets
    """

    code = "NP904"
    name = "probe-timeout"
    message = "the probe was stopped: {reason}"
    severity = Severity.WARNING


@register
class ModelUnresolved(InspectionRule):
    """
    ## What it does
    Reports a state_dict checkpoint for which no model factory could be found, so only its weights
    were checked (NP2xx) and no activation or gradient probe ran. A factory is found from
    `--model`, from `[tool.nnprobe.models]`, or statically from the training script that saves the
    checkpoint and the nn.Module it builds.

    It is also reported when the factory found cannot build the model, when the weights do not fit
    the model it builds (wrong architecture: the message lists the missing and unexpected keys, or
    the tensors whose shapes differ), and when importing workspace code is not allowed
    (`--untrusted`, `NNPROBE_UNTRUSTED=1`, `--no-import`, or an untrusted workspace in the editor).

    Building the model imports the script's definitions only: imports, constant assignments,
    functions and classes whose decorators, bases, metaclass and default arguments run no code,
    nothing else of it or of the workspace modules it imports. When the model needs a name whose
    statement was not run (`DEVICE = get_device()`), the message names that line and why. A
    discovered factory is called only when it is an nn.Module class defined in the workspace:
    `model = make_model()` or `model = subprocess.Popen(...)` is reported, not called.

    ## Why is this bad?
    A state_dict holds weights, not the architecture: without the code that builds the model,
    nnprobe cannot run it, and dead ReLUs, saturated units and vanishing gradients (NP3xx, NP4xx)
    go unseen.

    ## Example
    ```text
    runs/ckpt_3.pt:1:1: NP905 [info] no model factory found for this state_dict; pass
    --model train.py:Net or configure [tool.nnprobe.models]
    ```

    ## How to fix
    Name the factory: `nnprobe inspect runs/ --model train.py:Net` (every checkpoint), `--model
    'runs/*.pt=train.py:Net'` (by glob), or in pyproject.toml:

    ```toml
    [tool.nnprobe.models]
    "runs/*.pt" = "train.py:Net"
    ```

    A factory is a class or function that takes no arguments (or only static ones) and returns
    the nn.Module. Exporting the model to ONNX also works: `.onnx` files need no factory.

    ## Options
    None.

    ## References
    - PyTorch documentation, Saving and Loading Models
    """

    code = "NP905"
    name = "model-unresolved"
    message = "no model factory found for this state_dict: {reason}"
    severity = Severity.INFO


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

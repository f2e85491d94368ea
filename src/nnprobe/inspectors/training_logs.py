"""NP501-NP505: what the training curves in a log say (a loss that blew up, a validation metric
that stalled while the learning rate stayed put, overfitting, oscillation, slow progress).

The log readers (nnprobe.logs) turn CSV, JSON lines and TensorBoard files into Series; these rules
only compare them with thresholds. Every message names its evidence (the epochs or steps and the
values) and the action with numbers. Findings sit on the log line they read (CSV, JSON lines) and,
when the training script that writes the log is found, are copied onto its optimizer or epoch-loop
line.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from nnprobe.core.config import Config
from nnprobe.core.engine import FileResult, finalize, instantiate, internal_finding, run_rules
from nnprobe.core.files import Target, roots_for
from nnprobe.core.finding import FILE_START, Confidence, Evidence, Finding, Range, Severity
from nnprobe.core.registry import all_rules, register
from nnprobe.core.rule import Option, Rule
from nnprobe.inspectors.log_context import LogContext
from nnprobe.logs import analysis
from nnprobe.logs.series import Series

LOG_SUFFIXES = (".csv", ".jsonl")
LOG_NAMES = ("events.out.tfevents.*",)


def fmt(value: float) -> str:
    if not math.isfinite(value):
        return str(value)
    return f"{value:.4g}"


def where_in_file(series: Series, i: int) -> Range:
    line = series.lines[i] if 0 <= i < len(series.lines) else None
    return Range.of(line, 1, line, 2) if line else FILE_START


class LogRule(Rule):
    evidence = Evidence.LOGS

    def report(
        self,
        ctx: LogContext,
        message: str,
        series: Series,
        at: int,
        anchor: str,
        event: dict[str, Any],
        confidence: Confidence | None = None,
    ) -> Finding:
        finding = self.finding(
            ctx.path, where_in_file(series, at), message=message, confidence=confidence
        )
        finding.data.update(
            anchor=anchor, event={"code": self.code, "series": series.name, **event}
        )
        return finding


@register
class NonFiniteLoss(LogRule):
    """
    ## What it does
    Reports a logged loss that became NaN or infinite, or grew to `growth` times (1000x by
    default) its lowest value so far: training diverged. The message names the epoch or step,
    the last finite value and the minimum before it.

    ## Why is this bad?
    Once the loss is NaN the weights are NaN too and every later epoch is wasted; a loss that
    jumps a thousandfold has left the region the optimizer was converging in. The usual cause is
    a learning rate too high for the model (or no gradient clipping on a recurrent model).

    ## Example
    ```text
    runs/metrics.csv:9:1: NP501 [error] train_loss became nan at epoch 7 (last finite value
    3.1e+04 at epoch 6, minimum 2.21 at epoch 0) ...
    ```

    ## How to fix
    Lower the learning rate by 10x, add warm-up, or clip gradients with
    `torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)` before `optimizer.step()`.

    ## Options
    - `growth` (float, default 1000.0): a finite loss at least this many times its minimum so far
      counts as diverged.

    ## References
    - Zhang et al., AUTOTRAINER: An Automatic DNN Training Problem Detection and Repair System
      (ICSE 2021), "exploding" and NaN losses
    - Goodfellow, Bengio, Courville, Deep Learning, section 8.2.4 (cliffs and exploding gradients)
    """

    code = "NP501"
    name = "non-finite-loss"
    message = "{series} diverged at {where}"
    severity = Severity.ERROR
    confidence = Confidence.HIGH
    options = {"growth": Option(1000.0, "a loss this many times its minimum so far diverged")}

    def check(self, ctx: LogContext) -> Iterable[Finding]:
        hits: list[tuple[float, Series, int, int]] = []
        for series in ctx.run.losses():
            found = analysis.first_blowup(series, self.opt("growth"))
            if found is not None:
                hits.append((series.x(found[0]), series, found[0], found[1]))
        if not hits:
            return
        _, series, i, best = min(hits, key=lambda h: h[0])
        value = series.values[i]
        what = f"became {value}" if not math.isfinite(value) else f"jumped to {fmt(value)}"
        previous = (
            f"last finite value {fmt(series.values[i - 1])} at {series.where(i - 1)}, "
            if (i > 0 and math.isfinite(series.values[i - 1]))
            else ""
        )
        lr = ctx.run.lr
        at_lr = f" with lr {fmt(lr.values[-1])}" if lr is not None and len(lr) else ""
        message = (
            f"{series.name} {what} at {series.where(i)} ({previous}minimum "
            f"{fmt(series.values[best])} at {series.where(best)}): training diverged{at_lr}; "
            f"lower the learning rate by 10x or clip gradients "
            f"(torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0))"
        )
        yield self.report(ctx, message, series, i, "optimizer", {"kind": "point", "x": series.x(i)})


@register
class PlateauWithoutDecay(LogRule):
    """
    ## What it does
    Reports a validation metric (validation loss, else a validation accuracy-like metric) that
    has not improved by more than `min-delta` (relative) for at least `patience` evaluations
    while the learning rate stayed the same. When the log has no learning-rate column, it speaks
    only if the training script that writes the log is known and never decays the rate.

    ## Why is this bad?
    A stalled validation curve at a constant learning rate usually means the optimizer is
    bouncing around a minimum it could settle into with smaller steps: decaying the learning
    rate by 0.1 (or 0.3, 0.5 for gentler steps) at the plateau typically buys another drop in the
    loss, and further epochs at the same rate buy nothing.

    ## Example
    ```text
    runs/metrics.csv:22:1: NP502 [info] val_loss has not improved for 12 evaluations (epochs
    8-20: best 0.412 at epoch 8, last 0.431) while lr stayed 0.05 ...
    ```

    ## How to fix
    Add a scheduler after the optimizer and step it with the validation loss:

    ```python
    scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, factor=0.1, patience=5)
    ...
    scheduler.step(val_loss)  # after each validation
    ```

    or decay on a fixed schedule with
    `torch.optim.lr_scheduler.StepLR(optimizer, step_size=N, gamma=0.1)`. When the script is
    known, the finding on its optimizer line carries the first line as a fix.

    ## Options
    - `patience` (int, default 5): evaluations without improvement that make a plateau.
    - `min-delta` (float, default 0.001): the relative improvement that counts.

    ## References
    - PyTorch documentation, torch.optim.lr_scheduler.ReduceLROnPlateau and StepLR
    - Goodfellow, Bengio, Courville, Deep Learning, section 8.3.1 (the learning rate must decay)
    """

    code = "NP502"
    name = "plateau-without-decay"
    message = "{series} plateaued at a constant learning rate"
    severity = Severity.INFO
    confidence = Confidence.MEDIUM
    fixable = True
    options = {
        "patience": Option(5, "evaluations without improvement that make a plateau"),
        "min-delta": Option(0.001, "the relative improvement that counts"),
    }

    def check(self, ctx: LogContext) -> Iterable[Finding]:
        run = ctx.run
        series = run.val_loss or run.val_metric
        if series is None:
            return
        lr = run.lr
        if lr is None and (ctx.anchors is None or ctx.anchors.has_decay):
            return  # whether the rate was decayed is unknown
        patience = int(self.opt("patience"))
        for window in analysis.stalls(series, patience, self.opt("min-delta")):
            lo, hi = series.x(window.start), series.x(window.end)
            rates = analysis.values_between(lr, lo, hi) if lr is not None else []
            if lr is not None and not rates:
                continue
            if rates and max(rates) > min(rates) * (1 + 1e-9):
                continue  # the rate was decayed during the stall
            held = f"lr stayed {fmt(rates[0])}" if rates else "the script never decays lr"
            count = window.end - window.start
            best = series.values[window.start]
            step_size = series.epochs[window.start] if series.by_epoch else None
            steplr = (
                f" or StepLR(optimizer, step_size={max(1, step_size)}, gamma=0.1)"
                if step_size is not None
                else ""
            )
            message = (
                f"{series.name} has not improved for {count} evaluations "
                f"({series.span(window.start + 1, window.end)}: best {fmt(best)} at "
                f"{series.where(window.start)}, last {fmt(series.values[window.end])}) while "
                f"{held}: decay the learning rate by 0.1 (or 0.3/0.5 for a gentler step) at the "
                f"plateau, e.g. scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, "
                f"factor=0.1, patience={patience}) with scheduler.step({series.name}) after each "
                f"validation{steplr}"
            )
            finding = self.report(
                ctx,
                message,
                series,
                window.end,
                "optimizer",
                {"kind": "window", "x0": lo, "x1": hi},
                confidence=None if rates else Confidence.LOW,
            )
            if ctx.anchors is not None:
                fix = ctx.anchors.scheduler_fix(patience)
                if fix is not None:
                    finding.data["script_fix"] = fix
            yield finding
            return


@register
class Overfitting(LogRule):
    """
    ## What it does
    Reports a validation loss that has risen for at least `patience` evaluations past its
    minimum, by at least `min-rise` (relative), while the training loss kept falling.

    ## Why is this bad?
    The model is memorising the training set: every further epoch makes it worse on data it has
    not seen. The weights at the validation minimum were the best ones.

    ## Example
    ```text
    runs/log.jsonl:61:1: NP503 [warning] val_loss rose from 0.21 at epoch 12 to 0.35 at epoch 60
    (48 evaluations) while train_loss fell from 0.15 to 0.002 ...
    ```

    ## How to fix
    Stop early (keep the checkpoint with the best validation loss and stop after a few
    evaluations without improvement), add regularisation (weight decay, dropout), augment the
    data or get more of it, or use a smaller model.

    ## Options
    - `patience` (int, default 5): evaluations of rising validation loss that count.
    - `min-rise` (float, default 0.05): how far above its minimum (relative) the validation loss
      must end.

    ## References
    - Goodfellow, Bengio, Courville, Deep Learning, section 7.8 (early stopping)
    - Schoop et al., UMLAUT: Debugging Deep Learning Programs using Program Structure, Model
      Behavior, and Training Heuristics (CHI 2021)
    """

    code = "NP503"
    name = "overfitting"
    message = "{series} rises while the training loss falls"
    severity = Severity.WARNING
    confidence = Confidence.MEDIUM
    options = {
        "patience": Option(5, "evaluations of rising validation loss that count"),
        "min-rise": Option(0.05, "relative rise above the minimum that counts"),
    }

    def check(self, ctx: LogContext) -> Iterable[Finding]:
        val, train = ctx.run.val_loss, ctx.run.train_loss
        if val is None or train is None or not val.finite() or not train.finite():
            return
        values = val.values
        if len(values) < 2:
            return
        m = min(range(len(values)), key=lambda i: values[i])
        end = len(values) - 1
        if end - m < int(self.opt("patience")) or values[end] < values[m] * (
            1 + self.opt("min-rise")
        ):
            return
        before = val.x(m - 1) if m > 0 else -math.inf
        train_m = analysis.mean_at(train, before, val.x(m))
        train_end = analysis.mean_at(train, val.x(end - 1), val.x(end))
        if train_m is None or train_end is None or train_end >= train_m:
            return
        message = (
            f"{val.name} rose from {fmt(values[m])} at {val.where(m)} to {fmt(values[end])} at "
            f"{val.where(end)} ({end - m} evaluations) while {train.name} fell from "
            f"{fmt(train_m)} to {fmt(train_end)}: the model overfits; stop early (keep the "
            f"weights of {val.where(m)}), add weight decay or dropout, or augment the data"
        )
        yield self.report(
            ctx,
            message,
            val,
            end,
            "epoch-loop",
            {"kind": "window", "x0": val.x(m), "x1": val.x(end)},
        )


@register
class OscillatingLoss(LogRule):
    """
    ## What it does
    Reports a curve that swings against its trend in at least `fraction` of evaluations: a
    validation accuracy-like metric dropping by `swing` (0.03) or more, or a loss rising by
    `swing` times its first value or more, from one evaluation to the next. It reads the
    validation metric, else the validation loss, else a per-epoch training loss.

    ## Why is this bad?
    Frequent large swings mean the steps are too big for the curvature of the loss: the
    optimizer jumps across the valley instead of descending it, and the final weights depend on
    where the last step happened to land.

    ## Example
    ```text
    runs/log.csv:30:1: NP504 [info] val_acc dropped by >= 0.03 in 9 of 29 evaluations ...
    ```

    ## How to fix
    Lower the learning rate (by 3-10x), raise the batch size, or decay the rate during training.

    ## Options
    - `swing` (float, default 0.03): the size of a swing (absolute for metrics in [0, 1],
      relative to the first value for losses).
    - `fraction` (float, default 0.2): the share of evaluations that must swing.
    - `min-evaluations` (int, default 10): shorter curves are not judged.

    ## References
    - Zhang et al., AUTOTRAINER (ICSE 2021), "oscillating loss"
    """

    code = "NP504"
    name = "oscillating-loss"
    message = "{series} oscillates"
    severity = Severity.INFO
    confidence = Confidence.MEDIUM
    options = {
        "swing": Option(0.03, "the size of a swing"),
        "fraction": Option(0.2, "the share of evaluations that must swing"),
        "min-evaluations": Option(10, "shorter curves are not judged"),
    }

    def check(self, ctx: LogContext) -> Iterable[Finding]:
        run = ctx.run
        train = run.train_loss
        candidates = [run.val_metric, run.val_loss, train if train and train.by_epoch else None]
        for series in candidates:
            if series is None or len(series) < int(self.opt("min-evaluations")):
                continue
            if not series.finite():
                return
            fraction_metric = analysis.is_fraction(series)
            if not fraction_metric and not analysis.higher_is_better(series):
                threshold = self.opt("swing") * abs(series.values[0])
                sign = 1.0
            elif fraction_metric:
                threshold, sign = self.opt("swing"), -1.0
            else:
                continue
            values = series.values
            swings = [
                i + 1
                for i in range(len(values) - 1)
                if sign * (values[i + 1] - values[i]) >= threshold > 0
            ]
            moves = len(values) - 1
            if len(swings) < self.opt("fraction") * moves:
                return
            verb = "dropped" if sign < 0 else "rose"
            shown = ", ".join(series.where(i) for i in swings[:5])
            message = (
                f"{series.name} {verb} by >= {fmt(threshold)} in {len(swings)} of {moves} "
                f"evaluations ({shown}{', ...' if len(swings) > 5 else ''}): the steps are too "
                f"large; lower the learning rate by 3-10x or raise the batch size"
            )
            yield self.report(
                ctx,
                message,
                series,
                swings[-1],
                "optimizer",
                {"kind": "points", "xs": [series.x(i) for i in swings]},
            )
            return


@register
class SlowConvergence(LogRule):
    """
    ## What it does
    Reports an accuracy-like metric (validation first, else training) that after at least
    `min-evaluations` evaluations never gained more than `min-gain` from one evaluation to the
    next and never reached `max-metric`.

    ## Why is this bad?
    The model is barely learning: at this pace it will not reach a useful accuracy in any
    reasonable number of epochs. Typical causes are a learning rate far too low, inputs that are
    not normalised, or a poor initialisation.

    ## Example
    ```text
    runs/metrics.csv:21:1: NP505 [info] val_acc gained at most 0.004 per evaluation over epochs
    0-19 and peaked at 0.18 ...
    ```

    ## How to fix
    Raise the learning rate (try 3-10x, or a learning-rate range test), normalise the inputs,
    and check the initialisation (NP108-NP112).

    ## Options
    - `min-gain` (float, default 0.01): the best per-evaluation gain below which progress is slow.
    - `max-metric` (float, default 0.6): only metrics that stayed below this are reported.
    - `min-evaluations` (int, default 5): shorter curves are not judged.

    ## References
    - Zhang et al., AUTOTRAINER (ICSE 2021), "slow convergence"
    """

    code = "NP505"
    name = "slow-convergence"
    message = "{series} converges too slowly"
    severity = Severity.INFO
    confidence = Confidence.MEDIUM
    options = {
        "min-gain": Option(0.01, "the best per-evaluation gain below which progress is slow"),
        "max-metric": Option(0.6, "only metrics that stayed below this are reported"),
        "min-evaluations": Option(5, "shorter curves are not judged"),
    }

    def check(self, ctx: LogContext) -> Iterable[Finding]:
        run = ctx.run
        series = run.val_metric or run.role("train-metric")
        if series is None or len(series) < int(self.opt("min-evaluations")):
            return
        if not series.finite() or not analysis.is_fraction(series):
            return
        values = series.values
        gain = max(values[i + 1] - values[i] for i in range(len(values) - 1))
        if gain >= self.opt("min-gain") or max(values) >= self.opt("max-metric"):
            return
        end = len(values) - 1
        message = (
            f"{series.name} gained at most {fmt(max(gain, 0.0))} per evaluation over "
            f"{series.span(0, end)} and peaked at {fmt(max(values))}: training is too slow; "
            f"raise the learning rate (3-10x), normalise the inputs and check the initialisation"
        )
        yield self.report(
            ctx,
            message,
            series,
            end,
            "optimizer",
            {"kind": "window", "x0": series.x(0), "x1": series.x(end)},
        )


def log_context(target: Target, config: Config, reader: Any = None) -> LogContext:
    """Read the log (or what was appended since `reader` last read it) into a LogContext.
    Raises NotALog, OSError, ImportError."""
    from nnprobe.logs.reader import LogReader
    from nnprobe.logs.script import anchors
    from nnprobe.logs.settings import columns

    reader = reader or LogReader(target.path, columns(config.logs), roots_for(target, config))
    run = reader.update()
    return LogContext(run, target.display, anchors(target.path, target.display, config))


def check_log(target: Target, config: Config, reader: Any = None) -> FileResult:
    """The NP5xx findings on one log file, and their copies on the training script's lines."""
    from nnprobe.logs.reader import NotALog

    display = target.display
    try:
        ctx = log_context(target, config, reader)
    except NotALog as exc:
        if exc.corrupt:
            return _failed(target, config, str(exc))
        if not target.explicit:
            return FileResult(display, [], analysed=False)
        return _failed(target, config, f"not a training log: {exc}")
    except (OSError, ImportError) as exc:
        return _failed(target, config, str(exc))
    return FileResult(display, findings_for(ctx, config, Path(target.path)))


def findings_for(ctx: LogContext, config: Config, path: Path) -> list[Finding]:
    codes = config.enabled_codes(path)
    rules = instantiate(config, codes, (r for r in all_rules() if r.evidence is Evidence.LOGS))
    findings = finalize(run_rules(rules, ctx, ctx.path, config), config, path)
    if ctx.anchors is not None:
        from nnprobe.core.suppressions import parse_suppressions

        smap = ctx.anchors.smap
        copies = smap.copies(findings, ctx.path)
        findings += finalize(copies, config, smap.script, parse_suppressions(smap.text))
    return findings


def _failed(target: Target, config: Config, message: str) -> FileResult:
    finding = internal_finding("NP901", target.display, message, config)
    return FileResult(target.display, finalize([finding], config, target.path))

"""NP401-NP405: what gradients and a few optimizer steps on a probe batch say about training.

`nnprobe.probe.gradients` runs a copy of the model forward and backward with the training script's
loss and optimizer settings and hands these rules a GradientContext of plain numbers; the rules only
compare them with thresholds, so they need neither torch nor numpy. Every message says what it was
measured on, and findings measured on synthetic inputs or synthetic labels carry lower confidence.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

from nnprobe.core.finding import FILE_START, Confidence, Evidence, Finding, Severity
from nnprobe.core.registry import register
from nnprobe.core.rule import Option, Rule
from nnprobe.inspectors.gradient_context import GradientContext, LayerGradient

_LOWER = {Confidence.HIGH: Confidence.MEDIUM, Confidence.MEDIUM: Confidence.LOW}


def layer_name(layer: LayerGradient) -> str:
    return f"`{layer.module}`" if layer.module else "the model itself"


def pct(fraction: float) -> str:
    return f"{100 * fraction:.0f}%"


class GradientRule(Rule):
    evidence = Evidence.GRADIENTS
    # Confidence with real inputs and given labels; anything synthetic lowers it one step.
    real_confidence = Confidence.MEDIUM

    def confidence_for(
        self, ctx: GradientContext, confidence: Confidence | None = None
    ) -> Confidence:
        base = confidence or self.real_confidence
        return _LOWER.get(base, base) if ctx.synthetic else base

    def report(
        self,
        ctx: GradientContext,
        message: str,
        layer: LayerGradient | None = None,
        severity: Severity | None = None,
        confidence: Confidence | None = None,
        **data: object,
    ) -> Finding:
        finding = self.finding(
            ctx.path,
            FILE_START,
            message=f"{message} (on {ctx.measured_on})",
            severity=severity,
            confidence=self.confidence_for(ctx, confidence),
            module=layer.module if layer is not None and layer.module else None,
        )
        finding.data.update(data)
        finding.data["measured_on"] = ctx.measured_on
        finding.data["loss"] = ctx.loss
        finding.data["optimizer"] = ctx.optimizer.describe()
        finding.data["optimizer_source"] = ctx.optimizer_note
        return finding

    def check(self, ctx: GradientContext) -> Iterable[Finding]:
        raise NotImplementedError


def _healthy_layers(ctx: GradientContext) -> list[LayerGradient]:
    """Layers the loss reaches, with finite gradients, in execution order."""
    return [layer for layer in ctx.ordered_layers() if layer.reached and not layer.nonfinite]


def _first_and_last(ctx: GradientContext) -> tuple[LayerGradient, LayerGradient] | None:
    if not ctx.loss_finite_at_start or any(layer.nonfinite for layer in ctx.layers):
        return None
    layers = _healthy_layers(ctx)
    if len(layers) < 2 or layers[-1].grad_norm <= 0 or not math.isfinite(layers[-1].grad_norm):
        return None
    return layers[0], layers[-1]


@register
class VanishingGradient(GradientRule):
    """
    ## What it does
    Backpropagates the training loss once through the model on the probe batch and compares the
    gradient norm of the first weight layer with the last one's. Warns when the first layer's
    gradient is below 1/1000 of the last layer's and below 1e-4 in absolute terms.

    ## Why is this bad?
    The first layers then receive almost no learning signal: they stay at their initialisation
    while the last layers fit what they can on top of random features. Deep stacks of sigmoid or
    tanh layers (each multiplies the gradient by a derivative of at most 0.25 or 1) and
    initialisations too small for the layer width are the usual causes.

    ## Example
    ```text
    model.pt:1:1: NP401 [warning] gradient norm of the first weight layer `0` is 2.5e-06, 9.2e-06x
    the last weight layer's (`14`: 0.27): the early layers barely learn (on 1797 inputs from
    digits.npz with given labels)
    ```

    ## How to fix
    Use ReLU-family activations in hidden layers, initialise for the activation (He/Kaiming for
    ReLU, Xavier/Glorot for tanh/sigmoid), add BatchNorm/LayerNorm, or residual connections.

    ## Options
    `ratio` is the first/last gradient-norm ratio below which the rule fires (1e-3);
    `first-max` the absolute first-layer gradient norm that must also be undercut (1e-4);
    `max-zero-fraction` leaves a first layer whose gradient is mostly exactly zero (0.7) to
    NP405, since dead ReLUs, not a long chain of small derivatives, are then the cause.

    ## References
    - Zhang et al., "AUTOTRAINER: An Automatic DNN Training Problem Detection and Repair System"
      (ICSE 2021): vanishing gradient, ratio 1e-3 and 1e-4
    - Glorot and Bengio, "Understanding the difficulty of training deep feedforward neural
      networks" (2010)
    """

    code = "NP401"
    name = "vanishing-gradient"
    message = "the first weight layer's gradient vanishes"
    severity = Severity.WARNING
    confidence = Confidence.MEDIUM
    options = {
        "ratio": Option(
            1e-3, "first/last weight-layer gradient-norm ratio below which NP401 fires"
        ),
        "first-max": Option(1e-4, "first-layer gradient norm that must also be undercut"),
        "max-zero-fraction": Option(
            0.7, "a first layer with this share of exactly-zero gradient is left to NP405"
        ),
    }

    def check(self, ctx: GradientContext) -> Iterable[Finding]:
        pair = _first_and_last(ctx)
        if pair is None:
            return
        first, last = pair
        if first.zero_fraction >= float(self.opt("max-zero-fraction")):
            return  # dead ReLUs, not a vanishing chain: NP405 says so
        ratio = first.grad_norm / last.grad_norm
        if ratio < float(self.opt("ratio")) and first.grad_norm < float(self.opt("first-max")):
            yield self.report(
                ctx,
                f"gradient norm of the first weight layer {layer_name(first)} is "
                f"{first.grad_norm:.2g}, {ratio:.2g}x the last weight layer's "
                f"({layer_name(last)}: {last.grad_norm:.2g}): the early layers barely learn",
                first,
                ratio=ratio,
                first_grad_norm=first.grad_norm,
                last_grad_norm=last.grad_norm,
            )


@register
class ExplodingGradient(GradientRule):
    """
    ## What it does
    Backpropagates the training loss once through the model on the probe batch. Reports an error
    when any weight gradient contains NaN or Inf while the loss itself is finite, or when the first
    weight layer's gradient norm is more than 70 times the last weight layer's.

    ## Why is this bad?
    Gradients that grow layer by layer on the way back make the first layers take huge steps:
    the loss jumps around or overflows to NaN. Large initialisations (normal(std=1) on wide
    layers, so that tanh units sit in the chaotic regime) and long recurrent chains are the usual
    causes. A non-finite gradient ruins every parameter it touches on the next step.

    ## Example
    ```text
    model.pt:1:1: NP402 [error] gradient norm of the first weight layer `0` is 4.8e+02, 3.5e+02x
    the last weight layer's (`14`: 1.4): gradients explode towards the input (on 64 synthetic
    inputs with synthetic labels)
    ```

    ## How to fix
    Initialise for the layer width and activation (He/Kaiming, Xavier/Glorot), add normalisation
    layers, clip gradients (`torch.nn.utils.clip_grad_norm_`), and lower the learning rate.

    ## Options
    `ratio` is the first/last weight-layer gradient-norm ratio above which the rule fires (70).

    ## References
    - Zhang et al., "AUTOTRAINER" (ICSE 2021): exploding gradient, ratio 70 and NaN gradients
    - Pascanu et al., "On the difficulty of training recurrent neural networks" (2013)
    """

    code = "NP402"
    name = "exploding-gradient"
    message = "gradients explode towards the input"
    severity = Severity.ERROR
    confidence = Confidence.MEDIUM
    options = {
        "ratio": Option(
            70.0, "first/last weight-layer gradient-norm ratio above which NP402 fires"
        ),
    }

    def check(self, ctx: GradientContext) -> Iterable[Finding]:
        if not ctx.loss_finite_at_start:
            return  # NP404 reports a loss that is already NaN; its gradients follow from it
        broken = [layer for layer in ctx.ordered_layers() if layer.nonfinite]
        if broken:
            first = broken[0]
            yield self.report(
                ctx,
                f"{first.nonfinite} of {first.entries} gradient entries of weight layer "
                f"{layer_name(first)} are NaN/Inf although the loss is finite "
                f"({len(broken)} layer(s) affected)",
                first,
                confidence=Confidence.HIGH,
                layers=[layer.module for layer in broken],
            )
            return
        pair = _first_and_last(ctx)
        if pair is None:
            return
        first, last = pair
        ratio = first.grad_norm / last.grad_norm
        if ratio > float(self.opt("ratio")):
            yield self.report(
                ctx,
                f"gradient norm of the first weight layer {layer_name(first)} is "
                f"{first.grad_norm:.2g}, {ratio:.2g}x the last weight layer's "
                f"({layer_name(last)}: {last.grad_norm:.2g}): gradients explode towards the input",
                first,
                ratio=ratio,
                first_grad_norm=first.grad_norm,
                last_grad_norm=last.grad_norm,
            )


@register
class UpdateRatio(GradientRule):
    """
    ## What it does
    Measures the size of the optimizer's first update of each weight layer relative to the
    layer's weights, |update| / |weight|, with the training script's optimizer and learning rate
    (for SGD that is lr * |grad| / |weight|; for Adam-family optimizers the effective first-step
    update, about lr per entry). Warns when layers fall outside [1e-5, 1e-1]; about 1e-3 is
    healthy.

    ## Why is this bad?
    An update ratio far above 1e-3 means each step rewrites a large part of the weights: training
    is unstable or diverges. Far below, the weights barely move and training crawls, whatever the
    loss curve suggests at first. It is the most direct check that a learning rate fits the model.

    ## Example
    ```text
    model.pt:1:1: NP403 [warning] SGD lr 10 (from train.py:31) updates 3 of 3 weight layers by
    more than 0.1 of their norm per step (largest 0.77 at `4`; about 1e-3 is healthy) (on 64
    synthetic inputs with synthetic labels)
    ```

    ## How to fix
    Scale the learning rate until the ratio is near 1e-3, or use a learning-rate finder and a
    schedule with warm-up. A layer far off the others may need its own parameter group.

    ## Options
    `min` and `max` bound the acceptable update ratio (1e-5 and 1e-1); `min-entries` skips layers
    with fewer weight entries (64): in a tiny layer, such as a 10-feature linear regression
    starting near zero, a large first update is normal.

    ## References
    - CS231n, "Neural Networks Part 3: Learning and Evaluation" (ratio of weights:updates ~1e-3)
    - Wardat et al., "DeepDiagnosis" (ICSE 2022): update ratio outside [1e-5, 1e-1]
    """

    code = "NP403"
    name = "update-ratio"
    message = "the optimizer's updates are badly scaled for the weights"
    severity = Severity.WARNING
    confidence = Confidence.MEDIUM
    options = {
        "min": Option(1e-5, "update ratio below which a layer barely moves"),
        "max": Option(1e-1, "update ratio above which a layer's update is too large"),
        "min-entries": Option(64, "layers with fewer weight entries are not checked"),
    }

    def check(self, ctx: GradientContext) -> Iterable[Finding]:
        layers = [
            layer
            for layer in _healthy_layers(ctx)
            if layer.update_ratio is not None
            and math.isfinite(layer.update_ratio)
            and layer.entries >= int(self.opt("min-entries"))
        ]
        if not layers or not ctx.loss_finite_at_start:
            return
        low, high = float(self.opt("min")), float(self.opt("max"))
        settings = f"{ctx.optimizer.describe()} ({_source(ctx)})"
        above = [layer for layer in layers if (layer.update_ratio or 0.0) > high]
        if above:
            worst = max(above, key=lambda layer: layer.update_ratio or 0.0)
            yield self.report(
                ctx,
                f"{settings} updates {len(above)} of {len(layers)} weight layers by more than "
                f"{high:g} of their norm per step (largest {worst.update_ratio:.2g} at "
                f"{layer_name(worst)}; about 1e-3 is healthy)",
                worst,
                layers={layer.module: layer.update_ratio for layer in above},
            )
        # A layer with no gradient at all is NP405's business, not the learning rate's.
        below = [
            layer
            for layer in layers
            if (layer.update_ratio or 0.0) < low and layer.zero_fraction < 1.0
        ]
        if below:
            worst = min(below, key=lambda layer: layer.update_ratio or 0.0)
            yield self.report(
                ctx,
                f"{settings} updates {len(below)} of {len(layers)} weight layers by less than "
                f"{low:g} of their norm per step (smallest {worst.update_ratio:.2g} at "
                f"{layer_name(worst)}; about 1e-3 is healthy): they barely move",
                worst,
                layers={layer.module: layer.update_ratio for layer in below},
            )


def _source(ctx: GradientContext) -> str:
    note = ctx.optimizer_note
    return note if note.startswith(("defaults", "given")) else f"from {note}"


@register
class NanRisk(GradientRule):
    """
    ## What it does
    Trains a copy of the model for a few optimizer steps on the probe batch, with the optimizer,
    learning rate, momentum and weight decay of the training script (or defaults, and the message
    says which), and reports an error when the loss becomes NaN/Inf or grows to 1000 times its
    starting value.

    ## Why is this bad?
    A learning rate above the loss's stability limit (for plain gradient descent, 2 divided by the
    largest curvature) makes every step overshoot by more than it corrects: the loss grows
    geometrically and turns into NaN, and the run is wasted. The seed's regression example trains
    at lr 0.1 and goes NaN at lr 0.3.

    ## Example
    ```text
    model.pt:1:1: NP404 [error] SGD lr 0.3 (from train.py:52) makes the loss grow from 1.5 to
    2.2e+03 (1.5e+03x) within 12 steps: training will diverge to NaN (on 353 probe inputs with
    given labels)
    ```

    ## How to fix
    Lower the learning rate (try a factor of 3 to 10), add warm-up, clip gradients, and make sure
    inputs and regression targets are standardised.

    ## Options
    `growth` is the factor over the starting loss from which the rule fires (1e3); `loss-floor`
    the smallest starting loss the growth is measured from (1e-3), so that a near-zero loss
    rising a little is not mistaken for divergence. The number of steps is the prober's setting
    (40 by default; it stops early once the loss diverges).

    ## References
    - The seed's learning-rate example: lr 0.1 trains, lr 0.3 goes NaN
    - Zhang et al., "AUTOTRAINER" (ICSE 2021): loss 1e3x its minimum as explosion
    """

    code = "NP404"
    name = "nan-risk"
    message = "a few optimizer steps make the loss diverge"
    severity = Severity.ERROR
    confidence = Confidence.MEDIUM
    options = {
        "growth": Option(1e3, "loss growth factor over its starting value from which NP404 fires"),
        "loss-floor": Option(1e-3, "smallest starting loss growth is measured from"),
    }

    def check(self, ctx: GradientContext) -> Iterable[Finding]:
        if not ctx.losses:
            return
        settings = f"{ctx.optimizer.describe()} ({_source(ctx)})"
        start = ctx.losses[0]
        if not math.isfinite(start):
            yield self.report(
                ctx,
                f"the {ctx.loss} loss is already {_word(start)} at the given weights, before any "
                "optimizer step",
                confidence=Confidence.HIGH,
                losses=list(ctx.losses),
            )
            return
        step = ctx.first_nonfinite_step()
        if step is not None:
            yield self.report(
                ctx,
                f"{settings} makes the {ctx.loss} loss {_word(ctx.losses[step])} after {step} "
                f"optimizer step{'s' if step != 1 else ''} (starting from {start:.3g})",
                confidence=Confidence.HIGH,
                losses=list(ctx.losses),
            )
            return
        growth = float(self.opt("growth"))
        base = max(start, float(self.opt("loss-floor")))
        for index, value in enumerate(ctx.losses[1:], start=1):
            if value >= growth * base:
                yield self.report(
                    ctx,
                    f"{settings} makes the {ctx.loss} loss grow from {start:.3g} to {value:.3g} "
                    f"({value / start if start > 0 else math.inf:.2g}x) within {index} "
                    f"step{'s' if index != 1 else ''}: "
                    "training will diverge to NaN",
                    losses=list(ctx.losses),
                )
                return


def _word(value: float) -> str:
    return "NaN" if math.isnan(value) else "Inf"


@register
class DyingReluGradients(GradientRule):
    """
    ## What it does
    Backpropagates the training loss once on the probe batch and counts, per weight layer, the
    gradient entries that are exactly zero. Warns when 70% or more of a layer's weight gradient is
    exactly zero.

    ## Why is this bad?
    Exact zeros come from ReLU units that are off for every input of the batch: they pass back no
    gradient, so neither the weights into them nor the weights reading their (zero) output can
    learn. A layer with most of its gradient zero trains at a fraction of its width and rarely
    recovers; a high learning rate, a large negative bias or a bad initialisation cause it.

    ## Example
    ```text
    model.pt:1:1: NP405 [warning] 100% of the 4096 weight-gradient entries of `0` are exactly
    zero: dead ReLUs cut its learning signal (on 1797 inputs from digits.npz with given labels)
    ```

    ## How to fix
    Lower the learning rate, check the layer's bias and initialisation (He/Kaiming for ReLU),
    normalise the inputs, or use LeakyReLU/ELU. NP301 shows which units are dead.

    ## Options
    `fraction` is the share of exactly-zero gradient entries from which a layer is reported
    (0.7); `min-entries` skips layers with fewer weight entries (16).

    ## References
    - Zhang et al., "AUTOTRAINER" (ICSE 2021): dying ReLU, 70% zero gradients
    - CS231n, "Neural Networks Part 1" (dying ReLU)
    """

    code = "NP405"
    name = "dying-relu-gradients"
    message = "most of a layer's gradient is exactly zero"
    severity = Severity.WARNING
    confidence = Confidence.MEDIUM
    options = {
        "fraction": Option(0.7, "share of exactly-zero gradient entries from which NP405 fires"),
        "min-entries": Option(16, "layers with fewer weight entries are not checked"),
    }

    def check(self, ctx: GradientContext) -> Iterable[Finding]:
        if not ctx.loss_finite_at_start:
            return
        limit = float(self.opt("fraction"))
        min_entries = int(self.opt("min-entries"))
        for layer in _healthy_layers(ctx):
            if layer.entries < min_entries or layer.zero_fraction < limit:
                continue
            yield self.report(
                ctx,
                f"{pct(layer.zero_fraction)} of the {layer.entries} weight-gradient entries of "
                f"{layer_name(layer)} are exactly zero: dead ReLUs cut its learning signal",
                layer,
                zero_fraction=layer.zero_fraction,
            )

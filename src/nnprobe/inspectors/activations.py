"""NP301-NP308: what the activations on a probe batch say about a network.

The probe engine (`nnprobe.probe`) runs the model and hands these rules an ActivationContext of
per-value statistics; the rules only compare numbers with thresholds, so they need neither torch nor
numpy. Every message says what it was measured on, and findings measured on synthetic inputs carry a
lower confidence: a unit that is dead on Gaussian noise may live on real data.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

from nnprobe.core.finding import FILE_START, Confidence, Evidence, Finding, Severity
from nnprobe.core.registry import register
from nnprobe.core.rule import Option, Rule
from nnprobe.inspectors.activation_context import (
    RELU_KINDS,
    SATURATING_KINDS,
    WEIGHT_KINDS,
    ActivationContext,
    ValueSummary,
)

_KIND_NAMES = {
    "relu": "ReLU",
    "leaky_relu": "LeakyReLU",
    "sigmoid": "sigmoid",
    "tanh": "tanh",
    "linear": "linear layer",
    "conv": "conv layer",
    "conv_transpose": "transposed conv layer",
    "norm": "normalisation layer",
    "recurrent": "recurrent layer",
}


def where(value: ValueSummary) -> str:
    """`features.3`, or the model's own forward for functional calls at the top level."""
    return f"`{value.module}`" if value.module else "the model's forward"


def describe(value: ValueSummary) -> str:
    return f"{_KIND_NAMES.get(value.kind, value.kind)} {where(value)}"


def pct(fraction: float) -> str:
    return f"{100 * fraction:.0f}%"


class ActivationRule(Rule):
    evidence = Evidence.ACTIVATIONS
    # Confidence on real probe inputs; synthetic inputs lower it one step.
    real_confidence = Confidence.MEDIUM

    def confidence_for(self, ctx: ActivationContext) -> Confidence:
        if not ctx.synthetic:
            return self.real_confidence
        return Confidence.LOW if self.real_confidence is not Confidence.HIGH else Confidence.MEDIUM

    def report(
        self,
        ctx: ActivationContext,
        message: str,
        value: ValueSummary | None = None,
        severity: Severity | None = None,
        confidence: Confidence | None = None,
        **data: object,
    ) -> Finding:
        module = value.module if value is not None and value.module else None
        finding = self.finding(
            ctx.path,
            FILE_START,
            message=f"{message} (on {ctx.measured_on})",
            severity=severity,
            confidence=confidence or self.confidence_for(ctx),
            module=module,
        )
        finding.data.update(data)
        finding.data["measured_on"] = ctx.measured_on
        finding.data["backend"] = ctx.backend
        if value is not None:
            finding.data["value"] = value.name
            if value.layer:
                finding.data["layer"] = value.layer  # the weight layer feeding it, for mapping
        return finding

    def check(self, ctx: ActivationContext) -> Iterable[Finding]:
        raise NotImplementedError


def _unit_noun(ctx: ActivationContext, value: ValueSummary) -> str:
    for other in ctx.values:
        if other.module == value.layer and other.kind in WEIGHT_KINDS:
            return "channels" if other.kind in ("conv", "conv_transpose") else "units"
    return "units"


@register
class DeadRelu(ActivationRule):
    """
    ## What it does
    Counts the units of every ReLU (channels, for conv layers) that were never positive on any
    input of the probe set. Warns when 40% or more of a layer's units are dead, and reports an
    error from 70%.

    ## Why is this bad?
    A ReLU unit whose input is negative for every example outputs zero and passes back zero
    gradient: nothing can revive it, and the layer trains with a fraction of its width. CS231n
    notes that "as much as 40% of your network can be dead" after a learning rate set too high;
    a large negative bias or a bad initialisation does the same from the start.

    ## Example
    ```text
    model.pt:1:1: NP301 [error] 29 of 32 units (91%) of ReLU `net.3` (after `net.2`) were never
    positive (on 1797 inputs from digits.npz)
    ```

    ## How to fix
    Lower the learning rate (and add warm-up), check the layer's bias and initialisation (He/Kaiming
    for ReLU), normalise the inputs, or use LeakyReLU/ELU, whose units cannot die. Inspect the
    checkpoint again after a short run.

    ## Options
    `warn-at` is the dead fraction from which a warning is given, `error-at` the one from which it
    is an error; `min-units` skips layers narrower than that.

    ## References
    - CS231n, "Neural Networks Part 1: Setting up the Architecture" (dying ReLU)
    - Wardat et al., "DeepDiagnosis" (2022): 70% threshold
    """

    code = "NP301"
    name = "dead-relu"
    message = "{dead} of {units} units of a ReLU were never positive"
    severity = Severity.WARNING
    confidence = Confidence.MEDIUM
    options = {
        "warn-at": Option(0.4, "fraction of never-positive units from which NP301 warns"),
        "error-at": Option(0.7, "fraction of never-positive units from which NP301 is an error"),
        "min-units": Option(4, "layers with fewer units are not checked"),
    }

    def check(self, ctx: ActivationContext) -> Iterable[Finding]:
        warn_at = float(self.opt("warn-at"))
        error_at = float(self.opt("error-at"))
        min_units = int(self.opt("min-units"))
        for value in ctx.of_kind(*RELU_KINDS):
            maxima = value.unit_max
            if not maxima or len(maxima) < min_units or value.count == 0:
                continue
            dead = value.dead_units
            fraction = dead / len(maxima)
            if fraction < warn_at:
                continue
            noun = _unit_noun(ctx, value)
            after = ""
            if value.layer and value.layer != value.module:
                after = f" (after `{value.layer}`)"
            yield self.report(
                ctx,
                f"{dead} of {len(maxima)} {noun} ({pct(fraction)}) of ReLU {where(value)}"
                f"{after} were never positive",
                value,
                severity=Severity.ERROR if fraction >= error_at else Severity.WARNING,
                dead_fraction=fraction,
                dead_units=[i for i, m in enumerate(maxima) if m <= 0.0],
            )


@register
class SaturatedActivation(ActivationRule):
    """
    ## What it does
    Measures how many outputs of each hidden sigmoid and tanh sit on the flat part of the curve:
    the pre-activation beyond +-5, or the output within 0.01 of an asymptote. Warns when more than
    half of them do.

    ## Why is this bad?
    A saturated sigmoid or tanh has a derivative near zero, so almost no gradient flows back
    through it and the layers below stop learning. Large weights (for example normal(std=1) init on
    a wide layer) or unnormalised inputs push pre-activations far out.

    ## Example
    ```text
    model.pt:1:1: NP302 [warning] 93% of the outputs of sigmoid `hidden.1` are saturated
    (pre-activation beyond +-5 for 88%) (on 64 synthetic inputs)
    ```

    ## How to fix
    Scale the initialisation to the layer (Xavier/Glorot for sigmoid and tanh), normalise the
    inputs, add normalisation layers, or use ReLU-family activations for hidden layers.

    ## Options
    `preactivation-threshold` (5.0) and `asymptote-margin` (0.01) define a saturated output;
    `fraction` is the share of saturated outputs above which the rule fires; `include-output`
    also checks a sigmoid/tanh that produces the model's output (off: a confident classifier's
    output layer saturates by design).

    ## References
    - Wardat et al., "DeepDiagnosis" (2022): saturated activation symptom
    - Glorot and Bengio, "Understanding the difficulty of training deep feedforward neural
      networks" (2010)
    """

    code = "NP302"
    name = "saturated-activation"
    message = "most outputs of a sigmoid/tanh are saturated"
    severity = Severity.WARNING
    confidence = Confidence.MEDIUM
    options = {
        "preactivation-threshold": Option(5.0, "|pre-activation| beyond which a unit saturates"),
        "asymptote-margin": Option(0.01, "outputs this close to an asymptote are saturated"),
        "fraction": Option(0.5, "share of saturated outputs above which NP302 fires"),
        "include-output": Option(False, "also check an activation that is the model's output"),
    }

    def check(self, ctx: ActivationContext) -> Iterable[Finding]:
        limit = float(self.opt("fraction"))
        threshold = float(self.opt("preactivation-threshold"))
        include_output = bool(self.opt("include-output"))
        for value in ctx.of_kind(*SATURATING_KINDS):
            if value.is_output and not include_output:
                continue
            saturated = value.saturated_fraction or 0.0
            beyond = value.preactivation_beyond or 0.0
            share = max(saturated, beyond)
            if value.count == 0 or share <= limit:
                continue
            yield self.report(
                ctx,
                f"{pct(share)} of the outputs of {describe(value)} are saturated "
                f"(pre-activation beyond +-{threshold:g} for {pct(beyond)})",
                value,
                saturated_fraction=saturated,
                preactivation_beyond=beyond,
            )


def _signal_chain(ctx: ActivationContext) -> list[ValueSummary]:
    return [
        v
        for v in sorted(ctx.values, key=lambda v: v.order)
        if v.kind in WEIGHT_KINDS and v.count and math.isfinite(v.std)
    ]


def _input_std(ctx: ActivationContext) -> float | None:
    std = ctx.input.std
    if ctx.input.integer or not math.isfinite(std) or std <= 0:
        return None
    return std


class _SignalScaleRule(ActivationRule):
    growing: bool = False

    def check(self, ctx: ActivationContext) -> Iterable[Finding]:
        base = _input_std(ctx)
        chain = _signal_chain(ctx)
        if base is None or not chain:
            return
        layer_ratio = float(self.opt("layer-ratio"))
        compound = float(self.opt("compound-ratio"))
        previous = base
        steps = 0
        for depth, value in enumerate(chain, start=1):
            ratio = value.std / previous if previous > 0 else math.inf
            if (ratio > layer_ratio) if self.growing else (ratio < layer_ratio):
                steps += 1
            total = value.std / base
            crossed = total > compound if self.growing else total < compound
            if crossed and steps:
                verb = "grows" if self.growing else "shrinks"
                yield self.report(
                    ctx,
                    f"activation std {verb} from {base:.3g} at the input to {value.std:.3g} at "
                    f"{describe(value)} ({total:.2g}x over {depth} weight layers; {steps} of "
                    f"them {'more than' if self.growing else 'less than'} {layer_ratio:g}x)",
                    value,
                    compound_ratio=total,
                    layers=depth,
                )
                return
            previous = value.std if value.std > 0 else previous


@register
class VanishingActivations(_SignalScaleRule):
    """
    ## What it does
    Follows the standard deviation of the weight layers' outputs from the input through the
    network, and reports where it has collapsed below 1/1000 of the input's, with layers along the
    way shrinking it by more than half.

    ## Why is this bad?
    When each layer scales the signal down, activations (and the gradients flowing back through
    the same weights) shrink geometrically with depth: the deep layers see almost constant inputs
    and the early layers receive almost no gradient. It is the forward half of the vanishing
    gradient problem, usually caused by an initialisation that is too small for the layer width.

    ## Example
    ```text
    model.pt:1:1: NP303 [warning] activation std shrinks from 1 at the input to 0.00042 at
    linear layer `layers.4` (0.00042x over 5 weight layers; 5 of them less than 0.5x)
    (on 64 synthetic inputs)
    ```

    ## How to fix
    Initialise with the scale the activation needs (He/Kaiming for ReLU, Xavier/Glorot for
    tanh/sigmoid), add BatchNorm/LayerNorm, or residual connections.

    ## Options
    `layer-ratio` is the per-layer shrink factor counted as collapsing (0.5); `compound-ratio` the
    overall ratio to the input's std below which the rule fires (1e-3).

    ## References
    - Braiek and Khomh, "TheDeepChecker" (2021): activations outside [0.5, 2] of the input's scale
    - Glorot and Bengio (2010); He et al., "Delving Deep into Rectifiers" (2015)
    """

    code = "NP303"
    name = "vanishing-activations"
    message = "activation std collapses with depth"
    severity = Severity.WARNING
    confidence = Confidence.MEDIUM
    options = {
        "layer-ratio": Option(0.5, "per-layer std ratio below which a layer shrinks the signal"),
        "compound-ratio": Option(1e-3, "std relative to the input's below which NP303 fires"),
    }


@register
class ExplodingActivations(_SignalScaleRule):
    """
    ## What it does
    Follows the standard deviation of the weight layers' outputs from the input through the
    network, and reports where it has grown beyond 1000 times the input's, with layers along the
    way more than doubling it.

    ## Why is this bad?
    Activations that grow geometrically with depth overflow, saturate whatever follows, and come
    with exploding gradients: training diverges or turns to NaN. The usual cause is an
    initialisation too large for the layer width (normal(std=1) on wide layers).

    ## Example
    ```text
    model.pt:1:1: NP304 [warning] activation std grows from 1 at the input to 3.1e+04 at linear
    layer `layers.4` (3.1e+04x over 5 weight layers; 5 of them more than 2x)
    (on 64 synthetic inputs)
    ```

    ## How to fix
    Use a width-scaled initialisation (He/Kaiming, Xavier/Glorot), add normalisation layers,
    lower the learning rate if the checkpoint was trained, and clip gradients.

    ## Options
    `layer-ratio` is the per-layer growth factor counted as exploding (2.0); `compound-ratio` the
    overall ratio to the input's std above which the rule fires (1e3).

    ## References
    - Braiek and Khomh, "TheDeepChecker" (2021): activations outside [0.5, 2] of the input's scale
    - Pascanu et al., "On the difficulty of training recurrent neural networks" (2013)
    """

    code = "NP304"
    name = "exploding-activations"
    message = "activation std grows with depth"
    severity = Severity.WARNING
    confidence = Confidence.MEDIUM
    growing = True
    options = {
        "layer-ratio": Option(2.0, "per-layer std ratio above which a layer amplifies the signal"),
        "compound-ratio": Option(1e3, "std relative to the input's above which NP304 fires"),
    }


@register
class NonFiniteActivations(ActivationRule):
    """
    ## What it does
    Reports the first layer (in execution order) whose output contains NaN or Inf, with how many
    later values the non-finite numbers reach; and, as a warning, activations whose magnitude
    exceeds the float16 range (65504), which would overflow under half precision or autocast.

    ## Why is this bad?
    A NaN anywhere in the forward pass poisons the loss and every gradient: training stops
    learning for good. The first layer where it appears is where to look (a log of zero, a division,
    an overflow after weights exploded). Values beyond 65504 are fine in float32 but become Inf
    as soon as the model runs in float16.

    ## Example
    ```text
    model.pt:1:1: NP305 [error] NaN/Inf first appears at linear layer `fc2`: 640 NaN, 0 Inf of
    640 values, reaching 3 later values (on 64 synthetic inputs)
    ```

    ## How to fix
    Check the checkpoint's weights for NaN (NP202), lower the learning rate, guard logs and
    divisions with an epsilon, and clip gradients. For float16, keep activations in range with
    normalisation layers or use bfloat16.

    ## Options
    `fp16-range` turns the float16 range check on or off.

    ## References
    - Wardat et al., "DeepLocalize: Fault Localization for Deep Neural Networks" (2021)
    - IEEE 754 half precision: largest finite value 65504
    """

    code = "NP305"
    name = "non-finite-activations"
    message = "NaN/Inf in the activations"
    severity = Severity.ERROR
    confidence = Confidence.HIGH
    real_confidence = Confidence.HIGH
    options = {"fp16-range": Option(True, "also report activations beyond the float16 range")}

    def check(self, ctx: ActivationContext) -> Iterable[Finding]:
        if ctx.input.nonfinite:
            yield self.report(
                ctx,
                f"the probe inputs themselves contain {ctx.input.nonfinite} NaN/Inf values",
                confidence=Confidence.HIGH,
            )
            return
        ordered = sorted(ctx.values, key=lambda v: v.order)
        bad = [v for v in ordered if v.nonfinite]
        if bad:
            first = bad[0]
            total = first.count + first.nonfinite
            yield self.report(
                ctx,
                f"NaN/Inf first appears at {describe(first)}: {first.nan} NaN, {first.inf} Inf "
                f"of {total} values, reaching {len(bad) - 1} later values",
                first,
                nan=first.nan,
                inf=first.inf,
            )
            return
        if not self.opt("fp16-range"):
            return
        for value in ordered:
            if value.beyond_fp16:
                peak = max(abs(value.min), abs(value.max))
                yield self.report(
                    ctx,
                    f"{value.beyond_fp16} value(s) of {describe(value)} reach |{peak:.3g}|, beyond "
                    f"the float16 range (65504): they would be Inf in half precision",
                    value,
                    severity=Severity.WARNING,
                )
                return


@register
class ActivationResemblesInput(ActivationRule):
    """
    ## What it does
    In a conv net probed with image-like inputs (1, 3 or 4 channels, at least 8x8), correlates each
    channel of the first conv layer's feature maps (and of the activation right after it) with the
    input image, resized to the map's size. Reports when most channels are near copies of the input.

    ## Why is this bad?
    Trained first-layer filters respond to edges, colours and textures, so their maps look sparse
    and localised. Maps that merely reproduce the input mean the filters have not learned features
    (not trained, or trained with too small a learning rate), and the layer wastes its capacity.

    ## Example
    ```text
    model.pt:1:1: NP306 [info] 16 of 16 channels of conv layer `features.0` correlate with the
    input image at |r| >= 0.95 (on 500 inputs from images.npz)
    ```

    ## How to fix
    Train longer or with a larger learning rate, and compare the first-layer filters with NP204's
    smoothness check; visualise the maps to confirm.

    ## Options
    `correlation` is the |Pearson r| from which a channel counts as a copy; `channel-fraction` the
    share of such channels from which the rule fires.

    ## References
    - CS231n, "Visualizing what ConvNets learn" (layer activations)
    """

    code = "NP306"
    name = "activation-resembles-input"
    message = "early conv feature maps are near copies of the input"
    severity = Severity.INFO
    confidence = Confidence.LOW
    real_confidence = Confidence.LOW
    options = {
        "correlation": Option(0.95, "|correlation| with the input from which a channel is a copy"),
        "channel-fraction": Option(0.5, "share of copied channels from which NP306 fires"),
    }

    def check(self, ctx: ActivationContext) -> Iterable[Finding]:
        if not ctx.is_conv_net or not ctx.input.image_like:
            return
        threshold = float(self.opt("correlation"))
        share = float(self.opt("channel-fraction"))
        for value in sorted(ctx.values, key=lambda v: v.order):
            correlations = value.input_correlation
            if not correlations:
                continue
            copies = sum(1 for r in correlations if abs(r) >= threshold)
            if copies / len(correlations) >= share:
                yield self.report(
                    ctx,
                    f"{copies} of {len(correlations)} channels of {describe(value)} correlate "
                    f"with the input image at |r| >= {threshold:g}",
                    value,
                    copied_channels=copies,
                )
                return


@register
class DenseActivations(ActivationRule):
    """
    ## What it does
    Reports ReLU layers whose outputs are positive almost everywhere (99% of entries or more over
    the probe set).

    ## Why is this bad?
    A ReLU that is always on is the identity: the layers around it compose into one linear map,
    and the network loses the depth it was given. Healthy ReLU activations are sparse and
    localised. Always-on units usually come from large positive biases or inputs that are all
    positive and never centred.

    ## Example
    ```text
    model.pt:1:1: NP307 [info] ReLU `act1` is positive on 100% of its outputs: it passes
    everything and acts as a linear layer (on 1797 inputs from digits.npz)
    ```

    ## How to fix
    Centre the inputs, check positive-biased initialisations, and add normalisation before the
    activation.

    ## Options
    `active-fraction` is the share of positive outputs from which the rule fires; `min-units`
    skips narrower layers.

    ## References
    - CS231n, "Visualizing what ConvNets learn": activations should be sparse and localised
    """

    code = "NP307"
    name = "dense-activations"
    message = "a ReLU is active almost everywhere"
    severity = Severity.INFO
    confidence = Confidence.LOW
    real_confidence = Confidence.LOW
    options = {
        "active-fraction": Option(0.99, "share of positive outputs from which NP307 fires"),
        "min-units": Option(4, "layers with fewer units are not checked"),
    }

    def check(self, ctx: ActivationContext) -> Iterable[Finding]:
        limit = float(self.opt("active-fraction"))
        min_units = int(self.opt("min-units"))
        for value in ctx.of_kind(*RELU_KINDS):
            active = value.active_fraction
            if active is None or value.units < min_units or active < limit:
                continue
            yield self.report(
                ctx,
                f"ReLU {where(value)} is positive on {pct(active)} of its outputs: it passes "
                "everything and acts as a linear layer",
                value,
                active_fraction=active,
            )


@register
class UnnormalizedInput(ActivationRule):
    """
    ## What it does
    Checks the real probe inputs' statistics: reports when their mean is far from zero (|mean| > 1)
    or their standard deviation outside [0.2, 5]. Synthetic inputs and integer inputs (token ids)
    are not checked.

    ## Why is this bad?
    Networks train best on inputs of zero mean and unit scale: raw pixel values (0-255, or 0-16 for
    scikit-learn's digits) push the first layer's pre-activations far out, saturate sigmoid/tanh
    units, and make the effective learning rate differ per feature.

    ## Example
    ```text
    model.pt:1:1: NP308 [info] the probe inputs have mean 4.88 and std 6.02, far from normalised
    (on 1797 inputs from digits.npz)
    ```

    ## How to fix
    Standardise the inputs (subtract the training set's mean, divide by its std), e.g. with
    `transforms.Normalize` or scikit-learn's `StandardScaler`, and apply the same transform at
    inference.

    ## Options
    `mean-max` is the largest acceptable |mean|; `std-min` and `std-max` bound the standard
    deviation.

    ## References
    - UMLAUT (Schoop et al., 2021): input normalisation heuristic
    - Wardat et al., "DeepDiagnosis" (2022)
    - LeCun et al., "Efficient BackProp" (1998)
    """

    code = "NP308"
    name = "unnormalized-input"
    message = "probe inputs are far from normalised"
    severity = Severity.INFO
    confidence = Confidence.MEDIUM
    options = {
        "mean-max": Option(1.0, "largest acceptable |mean| of the inputs"),
        "std-min": Option(0.2, "smallest acceptable std of the inputs"),
        "std-max": Option(5.0, "largest acceptable std of the inputs"),
    }

    def check(self, ctx: ActivationContext) -> Iterable[Finding]:
        summary = ctx.input
        if summary.synthetic or summary.integer:
            return
        mean, std = summary.mean, summary.std
        if not (math.isfinite(mean) and math.isfinite(std)):
            return
        off_mean = abs(mean) > float(self.opt("mean-max"))
        off_std = std < float(self.opt("std-min")) or std > float(self.opt("std-max"))
        if off_mean or off_std:
            yield self.report(
                ctx,
                f"the probe inputs have mean {mean:.3g} and std {std:.3g} (range "
                f"{summary.min:.3g} to {summary.max:.3g}), far from normalised",
                input_mean=mean,
                input_std=std,
            )

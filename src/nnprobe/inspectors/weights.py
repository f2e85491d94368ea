"""NP201-NP208: what the weights alone say, with no forward pass (state_dicts, safetensors, ONNX).

The rules see a `WeightContext`: the loaded checkpoint, its layers (kind, tensors, the activation
after each when known) and cached statistics. numpy is imported inside the checks, never at import
time, so this module loads wherever the static rules do. Each rule stays silent where its evidence
is ambiguous: an unknown activation, a tensor already reported as non-finite, a layer too small
for its statistic, an output layer whose zeros may be a deliberate init.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from nnprobe.core.finding import FILE_START, Confidence, Evidence, Finding, Severity
from nnprobe.core.registry import register
from nnprobe.core.rule import Option, Rule

if TYPE_CHECKING:
    import numpy as np

    from nnprobe.probe.layers import Layer
    from nnprobe.probe.loading import Checkpoint
    from nnprobe.probe.weight_stats import InitSignature

# Layer kinds whose weights the NP2xx rules judge (kept here so this module needs no numpy).
WEIGHT_KINDS = frozenset(
    {"linear", "conv", "conv_transpose", "embedding", "lstm", "gru", "rnn", "attention"}
)
INIT_KINDS = frozenset({"linear", "conv", "conv_transpose"})
BUFFERS = frozenset({"running_mean", "running_var", "num_batches_tracked"})
FP16_MAX = 65504.0


@dataclass
class WeightContext:
    """What NP2xx rules check: one checkpoint's tensors and layers, and statistics computed once."""

    path: str
    checkpoint: Checkpoint
    layers: list[Layer]
    _cache: dict[tuple[str, str], Any] = field(default_factory=dict, repr=False)

    @classmethod
    def build(
        cls,
        checkpoint: Checkpoint,
        display: str | None = None,
        activation_hints: Mapping[str, str] | None = None,
    ) -> WeightContext:
        return cls(
            display or checkpoint.display,
            checkpoint,
            checkpoint.layers(dict(activation_hints or {})),
        )

    @property
    def step(self) -> int | None:
        return self.checkpoint.step

    @property
    def at_init(self) -> bool | None:
        return self.checkpoint.at_init

    def tensor(self, name: str) -> np.ndarray:
        return self.checkpoint.tensors[name]

    def _cached(self, kind: str, name: str, compute: Any) -> Any:
        key = (kind, name)
        if key not in self._cache:
            self._cache[key] = compute()
        return self._cache[key]

    def finite(self, name: str) -> bool:
        import numpy as np

        return bool(self._cached("finite", name, lambda: np.isfinite(self.tensor(name)).all()))

    def signature(self, name: str) -> InitSignature:
        from nnprobe.probe.weight_stats import init_signature

        return self._cached("signature", name, lambda: init_signature(self.tensor(name)))  # type: ignore[no-any-return]

    def weight_layers(self, kinds: frozenset[str] = WEIGHT_KINDS) -> list[Layer]:
        return [layer for layer in self.layers if layer.kind in kinds and layer.weights]

    def is_output_layer(self, layer: Layer) -> bool:
        """The last layer of the linear/conv stack (by registration or graph order)."""
        stack = self.weight_layers(INIT_KINDS)
        return bool(stack) and stack[-1].path == layer.path

    def zero_init_allowed(self, layer: Layer) -> bool:
        """An all-zero output layer (or the only layer) is a legitimate init unless the file says
        training already ran; a zero hidden layer never is."""
        known_trained = self.step is not None and self.step > 0
        return self.is_output_layer(layer) and not known_trained


class WeightRule(Rule):
    evidence = Evidence.WEIGHTS

    def check(self, ctx: WeightContext) -> Iterable[Finding]:
        raise NotImplementedError

    def report(
        self,
        ctx: WeightContext,
        module: str,
        message: str,
        *,
        severity: Severity | None = None,
        confidence: Confidence | None = None,
    ) -> Finding:
        return self.finding(
            ctx.path,
            FILE_START,
            message=message,
            module=module or None,
            severity=severity,
            confidence=confidence,
        )


def describe(layer: Layer, shape: tuple[int, ...], extra: str = "") -> str:
    """`fc1` (linear 64->256), `features.0` (conv 1->8, 5x5, feeds relu)."""
    text = layer.kind
    if layer.kind in ("linear", "conv", "conv_transpose") and len(shape) >= 2:
        text += f" {shape[1]}->{shape[0]}"
        if len(shape) > 2:
            text += ", " + "x".join(str(d) for d in shape[2:])
    if extra:
        text += ", " + extra
    return f"{module_name(layer)} ({text})"


def module_name(layer: Layer) -> str:
    return f"`{layer.path or '<root>'}`"


def _local(name: str) -> str:
    return name.rsplit(".", 1)[-1]


def _count(n: int) -> str:
    return f"{n:,}"


@register
class InitScaleMismatch(WeightRule):
    """
    ## What it does
    At (or near) initialisation, compares each linear and conv layer's weight variance with the
    reference variance of the init scheme that suits the activation after it: He (2/fan_in) for
    ReLU-family activations, Glorot (2/(fan_in + fan_out)) or LeCun (1/fan_in) for tanh, sigmoid
    and linear outputs, LeCun for SELU. It reports layers whose variance is off by more than the
    F bound, F = max(v/v_ref, v_ref/v) > 2.70554 (the F-test's critical value at alpha = 0.1, as
    TheDeepChecker uses it), against the nearest acceptable reference.

    It only speaks about initialisation. A layer is judged when the file says it was saved at step
    0 (`step`/`global_step` 0; epoch 0 alone is ambiguous, as many scripts save their first
    epoch's end as epoch 0), or when its weights still look freshly initialised: entries shaped like
    an init distribution (uniform: excess kurtosis near -1.2 and nothing beyond sqrt(3) std;
    normal: kurtosis near 0 and no outliers; truncated normal) and no structure yet (the top
    singular value within `edge-max` of the random-matrix edge std * (sqrt(m) + sqrt(n))).
    Trained weights, whose variance legitimately drifts, are left alone. The activation after a
    layer comes from the ONNX graph, a TorchScript or pickled model's `nn.Sequential` order, or the
    training script; where it is unknown, or a normalisation layer sits in between (it undoes the
    scale), the layer is skipped. Layers that are exactly PyTorch's default init (uniform within
    +-1/sqrt(fan_in), variance 1/(3 fan_in)) are skipped unless `flag-torch-default` is set.

    ## Why is this bad?
    With a variance off by a factor F per layer, the signal's variance changes by about F at every
    layer: ten layers at F = 3 shrink or grow it 59,000-fold, so activations and gradients vanish
    or explode before training starts. `normal_(std=1)` on a 784-wide layer gives pre-activations
    with std 28: sigmoid and tanh units saturate and learning stalls.

    The F bound cannot separate He from LeCun or Glorot on square layers (they differ by exactly 2);
    it catches Glorot before ReLU on widening layers (F = 1 + fan_out/fan_in) and unscaled inits.

    ## Example
    ```text
    runs/init.pt:1:1: NP201 [warning] `fc1` (linear 64->256, feeds relu): weight variance 1 is
    32x the He 2/fan_in reference 0.0312 (F = 32 > 2.71); saved at step 0; use
    nn.init.kaiming_normal_(w, nonlinearity="relu") (He)
    ```

    ## How to fix
    Initialise with the scheme for the activation: `nn.init.kaiming_normal_(w,
    nonlinearity="relu")` before ReLU, `nn.init.xavier_normal_(w)` (or
    `xavier_normal_(w, gain=nn.init.calculate_gain("tanh"))`) before tanh and sigmoid, and
    `nn.init.kaiming_normal_(w, nonlinearity="linear")` (LeCun) before SELU.

    ## Options
    `max-f` is the F bound; `edge-max` how far the top singular value may sit above the
    random-matrix edge for weights to count as freshly initialised (0.94 to 0.99 at init on digits
    MLPs, 1.16 to 1.26 after one epoch of SGD with momentum).

    ## References
    - Ben Braiek and Khomh, TheDeepChecker: Testing Feedforward Neural Networks (2019)
    - He et al., Delving Deep into Rectifiers (2015)
    - Glorot and Bengio, Understanding the difficulty of training deep feedforward neural
      networks (2010)
    - LeCun et al., Efficient BackProp (1998)
    """

    code = "NP201"
    name = "init-scale-mismatch"
    message = "{layer}: weight variance {variance:.3g} is off the {reference} reference"
    severity = Severity.WARNING
    confidence = Confidence.MEDIUM
    options = {
        "max-f": Option(2.70554, "largest allowed F = max(v/v_ref, v_ref/v)"),
        "edge-max": Option(
            1.1,
            "a layer counts as freshly initialised only while its top singular value is at most "
            "this multiple of the random-matrix edge",
        ),
        "flag-torch-default": Option(
            False, "also judge layers that are exactly PyTorch's default Linear/Conv init"
        ),
    }

    def check(self, ctx: WeightContext) -> Iterator[Finding]:
        from nnprobe.probe.weight_stats import (
            fans,
            init_signature,
            references,
            torch_default_like,
        )

        for layer in ctx.weight_layers(INIT_KINDS):
            name = layer.weight
            if name is None or layer.activation is None or layer.normalized:
                continue
            if not ctx.finite(name):
                continue
            weights = ctx.tensor(name)
            fan_in, fan_out = fans(tuple(weights.shape))
            refs = references(layer.activation, fan_in, fan_out)
            if not refs or weights.size < 2:
                continue
            if ctx.at_init:
                basis = "saved at step 0"
            else:
                signature = init_signature(weights, self.opt("edge-max"))
                if not signature.fresh:
                    continue
                when = f"saved at step {ctx.step}, " if ctx.step is not None else ""
                basis = f"{when}its weights still look freshly initialised: {signature.describe()}"
            if not self.opt("flag-torch-default") and torch_default_like(weights, fan_in):
                continue
            variance = float(weights.astype("float64").var())
            if variance == 0.0:
                continue  # constant weights: NP205/NP206 speak
            reference, ref_variance = min(
                refs.items(), key=lambda item: max(variance / item[1], item[1] / variance)
            )
            f_value = max(variance / ref_variance, ref_variance / variance)
            if f_value <= self.opt("max-f"):
                continue
            relation = f"{f_value:.3g}x" if variance > ref_variance else f"1/{f_value:.3g} of"
            yield self.report(
                ctx,
                layer.path,
                f"{describe(layer, tuple(weights.shape), f'feeds {layer.activation}')}: "
                f"weight variance {variance:.3g} is {relation} the {reference} reference "
                f"{ref_variance:.3g} (F = {f_value:.3g} > {self.opt('max-f'):.3g}); {basis}; "
                f"use {_suggest(layer.activation)}",
            )


def _suggest(activation: str) -> str:
    from nnprobe.probe.weight_stats import references

    names = set(references(activation, 1, 1))
    if names == {"He 2/fan_in"} or "He 2/fan_in" in names:
        return 'nn.init.kaiming_normal_(w, nonlinearity="relu") (He)'
    if names == {"LeCun 1/fan_in"}:
        return 'nn.init.kaiming_normal_(w, nonlinearity="linear") (LeCun)'
    return "nn.init.xavier_normal_(w) (Glorot)"


@register
class NonFiniteWeights(WeightRule):
    """
    ## What it does
    Reports NaN and infinite values in any parameter or buffer (BatchNorm running statistics
    included), one finding per layer with the count in each tensor. Additive attention masks, which
    hold only 0 and -inf on purpose, are not reported.

    ## Why is this bad?
    One NaN weight makes every output it touches NaN, and the NaN spreads to every weight through
    the next gradient step. A checkpoint with non-finite weights is a diverged run: the loss
    exploded (learning rate too high, no gradient clipping, log of zero, division by a zero
    variance) some steps before it was saved.

    ## Example
    ```text
    runs/ckpt_40.pt:1:1: NP202 [error] `fc1` holds non-finite values: weight 8,192 NaN of 8,192;
    bias 32 NaN of 32
    ```

    ## How to fix
    Go back to the last checkpoint without them and find the step where the loss became
    non-finite: lower the learning rate, clip gradients (`torch.nn.utils.clip_grad_norm_`), guard
    `log`/`sqrt`/division inputs with an epsilon, and use `torch.autograd.set_detect_anomaly(True)`
    to find the operation that produced the first NaN.

    ## Options
    None.

    ## References
    - Wardat et al., DeepLocalize: Fault Localization for Deep Neural Networks (2021)
    """

    code = "NP202"
    name = "non-finite-weights"
    message = "{layer} holds non-finite values: {counts}"
    severity = Severity.ERROR
    confidence = Confidence.HIGH

    def check(self, ctx: WeightContext) -> Iterator[Finding]:
        import numpy as np

        for layer in ctx.layers:
            parts = []
            for local, name in layer.params.items():
                if name not in ctx.checkpoint.tensors or ctx.finite(name):
                    continue
                values = ctx.tensor(name)
                nan = int(np.isnan(values).sum())
                pos = int(np.isposinf(values).sum())
                neg = int(np.isneginf(values).sum())
                finite = values[np.isfinite(values)]
                if nan == 0 and pos == 0 and not np.any(finite):
                    continue  # an additive mask: 0 where allowed, -inf where masked
                counts = ", ".join(
                    f"{n:,} {what}" for n, what in ((nan, "NaN"), (pos, "+inf"), (neg, "-inf")) if n
                )
                parts.append(f"{local} {counts} of {_count(values.size)}")
            if parts:
                yield self.report(
                    ctx,
                    layer.path,
                    self.message.format(layer=module_name(layer), counts="; ".join(parts)),
                )


@register
class ExplodingWeights(WeightRule):
    """
    ## What it does
    Reports parameters whose largest magnitude exceeds `max-abs` (1e3), and, as an error, values
    beyond the float16 range (65504) in a model meant for half precision: one stored in float16 or
    bfloat16, or any model when `half-precision = "always"`. Running statistics are left to NP208.

    ## Why is this bad?
    Weights in the thousands are a run diverging: gradients too large for the learning rate, no
    weight decay, or a loss without a floor. Activations built from them saturate or overflow, and
    a model stored in bfloat16 with weights beyond 65504 turns them into inf when run in float16.

    ## Example
    ```text
    runs/ckpt_90.pt:1:1: NP203 [warning] `fc2` weight: max |w| = 4.2e+03, above 1e+03
    ```

    ## How to fix
    Lower the learning rate, add gradient clipping and weight decay, and check the loss for
    unbounded terms. Retrain from a checkpoint before the weights grew.

    ## Options
    `half-precision` is `"auto"` (judge the float16 range when tensors were stored in float16 or
    bfloat16), `"always"` or `"never"`.

    ## References
    - Ben Braiek and Khomh, TheDeepChecker: Testing Feedforward Neural Networks (2019)
    - Zhang et al., AUTOTRAINER: An Automatic DNN Training Problem Detection and Repair System
      (2021)
    """

    code = "NP203"
    name = "exploding-weights"
    message = "{layer} {tensor}: max |w| = {peak:.3g}, above {limit:.3g}"
    severity = Severity.WARNING
    confidence = Confidence.HIGH
    options = {
        "max-abs": Option(1e3, "largest allowed weight magnitude"),
        "half-precision": Option(
            "auto", 'judge the float16 range: "auto" (when stored in 16 bits), "always", "never"'
        ),
    }

    def check(self, ctx: WeightContext) -> Iterator[Finding]:
        import numpy as np

        mode = str(self.opt("half-precision")).lower()
        half = mode == "always" or (
            mode == "auto"
            and any(d in ("float16", "bfloat16") for d in ctx.checkpoint.dtypes.values())
        )
        for layer in ctx.layers:
            for local, name in layer.params.items():
                if local in BUFFERS or name not in ctx.checkpoint.tensors:
                    continue
                values = ctx.tensor(name)
                finite = values[np.isfinite(values)] if not ctx.finite(name) else values
                if finite.size == 0:
                    continue
                peak = float(np.abs(finite).max())
                module = module_name(layer)
                if half and peak > FP16_MAX:
                    beyond = int((np.abs(finite) > FP16_MAX).sum())
                    yield self.report(
                        ctx,
                        layer.path,
                        f"{module} {local}: {beyond:,} values beyond the float16 range (max |w| = "
                        f"{peak:.3g} > 65504): they become inf when the model runs in half "
                        "precision",
                        severity=Severity.ERROR,
                    )
                elif peak > self.opt("max-abs"):
                    yield self.report(
                        ctx,
                        layer.path,
                        self.message.format(
                            layer=module, tensor=local, peak=peak, limit=self.opt("max-abs")
                        )
                        + ": weights this large mean the run is diverging",
                    )


@register
class NoisyFilters(WeightRule):
    """
    ## What it does
    Scores how smooth the first convolution layer's filters are and reports filters that still
    look like noise. The score is the filters' lag-1 variogram over twice their variance, pooled
    over every 2-D filter slice: sum((a - b)^2 over horizontally and vertically adjacent taps) /
    (2 * adjacent pairs * sum of per-filter variances). White noise, which is what a random init
    is, scores 1.0; a smooth blob or ramp scores near 0; a checkerboard 2.

    Calibrated on real weights (tests/test_weights_rules.py): a CNN with a 5x5 first layer trained
    on scikit-learn's digits (upsampled to 16x16, AdamW with weight decay 0.01, 30 epochs, 100%
    train accuracy) scores about 0.45; the same layer at its random init scores about 0.94-1.0,
    and random draws of 8 such filters stay above 0.84 in 999 of 1000 seeds. The default threshold
    0.7 sits between them. 3x3 filters are too small to tell (trained digits filters scored 0.55 to
    0.86), so layers with smaller kernels are skipped (`min-kernel`). Checkpoints saved at step 0
    are skipped: untrained filters are noise by definition.

    ## Why is this bad?
    First-layer filters of a well-trained network are smooth and structured (edges, blobs, colour
    patterns). Noisy ones mean the network has not been trained long enough, or has too little
    regularisation and is fitting noise (CS231n, visualising what ConvNets learn).

    ## Example
    ```text
    runs/ckpt_1.pt:1:1: NP204 [warning] first conv layer `features.0` (conv 1->8, 5x5): its
    8 filters look like noise, roughness 0.94 (white noise scores 1.0, smooth trained filters
    near 0.45; above 0.7): not trained long enough, or too little regularisation
    ```

    ## How to fix
    Train longer, add weight decay (or more of it), or augment the data. Look at the filters
    themselves to confirm.

    ## Options
    `max-roughness` is the threshold, `min-kernel` the smallest kernel side judged and
    `min-filters` the fewest filter slices worth a verdict.

    ## References
    - CS231n, Visualizing what ConvNets learn
    - Krizhevsky, Sutskever and Hinton, ImageNet Classification with Deep Convolutional Neural
      Networks (2012), figure 3
    """

    code = "NP204"
    name = "noisy-filters"
    message = "first conv layer {layer}: its filters look like noise"
    severity = Severity.WARNING
    confidence = Confidence.MEDIUM
    options = {
        "max-roughness": Option(0.7, "roughness above which the filters count as noisy"),
        "min-kernel": Option(5, "smallest kernel side judged"),
        "min-filters": Option(4, "fewest 2-D filter slices worth a verdict"),
    }

    def check(self, ctx: WeightContext) -> Iterator[Finding]:
        from nnprobe.probe.weight_stats import roughness

        if ctx.at_init:
            return
        convs = [
            layer
            for layer in ctx.weight_layers(frozenset({"conv"}))
            if layer.weight is not None and ctx.tensor(layer.weight).ndim == 4
        ]
        if not convs:
            return
        layer = convs[0]
        assert layer.weight is not None
        weights = ctx.tensor(layer.weight)
        if min(weights.shape[-2:]) < self.opt("min-kernel") or not ctx.finite(layer.weight):
            return
        score, slices = roughness(weights)
        if slices < self.opt("min-filters") or math.isnan(score):
            return
        if score <= self.opt("max-roughness"):
            return
        yield self.report(
            ctx,
            layer.path,
            f"first conv layer {describe(layer, tuple(weights.shape))}: its {weights.shape[0]} "
            f"filters look like noise, roughness {score:.2f} (white noise scores 1.0, smooth "
            f"trained filters near 0.45; above {self.opt('max-roughness'):.2g}): not trained long "
            "enough, or too little regularisation",
        )


@register
class DeadWeights(WeightRule):
    """
    ## What it does
    Reports weight matrices of linear, conv, embedding, recurrent and attention layers with more
    than `max-fraction` (95%) of their weights below `tiny` (1e-5) in magnitude, and linear/conv
    layers with whole units (output rows, filters) whose weights are all that small. An all-zero
    output layer is not reported unless the file says training already ran: zero-initialising
    the last layer (or a softmax regression's only layer) is a legitimate choice.

    ## Why is this bad?
    A unit whose weights are all ~0 outputs only its bias: it is dead and, with ReLU after it, its
    gradient may be zero forever. A hidden layer of zeros is worse: every unit computes the same
    thing and gets the same gradient, so the units never become different (the symmetry is never
    broken). Weight decay that is too strong, or a dying-ReLU collapse, also ends here.

    ## Example
    ```text
    runs/ckpt_5.pt:1:1: NP205 [warning] `fc1` weight: 12 of 64 output units have every weight
    below 1e-05 (units 0, 3, 7, ...): they output only their bias
    ```

    ## How to fix
    Initialise hidden layers randomly (He or Glorot), lower the weight decay, and check for dying
    ReLUs (NP301): a lower learning rate or LeakyReLU keeps units alive. Intentionally pruned
    models can ignore this rule for their pruned layers.

    ## Options
    `tiny` is the magnitude below which a weight counts as zero, `max-fraction` the share of such
    weights a layer may have.

    ## References
    - Ben Braiek and Khomh, TheDeepChecker: Testing Feedforward Neural Networks (2019)
    """

    code = "NP205"
    name = "dead-weights"
    message = "{layer} {tensor}: {detail}"
    severity = Severity.WARNING
    confidence = Confidence.HIGH
    options = {
        "tiny": Option(1e-5, "magnitude below which a weight counts as zero"),
        "max-fraction": Option(0.95, "largest allowed share of ~zero weights in a layer"),
    }

    def check(self, ctx: WeightContext) -> Iterator[Finding]:
        import numpy as np

        tiny = self.opt("tiny")
        for layer in ctx.weight_layers():
            for name in layer.weights:
                if not ctx.finite(name):
                    continue
                values = np.abs(ctx.tensor(name))
                if values.size == 0:
                    continue
                small = values < tiny
                fraction = float(small.mean())
                module = module_name(layer)
                if fraction == 1.0:
                    if ctx.zero_init_allowed(layer):
                        continue
                    yield self.report(
                        ctx,
                        layer.path,
                        f"{module} {_local(name)} is all ~zero (every weight below {tiny:.0e}): "
                        + (
                            "its units all compute the same thing and get the same gradient, so "
                            "they never become different"
                            if not ctx.is_output_layer(layer)
                            else "the layer outputs only its bias"
                        ),
                    )
                    continue
                if fraction > self.opt("max-fraction"):
                    yield self.report(
                        ctx,
                        layer.path,
                        f"{module} {_local(name)}: {fraction:.1%} of its {_count(values.size)} "
                        f"weights are below {tiny:.0e} in magnitude",
                    )
                    continue
                if layer.kind not in ("linear", "conv") or values.ndim < 2:
                    continue
                dead = np.flatnonzero(small.reshape(values.shape[0], -1).all(axis=1))
                if len(dead):
                    shown = ", ".join(str(int(i)) for i in dead[:5]) + (
                        ", ..." if len(dead) > 5 else ""
                    )
                    unit = "filters" if layer.kind == "conv" else "output units"
                    yield self.report(
                        ctx,
                        layer.path,
                        f"{module} {_local(name)}: {len(dead)} of {values.shape[0]} {unit} have "
                        f"every weight below {tiny:.0e} ({shown}): they output only their bias",
                    )


@register
class WeightVarianceOutOfRange(WeightRule):
    """
    ## What it does
    Reports weight matrices of linear, conv, embedding, recurrent and attention layers whose
    variance is below `min-var` (1e-5) or above `max-var` (10). Tensors that are entirely zero are
    left to NP205, and a zero output layer is treated as a deliberate init the same way.

    ## Why is this bad?
    Such variances are far from anything an init scheme or healthy training produces for layers
    of ordinary width (He init gives 2/fan_in: 1e-5 only at a fan-in of 200,000). A tiny variance
    means the layer barely transmits signal and its gradients vanish; a huge one means
    saturated or exploding activations.

    ## Example
    ```text
    runs/ckpt_5.pt:1:1: NP206 [warning] `fc2` weight: variance 3.1e-07 is below 1e-05
    ```

    ## How to fix
    Check the init (NP201, NP111), the weight decay (NP115) and the learning rate; retrain from a
    healthy checkpoint.

    ## Options
    `min-var` and `max-var` bound the allowed variance.

    ## References
    - Wardat et al., DeepDiagnosis: Automatically Diagnosing Faults and Recommending Actionable
      Fixes in Deep Learning Programs (2022)
    """

    code = "NP206"
    name = "weight-variance-out-of-range"
    message = "{layer} {tensor}: variance {variance:.3g} is {side} {limit:.3g}"
    severity = Severity.WARNING
    confidence = Confidence.MEDIUM
    options = {
        "min-var": Option(1e-5, "smallest allowed weight variance"),
        "max-var": Option(10.0, "largest allowed weight variance"),
    }

    def check(self, ctx: WeightContext) -> Iterator[Finding]:
        for layer in ctx.weight_layers():
            for name in layer.weights:
                values = ctx.tensor(name)
                if values.size < 2 or not ctx.finite(name) or not values.any():
                    continue
                variance = float(values.astype("float64").var())
                if variance < self.opt("min-var"):
                    side, limit = "below", self.opt("min-var")
                elif variance > self.opt("max-var"):
                    side, limit = "above", self.opt("max-var")
                else:
                    continue
                yield self.report(
                    ctx,
                    layer.path,
                    self.message.format(
                        layer=module_name(layer),
                        tensor=_local(name),
                        variance=variance,
                        side=side,
                        limit=limit,
                    ),
                )


@register
class SpectralAlpha(WeightRule):
    """
    ## What it does
    Fits a power law p(x) ~ x^-alpha to the tail of the eigenvalue spectrum of W^T W (the squared
    singular values) of each linear, conv (reshaped to out x in*kh*kw) and attention projection
    whose smaller side has at least `min-dim` (32) rows, and reports alpha below `min-alpha` (2) or
    above `max-alpha` (6). The fit is Hill's maximum-likelihood estimate alpha = 1 + n /
    sum(ln(x_i / x_min)) over the top n eigenvalues, with x_min chosen among the top 5%-50% by
    the smallest Kolmogorov-Smirnov distance (Clauset, Shalizi and Newman), as WeightWatcher fits
    it. Layers that still look freshly initialised (see NP201) or files saved at step 0 are skipped:
    a random matrix has no power-law tail (on random Gaussian matrices this estimate scatters
    between 2.5 and 13), so an untrained layer says nothing here.

    ## Why is this bad?
    Martin and Mahoney found that well-trained layers have heavy-tailed spectra with alpha between
    2 and 6. Above 6 the layer has learnt little correlation (under-trained, or too high a
    learning rate or batch size); below 2 it is very heavy-tailed, which they associate with
    over-training and over-fitting. It is a heuristic about one layer, hence info level.

    ## Example
    ```text
    runs/final.pt:1:1: NP207 [info] `encoder.fc` (linear 512->512): power-law alpha 7.4 of its
    eigenvalue spectrum (Hill fit over the top 40 of 512 eigenvalues) is above 6: under-trained
    ```

    ## How to fix
    Above 6: train longer, or lower the learning rate or the batch size. Below 2: regularise
    more, stop earlier, or lower the learning rate late in training.

    ## Options
    `min-dim` is the smallest matrix side fitted; `min-alpha` and `max-alpha` bound the healthy
    range.

    ## References
    - Martin and Mahoney, Implicit Self-Regularization in Deep Neural Networks (JMLR 2021)
    - Martin, Peng and Mahoney, Predicting trends in the quality of state-of-the-art neural networks
      without access to training or testing data (Nature Communications 2021)
    - Clauset, Shalizi and Newman, Power-law distributions in empirical data (SIAM Review 2009)
    """

    code = "NP207"
    name = "spectral-alpha"
    message = "{layer}: power-law alpha {alpha:.2g} of its eigenvalue spectrum"
    severity = Severity.INFO
    confidence = Confidence.LOW
    options = {
        "min-dim": Option(32, "smallest side of a weight matrix worth a fit"),
        "min-alpha": Option(2.0, "alpha below this: over-trained"),
        "max-alpha": Option(6.0, "alpha above this: under-trained"),
    }

    def check(self, ctx: WeightContext) -> Iterator[Finding]:
        from nnprobe.probe.weight_stats import power_law_alpha, spectrum

        if ctx.at_init:
            return
        for layer in ctx.weight_layers(frozenset({"linear", "conv", "attention"})):
            for name in layer.weights:
                values = ctx.tensor(name)
                matrix = values.reshape(values.shape[0], -1)
                if min(matrix.shape) < self.opt("min-dim") or not ctx.finite(name):
                    continue
                if ctx.signature(name).fresh:
                    continue
                fit = power_law_alpha(spectrum(matrix))
                if fit is None:
                    continue
                if fit.alpha < self.opt("min-alpha"):
                    verdict = (
                        f"below {self.opt('min-alpha'):.2g}: very heavy-tailed, typical of "
                        "over-training"
                    )
                elif fit.alpha > self.opt("max-alpha"):
                    verdict = f"above {self.opt('max-alpha'):.2g}: under-trained"
                else:
                    continue
                yield self.report(
                    ctx,
                    layer.path,
                    f"{describe(layer, tuple(values.shape))}: power-law alpha {fit.alpha:.2f} of "
                    f"its {_local(name)} eigenvalue spectrum (Hill fit over the top {fit.tail} of "
                    f"{min(matrix.shape)} eigenvalues) is {verdict}",
                )


@register
class DegenerateBatchnorm(WeightRule):
    """
    ## What it does
    Reports BatchNorm layers whose running variance is NaN, ~0 (below `min-running-var`) or huge
    (above `max-running-var`) in some channels, whose scale (gamma) is ~0 in every channel, or,
    when the file says training ran (step > 0), whose running statistics were never updated.
    A gamma of zero with untouched running statistics (mean 0, variance 1) is the deliberate
    "zero-init the last BN of each residual block" trick and is not reported.

    ## Why is this bad?
    In eval mode BatchNorm divides by sqrt(running_var + eps). A channel with running variance ~0
    saw constant input in training (a dead unit upstream), and any input that differs at test time
    is multiplied by up to 1/sqrt(eps) ~ 300. A huge or NaN running variance wipes the channel out.
    Gamma ~0 everywhere switches the layer's output off. Statistics never updated in a trained
    model mean it was trained in eval mode (or with track_running_stats off), so eval-mode
    outputs differ from what training saw.

    ## Example
    ```text
    runs/ckpt_9.pt:1:1: NP208 [warning] `bn1` (batchnorm): 3 of 16 channels have running_var
    below 1e-08 (min 0): those channels saw constant input
    ```

    ## How to fix
    Look for dead units feeding the layer (NP301, NP205), make sure the model is in train mode
    while training (`model.train()` after each evaluation) and in eval mode for inference, and
    recompute running statistics over some training batches if they are wrong.

    ## Options
    `min-running-var` and `max-running-var` bound the running variance, `min-gamma` the scale.

    ## References
    - Ioffe and Szegedy, Batch Normalization (2015)
    - Goyal et al., Accurate, Large Minibatch SGD: Training ImageNet in 1 Hour (2017), zero-init
      of the last BN gamma in each residual block
    """

    code = "NP208"
    name = "degenerate-batchnorm"
    message = "{layer} (batchnorm): {problems}"
    severity = Severity.WARNING
    confidence = Confidence.HIGH
    options = {
        "min-running-var": Option(1e-8, "running variance below this counts as ~0"),
        "max-running-var": Option(1e6, "running variance above this counts as huge"),
        "min-gamma": Option(1e-5, "a scale (gamma) below this in every channel switches it off"),
    }

    def check(self, ctx: WeightContext) -> Iterator[Finding]:
        import numpy as np

        tensors = ctx.checkpoint.tensors
        for layer in ctx.layers:
            if layer.kind != "batchnorm":
                continue
            var_name = layer.params.get("running_var")
            mean_name = layer.params.get("running_mean")
            if var_name not in tensors or mean_name not in tensors:
                continue
            assert var_name is not None and mean_name is not None
            var, mean = tensors[var_name], tensors[mean_name]
            channels = var.size
            untouched = bool(np.all(mean == 0) and np.all(var == 1))
            problems = []
            severity = None
            nan = int(np.isnan(var).sum())
            if nan:
                problems.append(f"{nan} of {channels} channels have a NaN running_var")
                severity = Severity.ERROR
            finite = var[np.isfinite(var)]
            low = int((finite < self.opt("min-running-var")).sum())
            if low:
                problems.append(
                    f"{low} of {channels} channels have running_var below "
                    f"{self.opt('min-running-var'):.0e} (min {float(finite.min()):.3g}): those "
                    "channels saw constant input, and eval mode divides by sqrt(var + eps)"
                )
            high = int((finite > self.opt("max-running-var")).sum())
            if high:
                problems.append(
                    f"{high} of {channels} channels have running_var above "
                    f"{self.opt('max-running-var'):.0e} (max {float(finite.max()):.3g})"
                )
            gamma_name = layer.params.get("weight")
            if gamma_name in tensors and not untouched:
                assert gamma_name is not None
                gamma = tensors[gamma_name]
                if gamma.size and np.all(np.abs(gamma) < self.opt("min-gamma")):
                    problems.append(
                        f"its scale (gamma) is below {self.opt('min-gamma'):.0e} in every channel, "
                        "so the layer outputs only its bias"
                    )
            tracked = layer.params.get("num_batches_tracked")
            never = untouched
            if tracked in ctx.checkpoint.other:
                assert tracked is not None
                never = int(ctx.checkpoint.other[tracked].reshape(-1)[0]) == 0
            if never and ctx.step is not None and ctx.step > 0:
                problems.append(
                    f"its running statistics were never updated although the file was saved at "
                    f"step {ctx.step}: trained in eval mode, or with track_running_stats off"
                )
            if problems:
                yield self.report(
                    ctx,
                    layer.path,
                    self.message.format(layer=module_name(layer), problems="; ".join(problems)),
                    severity=severity,
                )

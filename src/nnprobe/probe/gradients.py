"""Gradients and a few optimizer steps on a probe batch: the evidence for NP401-NP405.

Everything runs on a deep copy of the user's model, inside `torch.random.fork_rng` and
`torch.enable_grad`, so the caller's module (parameters, gradients, train/eval mode), the global
random state and the caller's grad mode are exactly as before. The copy is put in train mode, as
training would (dropout on, BatchNorm on batch statistics).

What is measured, with the loss and the optimizer settings of the training script (or defaults,
and the result says which):

- the first backward at the given weights: per weight layer (module path) the L2 norm of the
  weight gradient, the share of entries that are exactly zero, and NaN/Inf entries;
- the optimizer's first update per layer, |update| / |weight|. It is measured with the real
  torch.optim class at lr 1 and scaled by the configured lr: every torch.optim optimizer except
  LBFGS makes a first step proportional to lr (SGD: lr * (g + wd * w); Adam-family: about
  lr * sign(g), the effective first-step update), and measuring at lr 1 keeps float32 rounding
  from hiding updates at tiny learning rates;
- the loss trajectory over `steps` real optimizer steps at the configured settings, stopped early
  at the first non-finite loss or once the loss has grown past NP404's threshold.

Labels are the caller's when given; else synthetic (class indices below the output width for
classification losses, random 0/1 targets for BCE, standard-normal targets for regression
losses) and every finding says so, with lower confidence.
"""

from __future__ import annotations

import copy
import inspect
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from nnprobe.core.config import Config
from nnprobe.core.engine import finalize, instantiate, run_rules
from nnprobe.core.finding import Evidence, Finding
from nnprobe.core.registry import all_rules, get_rule
from nnprobe.core.rule import Rule
from nnprobe.inspectors.activation_context import WEIGHT_KINDS
from nnprobe.inspectors.gradient_context import (
    DEFAULT_OPTIMIZER_NOTE,
    GradientContext,
    LayerGradient,
    OptimizerSettings,
)
from nnprobe.probe.inputs import ProbeInputs, spec_from_module, synthetic_inputs

if TYPE_CHECKING:
    import torch

# The seed's diabetes regression at SGD lr 0.3 passes 1e3x its starting loss after 11 steps on
# its 353 training rows, after 31 on a 64-row batch; lr 0.1 and 0.24 never do.
DEFAULT_STEPS = 40
CLASSIFICATION_LOSSES = frozenset({"cross_entropy", "nll"})
BINARY_LOSSES = frozenset({"bce_logits", "bce"})
REGRESSION_LOSSES = frozenset({"mse", "l1", "smooth_l1", "huber"})
LOSSES = CLASSIFICATION_LOSSES | BINARY_LOSSES | REGRESSION_LOSSES

__all__ = [
    "DEFAULT_STEPS",
    "LOSSES",
    "GradientError",
    "GradientResult",
    "OptimizerSettings",
    "probe_gradients",
]


class GradientError(Exception):
    """The gradients could not be measured (the forward or the loss raises, the output does not
    fit the loss, the model has no trainable weight layer); the message is meant for the user."""


@dataclass
class GradientResult:
    context: GradientContext
    findings: list[Finding]
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def layers(self) -> tuple[LayerGradient, ...]:
        return self.context.layers

    @property
    def losses(self) -> tuple[float, ...]:
        return self.context.losses


def gradient_rules() -> list[type[Rule]]:
    return [rule for rule in all_rules() if rule.evidence is Evidence.GRADIENTS]


def probe_gradients(
    module: torch.nn.Module,
    inputs: ProbeInputs | Any = None,
    labels: Any = None,
    *,
    loss: str = "cross_entropy",
    optimizer: OptimizerSettings | None = None,
    display_path: str,
    config: Config | None = None,
    steps: int = DEFAULT_STEPS,
    source_note: str | None = None,
    seed: int = 0,
    input_shape: tuple[int, ...] | None = None,
    threads: int | None = None,
) -> GradientResult:
    """Measure gradients, first-step update ratios and a short loss trajectory on a copy of
    `module`, run the enabled NP4xx rules and return their finalised findings with the statistics.

    `inputs`: ProbeInputs, a batch-first array/tensor, or None for 64 seeded synthetic inputs of
    `input_shape` or the first layer's shape. `labels`: given here, else `inputs.y`, else
    synthetic. `loss`: one of LOSSES. `optimizer`: the script's settings; None means
    OptimizerSettings() (SGD lr 0.01). `source_note` says where the settings came from and goes
    into NP404's message ("train.py:52"); it defaults to "defaults: no optimizer found" when
    `optimizer` is None, else "given settings". `threads` sets torch's intra-op threads for the
    probe and restores them after (None: leave them; 1 is fastest for tiny models on a busy
    machine). Raises GradientError when nothing can be measured.
    """
    import torch

    if loss not in LOSSES:
        raise GradientError(f"unknown loss {loss!r}; expected one of {', '.join(sorted(LOSSES))}")
    config = config or Config.default()
    note = source_note or (DEFAULT_OPTIMIZER_NOTE if optimizer is None else "given settings")
    settings = optimizer or OptimizerSettings()
    probe = _probe_inputs(module, inputs, labels, seed, input_shape)
    growth, floor = _nan_risk_limits(config)
    timings: dict[str, float] = {}
    previous_threads = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    try:
        context = _measure(
            module, probe, loss, settings, note, display_path, steps, seed, growth, floor, timings
        )
    finally:
        if threads:
            torch.set_num_threads(previous_threads)
    t2 = time.perf_counter()
    rules = instantiate(config, config.enabled_codes(display_path), gradient_rules())
    findings = run_rules(rules, context, display_path, config)
    timings["rules"] = time.perf_counter() - t2
    return GradientResult(context, finalize(findings, config, display_path), timings)


def _measure(
    module: Any,
    probe: ProbeInputs,
    loss: str,
    settings: OptimizerSettings,
    note: str,
    display_path: str,
    steps: int,
    seed: int,
    growth: float,
    floor: float,
    timings: dict[str, float],
) -> GradientContext:
    import torch

    with torch.random.fork_rng(devices=[]), torch.enable_grad():
        torch.manual_seed(seed)
        t0 = time.perf_counter()
        try:
            model = copy.deepcopy(module)
        except Exception as exc:
            raise GradientError(f"cannot copy the model to train it: {_short(exc)}") from exc
        model.train()
        trainable = [p for p in model.parameters() if p.requires_grad]
        if not trainable:
            for parameter in model.parameters():
                parameter.requires_grad_(True)
            trainable = list(model.parameters())
        layers = _weight_layers(model)
        if not layers:
            raise GradientError("the model has no trainable weight layer to measure")
        device, dtype = trainable[0].device, trainable[0].dtype
        x = torch.from_numpy(probe.x.copy()).to(device)
        if x.is_floating_point():
            x = x.to(dtype)
        order: dict[str, int] = {}
        output = _first_forward(model, x, layers, order)
        target, synthetic_labels = _targets(probe.y, output, loss, seed)
        first = _loss(output, target, loss)
        losses = [float(first.detach())]
        model.zero_grad(set_to_none=True)
        first.backward()  # type: ignore[no-untyped-call]
        timings["first_backward"] = time.perf_counter() - t0
        before = {id(p): p.detach().clone() for p in trainable}
        grads = {id(p): p.grad.detach().clone() for p in trainable if p.grad is not None}
        unit = _unit_updates(model, trainable, settings, before, grads)
        stats = _layer_stats(layers, order, before, grads, unit, settings.lr)
        t1 = time.perf_counter()
        timings["unit_step"] = t1 - t0 - timings["first_backward"]
        losses = _trajectory(
            model, x, target, loss, settings, trainable, losses, steps, growth, floor
        )
        timings["steps"] = time.perf_counter() - t1
    measured_on = probe.describe() + (
        " with synthetic labels" if synthetic_labels else " with given labels"
    )
    return GradientContext(
        path=display_path,
        layers=tuple(stats),
        losses=tuple(losses),
        steps=len(losses) - 1,
        loss=loss,
        optimizer=settings,
        optimizer_note=note,
        measured_on=measured_on,
        synthetic_inputs=probe.synthetic,
        synthetic_labels=synthetic_labels,
        data={"input_note": probe.note} if probe.note else {},
    )


def _trajectory(
    model: Any,
    x: torch.Tensor,
    target: torch.Tensor,
    loss: str,
    settings: OptimizerSettings,
    trainable: list[Any],
    losses: list[float],
    steps: int,
    growth: float,
    floor: float,
) -> list[float]:
    """The loss before each real optimizer step and after the last; the first step uses the
    gradients already computed. Stops at a non-finite loss or once it grew past the limit."""
    import torch

    if steps <= 0 or not math.isfinite(losses[0]):
        return losses
    real = _optimizer(trainable, settings, settings.lr)
    real.step()
    for _ in range(steps - 1):
        current = _loss(_output(model(x)), target, loss)
        losses.append(float(current.detach()))
        if _stop(losses, growth, floor):
            return losses
        real.zero_grad(set_to_none=True)
        current.backward()  # type: ignore[no-untyped-call]
        real.step()
    with torch.no_grad():
        losses.append(float(_loss(_output(model(x)), target, loss)))
    return losses


def _probe_inputs(
    module: Any, inputs: Any, labels: Any, seed: int, input_shape: tuple[int, ...] | None
) -> ProbeInputs:
    if inputs is None:
        spec = spec_from_module(module)
        shape = input_shape or (spec.shape if spec else None)
        if shape is None:
            raise GradientError(
                "cannot tell the model's input shape: give probe data or an input shape"
            )
        probe = synthetic_inputs(
            tuple(shape),
            seed=seed,
            integer_high=spec.integer_high if spec and not input_shape else None,
            note=spec.note if spec and not input_shape else "from the given input shape",
        )
    elif isinstance(inputs, ProbeInputs):
        probe = inputs
    else:
        probe = ProbeInputs.from_arrays(inputs)
    if labels is not None:
        probe = ProbeInputs.from_arrays(
            probe.x, labels, source=probe.source, synthetic=probe.synthetic
        )
    return probe


def _nan_risk_limits(config: Config) -> tuple[float, float]:
    rule = get_rule("NP404")
    if rule is None:
        return 1e3, 1e-3
    configured = rule(config.rules.get(rule.code))
    return float(configured.opt("growth")), float(configured.opt("loss-floor"))


def loss_grew(losses: list[float] | tuple[float, ...], growth: float, floor: float) -> bool:
    """The loss grew at least `growth` times its starting value (never less than `floor`)."""
    base = max(losses[0], floor) if losses and math.isfinite(losses[0]) else math.inf
    return any(math.isfinite(v) and v >= growth * base for v in losses[1:])


def _stop(losses: list[float], growth: float, floor: float) -> bool:
    return not math.isfinite(losses[-1]) or loss_grew(losses, growth, floor)


def _weight_layers(model: Any) -> list[tuple[str, str, list[Any]]]:
    """(module path, kind, weight tensors that train) per weight layer, in registration order."""
    from nnprobe.probe.modules import module_kind

    out = []
    for name, sub in model.named_modules():
        kind = module_kind(sub)
        if kind not in WEIGHT_KINDS:
            continue
        weights = [
            p
            for pname, p in sub.named_parameters(recurse=False)
            if pname.startswith("weight") and p.requires_grad
        ]
        if weights:
            out.append((name, kind, weights))
    return out


def _first_forward(
    model: Any, x: torch.Tensor, layers: list[tuple[str, str, list[Any]]], order: dict[str, int]
) -> torch.Tensor:
    """The first forward, recording which weight layer runs first (hooks on the copy only)."""
    handles = []
    for name, _, _ in layers:
        sub = model.get_submodule(name)

        def seen(*_: Any, name: str = name) -> None:
            order.setdefault(name, len(order))

        handles.append(sub.register_forward_pre_hook(seen))
    try:
        return _output(model(x))
    except GradientError:
        raise
    except Exception as exc:
        raise GradientError(f"the model's forward raised: {_short(exc)}") from exc
    finally:
        for handle in handles:
            handle.remove()


def _output(value: Any) -> torch.Tensor:
    """The tensor a loss is computed on: the output, its first element, or its `logits`."""
    import torch

    if isinstance(value, torch.Tensor):
        return value
    if isinstance(value, dict):
        value = value.get("logits", next(iter(value.values()), None))
    elif isinstance(value, (tuple, list)) and value:
        value = value[0]
    elif hasattr(value, "logits"):
        value = value.logits
    if isinstance(value, torch.Tensor):
        return value
    raise GradientError(f"cannot compute a loss on the model's output ({type(value).__name__})")


def _targets(y: Any, output: torch.Tensor, loss: str, seed: int) -> tuple[torch.Tensor, bool]:
    """The labels the loss needs, and whether they are synthetic."""
    import torch

    if output.ndim == 0:
        raise GradientError("the model returns a scalar; a loss needs one output per input")
    if y is not None:
        target = torch.as_tensor(y).to(output.device)
        if loss in CLASSIFICATION_LOSSES:
            if target.is_floating_point() and target.shape == output.shape and loss != "nll":
                return target.to(output.dtype), False
            return target.long(), False
        if target.numel() == output.numel():
            target = target.reshape(output.shape)
        if target.shape != output.shape:  # the loss would broadcast them silently
            raise GradientError(
                f"the {loss} loss needs labels shaped like the outputs {list(output.shape)}, "
                f"got {list(target.shape)}"
            )
        return target.to(output.dtype), False
    generator = torch.Generator().manual_seed(seed)
    shape = tuple(output.shape)
    if loss in CLASSIFICATION_LOSSES:
        if output.ndim < 2:
            raise GradientError(f"{loss} needs (batch, classes) outputs, got shape {list(shape)}")
        classes = shape[1]
        target = torch.randint(0, classes, (shape[0], *shape[2:]), generator=generator)
    elif loss in BINARY_LOSSES:
        target = torch.randint(0, 2, shape, generator=generator).to(output.dtype)
    else:
        target = torch.randn(shape, generator=generator).to(output.dtype)
    return target.to(output.device), True


def _loss(output: torch.Tensor, target: torch.Tensor, loss: str) -> torch.Tensor:
    from torch.nn import functional

    functions: dict[str, Callable[..., torch.Tensor]] = {
        "cross_entropy": functional.cross_entropy,
        "nll": functional.nll_loss,
        "bce_logits": functional.binary_cross_entropy_with_logits,
        "bce": functional.binary_cross_entropy,
        "mse": functional.mse_loss,
        "l1": functional.l1_loss,
        "smooth_l1": functional.smooth_l1_loss,
        "huber": functional.huber_loss,
    }
    try:
        value = functions[loss](output, target)
    except Exception as exc:
        raise GradientError(
            f"the {loss} loss cannot be computed on outputs of shape {list(output.shape)} "
            f"and labels of shape {list(target.shape)}: {_short(exc)}"
        ) from exc
    return value


def _optimizer(params: list[Any], settings: OptimizerSettings, lr: float) -> Any:
    """The real torch.optim class with the settings it accepts."""
    import torch

    cls = getattr(torch.optim, settings.kind, None)
    if not (isinstance(cls, type) and issubclass(cls, torch.optim.Optimizer)):
        raise GradientError(f"unknown optimizer {settings.kind!r} (not a torch.optim class)")
    if settings.kind == "LBFGS":
        raise GradientError("LBFGS needs a closure per step; its steps are not simulated")
    accepted = inspect.signature(cls.__init__).parameters
    wanted: dict[str, Any] = {
        "lr": lr,
        "momentum": settings.momentum,
        "weight_decay": settings.weight_decay,
        "nesterov": settings.nesterov,
    }
    if settings.betas is not None:
        wanted["betas"] = settings.betas
    kwargs = {k: v for k, v in wanted.items() if k in accepted}
    if kwargs.get("nesterov") and not kwargs.get("momentum"):
        kwargs["nesterov"] = False
    try:
        return cls(params, **kwargs)
    except (TypeError, ValueError) as exc:
        raise GradientError(f"cannot build {settings.describe()}: {_short(exc)}") from exc


def _unit_updates(
    model: Any,
    trainable: list[Any],
    settings: OptimizerSettings,
    before: dict[int, Any],
    grads: dict[int, Any],
) -> dict[int, Any]:
    """Each parameter's first update at lr 1; parameters and gradients are put back after."""
    import torch

    unit = _optimizer(trainable, settings, 1.0)
    unit.step()
    with torch.no_grad():
        deltas = {id(p): (p.detach() - before[id(p)]) for p in trainable}
        for p in trainable:
            p.copy_(before[id(p)])
            if id(p) in grads:
                p.grad = grads[id(p)].clone()
    return deltas


def _layer_stats(
    layers: list[tuple[str, str, list[Any]]],
    order: dict[str, int],
    before: dict[int, Any],
    grads: dict[int, Any],
    unit: dict[int, Any],
    lr: float,
) -> list[LayerGradient]:
    import torch

    stats = []
    unseen = len(order)
    for index, (name, kind, weights) in enumerate(layers):
        grad_sq = weight_sq = update_sq = 0.0
        entries = zeros = nonfinite = 0
        reached = False
        for p in weights:
            g = grads.get(id(p))
            w = before[id(p)].double()
            entries += p.numel()
            weight_sq += float((w * w).sum())
            if g is None:  # the layer takes no part in the loss
                continue
            reached = True
            g = g.double()
            finite = torch.isfinite(g)
            nonfinite += int((~finite).sum())
            g = torch.where(finite, g, torch.zeros_like(g))
            grad_sq += float((g * g).sum())
            zeros += int((g == 0).sum()) - int((~finite).sum())
            delta = unit[id(p)].double()
            delta = torch.where(torch.isfinite(delta), delta, torch.zeros_like(delta))
            update_sq += float((delta * delta).sum())
        weight_norm = math.sqrt(weight_sq)
        ratio = lr * math.sqrt(update_sq) / weight_norm if weight_norm > 0 else None
        stats.append(
            LayerGradient(
                module=name,
                kind=kind,
                order=order.get(name, unseen + index),
                entries=entries,
                grad_norm=math.sqrt(grad_sq),
                weight_norm=weight_norm,
                zero_fraction=zeros / entries if entries else 0.0,
                update_ratio=ratio,
                nonfinite=nonfinite,
                reached=reached,
            )
        )
    return stats


def _short(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {lines[0] if lines else ''}".strip()[:300]

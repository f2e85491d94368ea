"""Static unrolling of module lists (lists.py), as ModelIndex sees it, and call-site parameters."""

from __future__ import annotations

import ast
import textwrap

from nnprobe.inspectors.script.context import ScriptContext
from nnprobe.inspectors.script.lists import static_sequence
from nnprobe.inspectors.script.models import ModelDef
from nnprobe.inspectors.script.values import UNKNOWN


def context(source: str) -> ScriptContext:
    text = textwrap.dedent(source)
    return ScriptContext("t.py", text, ast.parse(text))


def model_named(ctx: ScriptContext, name: str) -> ModelDef:
    for model in ctx.models.all:
        if model.name == name:
            return model
    raise AssertionError(f"no model {name}: {[m.name for m in ctx.models.all]}")


def kinds(model: ModelDef) -> list[str]:
    return [op.name.rsplit(".", 1)[-1] for op in model.ops]


def test_sequential_of_a_list_grown_in_a_static_loop() -> None:
    ctx = context(
        """
        from torch import nn

        def make(depth=3):
            layers = [nn.Linear(4, 8), nn.ReLU()]
            for _ in range(depth - 1):
                layers += [nn.Linear(8, 8), nn.Tanh()]
            layers.extend([nn.Linear(8, 1)])
            return nn.Sequential(*layers)
        """
    )
    (model,) = ctx.models.all
    assert model.complete
    assert kinds(model) == ["Linear", "relu", "Linear", "tanh", "Linear", "tanh", "Linear"]
    assert [op.path for op in model.ops] == [str(i) for i in range(7)]


def test_call_site_value_overrides_the_default() -> None:
    source = """
    from torch import nn

    def make(depth=10):
        layers = []
        for _ in range(depth):
            layers.append(nn.Linear(8, 8))
        return nn.Sequential(*layers)

    model = make(depth=2)
    """
    (model,) = context(source).models.all
    assert len(model.weight_layers) == 2
    (model,) = context(source + "other = make(4)\n").models.all
    assert not model.complete and model.ops == []


def test_list_mutated_in_a_branch_is_unknown() -> None:
    ctx = context(
        """
        from torch import nn

        def make(bn):
            layers = [nn.Linear(8, 8)]
            for _ in range(4):
                layers.append(nn.Linear(8, 8))
                if bn:
                    layers.append(nn.BatchNorm1d(8))
            return nn.Sequential(*layers)
        """
    )
    (model,) = ctx.models.all
    assert not model.complete


def test_list_literal_that_is_appended_to_is_not_taken_as_is() -> None:
    ctx = context(
        """
        from torch import nn

        def make(n):
            layers = [nn.Linear(8, 8)]
            for _ in range(n):
                layers.append(nn.Linear(8, 8))
            return nn.Sequential(*layers)
        """
    )
    (model,) = ctx.models.all
    assert not model.complete


def test_module_list_comprehension_and_appended_module_list() -> None:
    ctx = context(
        """
        from torch import nn

        class Net(nn.Module):
            def __init__(self, sizes=(4, 8, 8, 2)):
                super().__init__()
                self.blocks = nn.ModuleList([nn.Linear(8, 8) for _ in range(3)])
                self.fcs = nn.ModuleList()
                for a, b in zip(sizes[:-1], sizes[1:]):
                    self.fcs.append(nn.Linear(a, b))

            def forward(self, x):
                for fc in self.fcs:
                    x = fc(x)
                for block in self.blocks:
                    x = block(x)
                return x
        """
    )
    model = model_named(ctx, "Net")
    assert model.complete
    assert [op.path for op in model.ops] == [
        "fcs.0",
        "fcs.1",
        "fcs.2",
        "blocks.0",
        "blocks.1",
        "blocks.2",
    ]


def test_module_list_filled_in_a_way_not_followed_is_incomplete() -> None:
    ctx = context(
        """
        from torch import nn

        class Net(nn.Module):
            def __init__(self, n):
                super().__init__()
                self.layers = nn.ModuleList()
                while len(self.layers) < n:
                    self.layers.append(nn.Linear(8, 8))

            def forward(self, x):
                for layer in self.layers:
                    x = layer(x)
                return x
        """
    )
    assert not model_named(ctx, "Net").complete


def test_static_sequence_forms() -> None:
    ctx = context(
        """
        SIZES = [3, 16, 32, 64]
        a = range(1, 7, 2)
        b = zip(SIZES[:-1], SIZES[1:])
        c = enumerate(SIZES)
        d = range(n)
        """
    )
    values = {
        stmt.targets[0].id: static_sequence(ctx, stmt.value)
        for stmt in ctx.tree.body[1:]
        if isinstance(stmt, ast.Assign) and isinstance(stmt.targets[0], ast.Name)
    }
    assert values["a"] == [1, 3, 5]
    assert values["b"] == [[3, 16], [16, 32], [32, 64]]
    assert values["c"] == [[0, 3], [1, 16], [2, 32], [3, 64]]
    assert values["d"] is None


def test_parameter_value_reads_call_sites() -> None:
    ctx = context(
        """
        class Net:
            def __init__(self, width=8, depth=2):
                self.width = width
                self.depth = depth

        a = Net(32)
        b = Net(width=32, depth=2)
        """
    )
    init = ctx.classes["Net"].body[0]
    assert isinstance(init, ast.FunctionDef)
    names = {
        node.id: node
        for node in ast.walk(init)
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load)
    }
    assert ctx.value(names["width"]) == 32
    assert ctx.value(names["depth"]) == 2
    ctx2 = context(ctx.text + "c = Net(64)\n")
    names2 = {
        node.id: node
        for node in ast.walk(ctx2.classes["Net"])
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load)
    }
    assert ctx2.value(names2["width"]) is UNKNOWN


def test_rebinding_a_name_to_a_container_of_itself_does_not_recurse() -> None:
    ctx = context(
        """
        from torch import nn

        def build():
            block = nn.Sequential(nn.Linear(4, 4), nn.ReLU())
            block = nn.Sequential(block, nn.Linear(4, 2))
            return block

        model = build()
        """
    )
    models = ctx.models.all
    assert [kinds(m) for m in models if len(m.ops) == 3] == [["Linear", "relu", "Linear"]]


def test_forward_loop_over_a_module_list_applies_the_body_per_item() -> None:
    ctx = context(
        """
        import torch.nn.functional as F
        from torch import nn

        class Net(nn.Module):
            def __init__(self):
                super().__init__()
                self.layers = nn.ModuleList([nn.Linear(8, 8) for _ in range(3)])
                self.head = nn.Linear(8, 1)

            def forward(self, x):
                for layer in reversed(self.layers):
                    x = F.relu(layer(x))
                return self.head(x)
        """
    )
    model = model_named(ctx, "Net")
    assert [(op.path, op.name.rsplit(".", 1)[-1]) for op in model.ops] == [
        ("layers.2", "Linear"),
        (None, "relu"),
        ("layers.1", "Linear"),
        (None, "relu"),
        ("layers.0", "Linear"),
        (None, "relu"),
        ("head", "Linear"),
    ]
    assert model.activation_after(model.ops[0]) is model.ops[1]


def test_forward_loop_applying_items_side_by_side_puts_each_on_its_own_path() -> None:
    ctx = context(
        """
        import torch
        from torch import nn

        class Heads(nn.Module):
            def __init__(self):
                super().__init__()
                self.heads = nn.ModuleList([nn.Linear(8, 1) for _ in range(10)])

            def forward(self, x):
                outs = []
                for head in self.heads:
                    outs.append(head(x))
                return torch.cat(outs, 1)
        """
    )
    model = model_named(ctx, "Heads")
    assert len(model.ops) == 10 and all(op.branch for op in model.ops)

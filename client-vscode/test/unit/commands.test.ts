import * as assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import { commandArguments, registerCommands } from "../../src/commands";
import { PaletteCommand, ServerCommand } from "../../src/constants";
import { Uri, commands, state } from "./vscode_mock";

const manifest = JSON.parse(fs.readFileSync(path.join(__dirname, "..", "..", "..", "package.json"), "utf8"));

interface Call {
  command: string;
  args: unknown[];
}

function wire(answer: unknown = { kind: "unavailable", reason: "no worker" }) {
  const calls: Call[] = [];
  const shown: [unknown, string][] = [];
  let restarts = 0;
  let logs = 0;
  registerCommands({
    execute: async (command, args) => {
      calls.push({ command, args });
      return answer;
    },
    show: (a, title) => shown.push([a, title]),
    restart: async () => {
      restarts++;
    },
    showLogs: () => {
      logs++;
    },
  });
  return { calls, shown, counts: () => ({ restarts, logs }) };
}

const checkpoint = Uri.file("/ws/runs/model.pt");
const asVscode = checkpoint as unknown as import("vscode").Uri;

describe("palette commands", () => {
  beforeEach(() => state.reset());

  it("registers exactly the manifest's commands, none clashing with the server's", () => {
    wire();
    const declared = manifest.contributes.commands.map((c: { command: string }) => c.command).sort();
    assert.deepEqual([...state.commands.keys()].sort(), declared);
    const serverIds = new Set<string>(Object.values(ServerCommand));
    for (const id of declared) {
      assert.ok(!serverIds.has(id), `${id} is also a server command`);
    }
    const titles = manifest.contributes.commands.map((c: { title: string }) => c.title);
    for (const title of ["Inspect Checkpoint...", "Show Embedding Preview", "Show First-Layer Filters", "Show Activation Maps", "Show Occlusion Map", "Show Top Activating Inputs", "Restart Server", "Show Logs"]) {
      assert.ok(titles.includes(title), title);
    }
  });

  it("embedding preview: checkpoint, then layer, then the server command with both", async () => {
    const { calls, shown } = wire({ kind: "scatter", points: [[0, 0]], labels: [1] });
    state.findFiles = [Uri.file("/ws/b.onnx"), checkpoint];
    state.quickPicks = [(items: unknown[]) => (items as { uri: Uri; description: string }[]).find((i) => i.description === "runs/model.pt")];
    state.inputs = ["fc1"];
    await commands.executeCommand(PaletteCommand.embeddingPreview);
    assert.deepEqual(calls, [{ command: ServerCommand.embeddingPreview, args: [{ uri: "file:///ws/runs/model.pt", layer: "fc1" }] }]);
    assert.equal(shown.length, 1);
    assert.equal(shown[0][1], "Embedding preview: model.pt (fc1)");
  });

  it("an empty layer means the server's default; a cancelled pick runs nothing", async () => {
    const { calls } = wire();
    state.findFiles = [checkpoint];
    state.quickPicks = [(items: unknown[]) => items[0], undefined];
    state.inputs = [""];
    await commands.executeCommand(PaletteCommand.embeddingPreview);
    await commands.executeCommand(PaletteCommand.embeddingPreview);
    assert.deepEqual(calls, [{ command: ServerCommand.embeddingPreview, args: ["file:///ws/runs/model.pt"] }]);
  });

  it("filters and occlusion ask for no layer; inspect runs nnprobe.inspect", async () => {
    const { calls } = wire();
    state.findFiles = [checkpoint];
    state.quickPicks = [(i: unknown[]) => i[0], (i: unknown[]) => i[0], (i: unknown[]) => i[0]];
    await commands.executeCommand(PaletteCommand.filters);
    await commands.executeCommand(PaletteCommand.occlusion);
    await commands.executeCommand(PaletteCommand.inspectCheckpoint);
    assert.deepEqual(calls.map((c) => c.command), [ServerCommand.filters, ServerCommand.occlusion, ServerCommand.inspect]);
    assert.equal(state.inputs.length, 0);
  });

  it("says so when the workspace has no checkpoint", async () => {
    const { calls } = wire();
    await commands.executeCommand(PaletteCommand.topActivating);
    assert.equal(calls.length, 0);
    assert.match(state.messages[0], /no checkpoint/);
  });

  it("restart and show logs reach the server manager and the output channel", async () => {
    const { counts } = wire();
    await commands.executeCommand(PaletteCommand.restart);
    await commands.executeCommand(PaletteCommand.showLogs);
    assert.deepEqual(counts(), { restarts: 1, logs: 1 });
  });

  it("builds the arguments as docs/lsp.md describes", () => {
    assert.deepEqual(commandArguments(asVscode), ["file:///ws/runs/model.pt"]);
    assert.deepEqual(commandArguments(asVscode, null), ["file:///ws/runs/model.pt"]);
  });
});

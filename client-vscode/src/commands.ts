/**
 * The palette commands: pick a checkpoint (and a layer where the picture is of one), run the
 * server's command, show the answer in the picture panel. The VS Code calls are passed in, so the
 * wiring is unit-tested with a mocked `vscode`.
 */

import * as vscode from "vscode";
import { CHECKPOINT_EXCLUDE, CHECKPOINT_GLOB, PICTURE_COMMANDS, PaletteCommand, ServerCommand } from "./constants";

/** Pictures of one layer ask for it; the others are of the first layer or the whole input. */
export const LAYER_PICTURES: ReadonlySet<string> = new Set([
  ServerCommand.embeddingPreview,
  ServerCommand.activationMaps,
  ServerCommand.topActivating,
]);

export interface CommandDeps {
  execute(command: string, args: unknown[], what: string): Promise<unknown>;
  show(answer: unknown, title: string): void;
  restart(): Promise<void>;
  showLogs(): void;
  pickCheckpoint?: () => Promise<vscode.Uri | undefined>;
  pickLayer?: () => Promise<string | null | undefined>;
}

/** The command's arguments: the URI alone, or `{uri, layer}` when a layer was named. */
export function commandArguments(uri: vscode.Uri, layer?: string | null): unknown[] {
  return layer ? [{ uri: uri.toString(), layer }] : [uri.toString()];
}

export async function pickCheckpoint(): Promise<vscode.Uri | undefined> {
  const files = await vscode.workspace.findFiles(CHECKPOINT_GLOB, CHECKPOINT_EXCLUDE, 1000);
  if (files.length === 0) {
    void vscode.window.showInformationMessage(
      "nnprobe found no checkpoint (.pt, .pth, .ckpt, .bin, .safetensors, .onnx) in this workspace.",
    );
    return undefined;
  }
  const items = files
    .map((uri) => ({ label: uri.path.split("/").pop() ?? uri.path, description: vscode.workspace.asRelativePath(uri), uri }))
    .sort((a, b) => a.description.localeCompare(b.description));
  const picked = await vscode.window.showQuickPick(items, {
    title: "nnprobe: choose a checkpoint",
    placeHolder: "checkpoint or ONNX file",
    matchOnDescription: true,
  });
  return picked?.uri;
}

/** A layer name typed by the user, null for the server's default, undefined when cancelled. */
export async function pickLayer(): Promise<string | null | undefined> {
  const name = await vscode.window.showInputBox({
    title: "nnprobe: layer",
    prompt: "Module path of the layer, as in the model (e.g. fc2 or features.3); leave empty for nnprobe's default (the penultimate layer).",
    placeHolder: "default: penultimate layer",
  });
  if (name === undefined) {
    return undefined;
  }
  return name.trim() || null;
}

async function run(deps: CommandDeps, server: string, title: string, askLayer: boolean): Promise<void> {
  const uri = await (deps.pickCheckpoint ?? pickCheckpoint)();
  if (!uri) {
    return;
  }
  let layer: string | null | undefined = null;
  if (askLayer) {
    layer = await (deps.pickLayer ?? pickLayer)();
    if (layer === undefined) {
      return;
    }
  }
  const name = uri.path.split("/").pop() ?? "";
  try {
    const answer = await deps.execute(server, commandArguments(uri, layer), `${title.toLowerCase()} of ${name}`);
    deps.show(answer, `${title}: ${name}${layer ? ` (${layer})` : ""}`);
  } catch (error) {
    void vscode.window.showErrorMessage(`nnprobe: ${title} failed: ${error instanceof Error ? error.message : String(error)}`);
  }
}

export function registerCommands(deps: CommandDeps): vscode.Disposable[] {
  const register = vscode.commands.registerCommand;
  return [
    register(PaletteCommand.inspectCheckpoint, () => run(deps, ServerCommand.inspect, "Inspection", false)),
    ...PICTURE_COMMANDS.map((entry) =>
      register(entry.palette, () => run(deps, entry.server, entry.title, LAYER_PICTURES.has(entry.server))),
    ),
    register(PaletteCommand.restart, () => deps.restart()),
    register(PaletteCommand.showLogs, () => deps.showLogs()),
  ];
}

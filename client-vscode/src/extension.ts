/** Entry point: wires the server manager, the status bar, the picture panel and the commands. */

import * as vscode from "vscode";
import { registerCommands } from "./commands";
import { PicturePanel } from "./panel";
import { onInterpreterChange } from "./python_api";
import { ServerManager } from "./server";
import { affectsServer, needsRestart } from "./settings";
import { StatusItem } from "./status";

let manager: ServerManager | undefined;

export async function activate(context: vscode.ExtensionContext): Promise<void> {
  const output = vscode.window.createOutputChannel("nnprobe", { log: true });
  const status = new StatusItem();
  const panel = new PicturePanel(context.extensionUri);
  manager = new ServerManager(output, status, context.extensionUri.fsPath);
  const server = manager;
  context.subscriptions.push(output, status, panel, server);
  context.subscriptions.push(
    ...registerCommands({
      execute: (command, args, what) => server.execute(command, args, what),
      show: (answer, title) => panel.show(answer, title),
      restart: () => server.restart(),
      showLogs: () => output.show(),
    }),
    vscode.workspace.onDidChangeConfiguration((event) => {
      const affects = (section: string): boolean => event.affectsConfiguration(section);
      if (needsRestart(affects)) {
        void server.refresh();
      } else if (affectsServer(affects)) {
        void server.pushSettings();
      }
    }),
    vscode.workspace.onDidGrantWorkspaceTrust(() => server.refresh()),
  );
  const pythonChanges = await onInterpreterChange(() => void server.restart()).catch(() => undefined);
  if (pythonChanges) {
    context.subscriptions.push(pythonChanges);
  }
  await server.start();
}

export async function deactivate(): Promise<void> {
  await manager?.stop();
}

/** The status bar item: idle, inspecting (with what), or error; clicking it shows the logs. */

import * as vscode from "vscode";
import { PaletteCommand } from "./constants";

export type ServerState = "starting" | "idle" | "inspecting" | "error";

const ICONS: Record<ServerState, string> = {
  starting: "$(sync~spin)",
  idle: "$(pulse)",
  inspecting: "$(sync~spin)",
  error: "$(error)",
};

export class StatusItem implements vscode.Disposable {
  private readonly item: vscode.StatusBarItem;
  private busy = new Map<number, string>();
  private next = 0;
  private base: ServerState = "starting";
  private detail = "";

  constructor() {
    this.item = vscode.window.createStatusBarItem("nnprobe.status", vscode.StatusBarAlignment.Right, 100);
    this.item.name = "nnprobe";
    this.item.command = PaletteCommand.showLogs;
    this.render();
    this.item.show();
  }

  get state(): ServerState {
    return this.base === "idle" && this.busy.size > 0 ? "inspecting" : this.base;
  }

  set(state: Exclude<ServerState, "inspecting">, detail = ""): void {
    this.base = state;
    this.detail = detail;
    this.render();
  }

  /** Marks the server busy until the returned function is called. */
  begin(what: string): () => void {
    const id = this.next++;
    this.busy.set(id, what);
    this.render();
    return () => {
      this.busy.delete(id);
      this.render();
    };
  }

  private render(): void {
    const state = this.state;
    const doing = [...this.busy.values()].join(", ");
    this.item.text = `${ICONS[state]} nnprobe${state === "inspecting" ? `: ${doing}` : ""}`;
    const what = state === "inspecting" ? `inspecting: ${doing}` : state;
    this.item.tooltip = `nnprobe ${what}${this.detail ? ` (${this.detail})` : ""}. Click to show the logs.`;
    this.item.backgroundColor =
      state === "error" ? new vscode.ThemeColor("statusBarItem.errorBackground") : undefined;
  }

  dispose(): void {
    this.item.dispose();
  }
}

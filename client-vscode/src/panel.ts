/** The one picture panel: created on first use, then reused and retitled for every payload. */

import * as vscode from "vscode";
import { panelHtml, makeNonce } from "./panel_html";
import { type Payload, checkPayload, panelTitle } from "./payload";

export class PicturePanel {
  private panel: vscode.WebviewPanel | undefined;

  constructor(private readonly extensionUri: vscode.Uri) {}

  show(answer: unknown, fallbackTitle: string): Payload {
    const payload = checkPayload(answer);
    const title = panelTitle(payload, fallbackTitle);
    if (!this.panel) {
      this.panel = vscode.window.createWebviewPanel("nnprobe.pictures", title, vscode.ViewColumn.Beside, {
        enableScripts: true,
        localResourceRoots: [vscode.Uri.joinPath(this.extensionUri, "dist"), vscode.Uri.joinPath(this.extensionUri, "media")],
      });
      this.panel.onDidDispose(() => {
        this.panel = undefined;
      });
    }
    const webview = this.panel.webview;
    this.panel.title = title;
    webview.html = panelHtml({
      cspSource: webview.cspSource,
      nonce: makeNonce(),
      scriptUri: webview.asWebviewUri(vscode.Uri.joinPath(this.extensionUri, "dist", "panel.js")).toString(),
      styleUri: webview.asWebviewUri(vscode.Uri.joinPath(this.extensionUri, "media", "panel.css")).toString(),
      title,
      payload,
    });
    this.panel.reveal(undefined, true);
    return payload;
  }

  dispose(): void {
    this.panel?.dispose();
  }
}

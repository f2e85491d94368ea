/**
 * The language client's life cycle: choose the interpreter, check nnprobe imports there (else offer
 * to install it), start `python -P -m nnprobe serve` in the extension's folder (interpreter.ts says
 * why), push settings on change, restart when the interpreter changes, and keep the status bar honest
 * about what the server is doing.
 */

import { execFile } from "node:child_process";
import * as vscode from "vscode";
import {
  DidChangeConfigurationNotification,
  LanguageClient,
  type LanguageClientOptions,
  type ServerOptions,
  State,
} from "vscode-languageclient/node";
import { CLIENT_ID, CLIENT_NAME, SECTION } from "./constants";
import {
  type Launch,
  type ResolvedInterpreter,
  importCheckArgs,
  importFailure,
  installArgs,
  resolveInterpreter,
  serverLaunch,
} from "./interpreter";
import { activeInterpreter } from "./python_api";
import { serverSettings } from "./settings";
import type { StatusItem } from "./status";

const IMPORT_CHECK_TIMEOUT_MS = 30_000;

function importError(launch: Launch): Promise<{ reason: string; installable: boolean } | undefined> {
  return new Promise((resolve) => {
    const options = { timeout: IMPORT_CHECK_TIMEOUT_MS, cwd: launch.options.cwd };
    execFile(launch.command, importCheckArgs(), options, (error, _stdout, stderr) => {
      resolve(error ? importFailure(stderr, error.message) : undefined);
    });
  });
}

export class ServerManager implements vscode.Disposable {
  private client: LanguageClient | undefined;
  private stopping = false;
  private chain: Promise<void> = Promise.resolve();
  interpreter: ResolvedInterpreter | undefined;

  /** `extensionDir`: the extension's own folder, the working directory of every Python it starts. */
  constructor(
    private readonly output: vscode.LogOutputChannel,
    private readonly status: StatusItem,
    private readonly extensionDir: string,
  ) {}

  private launch(python: string): Launch {
    return serverLaunch(python, this.extensionDir, vscode.workspace.workspaceFolders?.[0]?.uri.fsPath);
  }

  private facts(): { interpreter: string; trusted: boolean } {
    return { interpreter: this.interpreter?.command ?? "python3", trusted: vscode.workspace.isTrusted };
  }

  settingsFor(scope?: vscode.Uri): Record<string, unknown> {
    return serverSettings(vscode.workspace.getConfiguration(SECTION, scope), this.facts());
  }

  /** Runs start/stop/restart one after another, so a burst of changes cannot start two servers. */
  private queue(step: () => Promise<void>): Promise<void> {
    this.chain = this.chain.then(step, step);
    return this.chain;
  }

  start(): Promise<void> {
    return this.queue(() => this.doStart());
  }

  restart(): Promise<void> {
    return this.queue(async () => {
      await this.doStop();
      await this.doStart();
    });
  }

  stop(): Promise<void> {
    return this.queue(() => this.doStop());
  }

  /** The interpreter the server would use now; a restart is due when it differs from the running one. */
  async chooseInterpreter(): Promise<ResolvedInterpreter> {
    const folder = vscode.workspace.workspaceFolders?.[0]?.uri;
    return resolveInterpreter({
      pythonExtension: () => activeInterpreter(folder),
      setting: vscode.workspace.getConfiguration(SECTION, folder).get<string | null>("interpreter"),
      trusted: vscode.workspace.isTrusted,
    });
  }

  private async doStart(): Promise<void> {
    this.status.set("starting");
    this.interpreter = await this.chooseInterpreter();
    const launch = this.launch(this.interpreter.command);
    const python = launch.command;
    this.output.info(`Using ${python} (from ${this.interpreter.source}); trusted workspace: ${vscode.workspace.isTrusted}`);
    const missing = await importError(launch);
    if (missing !== undefined) {
      this.output.error(`nnprobe cannot be imported by ${python}: ${missing.reason}`);
      if (missing.installable) {
        this.status.set("error", `nnprobe is not installed in ${python}`);
        void this.offerInstall(launch);
      } else {
        this.status.set("error", `${python}: ${missing.reason}`);
      }
      return;
    }
    this.output.info(`Starting ${python} ${launch.args.join(" ")} in ${launch.options.cwd}`);
    const serverOptions: ServerOptions = launch;
    const clientOptions: LanguageClientOptions = {
      documentSelector: [
        { scheme: "file", language: "python" },
        { scheme: "untitled", language: "python" },
      ],
      outputChannel: this.output,
      initializationOptions: this.settingsFor(vscode.workspace.workspaceFolders?.[0]?.uri),
      middleware: {
        workspace: {
          configuration: async (params, token, next) => {
            const answers = await next(params, token);
            if (!Array.isArray(answers)) {
              return answers;
            }
            return params.items.map((item, i) =>
              item.section === SECTION
                ? this.settingsFor(item.scopeUri ? vscode.Uri.parse(item.scopeUri) : undefined)
                : answers[i],
            );
          },
        },
        handleWorkDoneProgress: (token, params, next) => {
          this.trackProgress(String(token), params);
          next(token, params);
        },
      },
    };
    const client = new LanguageClient(CLIENT_ID, CLIENT_NAME, serverOptions, clientOptions);
    client.onDidChangeState((event) => {
      if (event.newState === State.Running) {
        this.status.set("idle", python);
      } else if (event.newState === State.Stopped && !this.stopping) {
        this.status.set("error", "the server stopped; see the logs");
      }
    });
    this.client = client;
    try {
      await client.start();
    } catch (error) {
      this.output.error(`The nnprobe server did not start: ${String(error)}`);
      this.status.set("error", "the server did not start");
    }
  }

  private progress = new Map<string, () => void>();

  private trackProgress(token: string, params: { kind: string; title?: string; message?: string }): void {
    if (params.kind === "begin") {
      this.progress.set(token, this.status.begin(params.title ?? params.message ?? "working"));
    } else if (params.kind === "end") {
      this.progress.get(token)?.();
      this.progress.delete(token);
    }
  }

  private async doStop(): Promise<void> {
    const client = this.client;
    this.client = undefined;
    for (const done of this.progress.values()) {
      done();
    }
    this.progress.clear();
    if (client) {
      this.stopping = true;
      try {
        await client.stop();
      } catch (error) {
        this.output.warn(`Stopping the server: ${String(error)}`);
      } finally {
        this.stopping = false;
      }
    }
  }

  private async offerInstall(launch: Launch): Promise<void> {
    const python = launch.command;
    const install = "Install nnprobe";
    const choice = await vscode.window.showErrorMessage(
      `nnprobe is not installed in the Python at ${python}. Install it there with pip?`,
      install,
      "Show Logs",
    );
    if (choice === "Show Logs") {
      this.output.show();
      return;
    }
    if (choice !== install) {
      return;
    }
    const task = new vscode.Task(
      { type: "process", id: "nnprobe.install" },
      vscode.TaskScope.Workspace,
      "install nnprobe",
      "nnprobe",
      new vscode.ProcessExecution(python, installArgs(), { cwd: launch.options.cwd }),
    );
    task.presentationOptions = { reveal: vscode.TaskRevealKind.Always, focus: false, panel: vscode.TaskPanelKind.Dedicated };
    const execution = await vscode.tasks.executeTask(task);
    const ended = vscode.tasks.onDidEndTaskProcess(async (event) => {
      if (event.execution !== execution) {
        return;
      }
      ended.dispose();
      if (event.exitCode === 0) {
        await this.restart();
      } else {
        void vscode.window.showErrorMessage(`pip could not install nnprobe (exit code ${event.exitCode}); see the terminal.`);
      }
    });
  }

  /**
   * Tells the running server its settings changed; it pulls the new ones (workspace/configuration).
   * Queued behind any restart: granting trust fires a configuration change too.
   */
  pushSettings(): Promise<void> {
    return this.queue(() => this.doPush());
  }

  /** Restarts when the interpreter the server would use now differs from the running one, else pushes. */
  refresh(): Promise<void> {
    return this.queue(async () => {
      const next = await this.chooseInterpreter();
      if (next.command !== this.interpreter?.command || !this.client?.isRunning()) {
        await this.doStop();
        await this.doStart();
      } else {
        await this.doPush();
      }
    });
  }

  private async doPush(): Promise<void> {
    if (this.client?.isRunning()) {
      const settings = this.settingsFor(vscode.workspace.workspaceFolders?.[0]?.uri);
      this.output.info(`Settings changed; trusted workspace: ${String(settings.trusted)}`);
      await this.client.sendNotification(DidChangeConfigurationNotification.type, { settings: { [SECTION]: settings } });
    }
  }

  /** Runs a server command, with the status bar saying so meanwhile. */
  async execute(command: string, args: unknown[], what: string): Promise<unknown> {
    if (!this.client?.isRunning()) {
      throw new Error("the nnprobe server is not running; see nnprobe: Show Logs");
    }
    const done = this.status.begin(what);
    try {
      return await this.client.sendRequest("workspace/executeCommand", { command, arguments: args });
    } finally {
      done();
    }
  }

  dispose(): void {
    void this.stop();
  }
}

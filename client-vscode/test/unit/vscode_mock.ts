/**
 * The slice of the `vscode` API the extension's glue touches, recording what it was asked to do.
 * Tests set `state` to script answers (quick picks, input boxes, configuration, trust).
 */

type Handler = (...args: unknown[]) => unknown;

export const state = {
  commands: new Map<string, Handler>(),
  messages: [] as string[],
  findFiles: [] as Uri[],
  quickPicks: [] as unknown[],
  inputs: [] as (string | undefined)[],
  config: {} as Record<string, unknown>,
  isTrusted: true,
  reset(): void {
    this.commands.clear();
    this.messages = [];
    this.findFiles = [];
    this.quickPicks = [];
    this.inputs = [];
    this.config = {};
    this.isTrusted = true;
  },
};

export class Uri {
  private constructor(
    readonly scheme: string,
    readonly path: string,
  ) {}
  static file(path: string): Uri {
    return new Uri("file", path);
  }
  static parse(value: string): Uri {
    const match = /^(\w+):\/\/(.*)$/.exec(value);
    return match ? new Uri(match[1], match[2]) : new Uri("file", value);
  }
  static joinPath(base: Uri, ...parts: string[]): Uri {
    return new Uri(base.scheme, [base.path, ...parts].join("/"));
  }
  get fsPath(): string {
    return this.path;
  }
  toString(): string {
    return `${this.scheme}://${this.path}`;
  }
}

export class Disposable {
  constructor(private readonly fn: () => void = () => undefined) {}
  dispose(): void {
    this.fn();
  }
}

export const commands = {
  registerCommand(id: string, handler: Handler): Disposable {
    if (state.commands.has(id)) {
      throw new Error(`command '${id}' already exists`);
    }
    state.commands.set(id, handler);
    return new Disposable(() => state.commands.delete(id));
  },
  executeCommand(id: string, ...args: unknown[]): unknown {
    const handler = state.commands.get(id);
    if (!handler) {
      throw new Error(`command '${id}' not found`);
    }
    return handler(...args);
  },
};

export class ThemeColor {
  constructor(readonly id: string) {}
}

export enum StatusBarAlignment {
  Left = 1,
  Right = 2,
}

export interface FakeStatusBarItem {
  text: string;
  tooltip: string | undefined;
  command: string | undefined;
  name: string | undefined;
  backgroundColor: ThemeColor | undefined;
  visible: boolean;
}

export const window = {
  statusItems: [] as FakeStatusBarItem[],
  createStatusBarItem(): FakeStatusBarItem & { show(): void; dispose(): void } {
    const item = {
      text: "",
      tooltip: undefined,
      command: undefined,
      name: undefined,
      backgroundColor: undefined,
      visible: false,
      show(): void {
        item.visible = true;
      },
      dispose(): void {
        item.visible = false;
      },
    };
    window.statusItems.push(item);
    return item;
  },
  async showQuickPick(items: unknown[]): Promise<unknown> {
    const wanted = state.quickPicks.shift();
    return typeof wanted === "function" ? (wanted as (i: unknown[]) => unknown)(items) : wanted;
  },
  async showInputBox(): Promise<string | undefined> {
    return state.inputs.shift();
  },
  async showInformationMessage(message: string): Promise<undefined> {
    state.messages.push(message);
    return undefined;
  },
  async showErrorMessage(message: string): Promise<undefined> {
    state.messages.push(message);
    return undefined;
  },
};

export const workspace = {
  get isTrusted(): boolean {
    return state.isTrusted;
  },
  async findFiles(): Promise<Uri[]> {
    return state.findFiles;
  },
  asRelativePath(uri: Uri): string {
    return uri.path.replace(/^\/ws\//, "");
  },
  getConfiguration(): { get<T>(key: string): T | undefined; inspect(key: string): { globalValue?: unknown } | undefined } {
    return {
      get: <T>(key: string) => state.config[key] as T | undefined,
      inspect: (key: string) => (key in state.config ? { globalValue: state.config[key] } : undefined),
    };
  },
};

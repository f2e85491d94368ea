/**
 * Which Python runs `nnprobe serve`, decided the way users of the Python-tools extensions expect:
 * the Python extension's active interpreter when that extension is installed, else the
 * `nnprobe.interpreter` setting, else `python3`. Pure, so the order is unit-tested without VS Code.
 */

export type InterpreterSource = "python-extension" | "setting" | "default";

export interface ResolvedInterpreter {
  command: string;
  source: InterpreterSource;
}

export interface InterpreterInputs {
  /** The Python extension's active interpreter for the workspace, or undefined. */
  pythonExtension: () => Promise<string | undefined>;
  /** The `nnprobe.interpreter` setting (null/empty when unset). */
  setting: string | null | undefined;
  /** Whether the workspace is trusted: an untrusted one may point at a workspace virtualenv. */
  trusted: boolean;
}

export const DEFAULT_INTERPRETER = "python3";

export async function resolveInterpreter(inputs: InterpreterInputs): Promise<ResolvedInterpreter> {
  if (inputs.trusted) {
    let active: string | undefined;
    try {
      active = await inputs.pythonExtension();
    } catch {
      active = undefined;
    }
    if (active && active.trim()) {
      return { command: active, source: "python-extension" };
    }
  }
  const setting = inputs.setting?.trim();
  if (setting) {
    return { command: setting, source: "setting" };
  }
  return { command: DEFAULT_INTERPRETER, source: "default" };
}

/** The server command line: `-m nnprobe` works with any interpreter, a console script may not be on PATH. */
export function serverArgs(): string[] {
  return ["-m", "nnprobe", "serve"];
}

/** Arguments that fail (exit 1) when the server side of nnprobe cannot be imported. */
export function importCheckArgs(): string[] {
  return ["-c", "import nnprobe.server.main"];
}

/** pip arguments installing nnprobe with its language-server extra into that interpreter. */
export function installArgs(): string[] {
  return ["-m", "pip", "install", "--upgrade", "nnprobe[lsp]"];
}

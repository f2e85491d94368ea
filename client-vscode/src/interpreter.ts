/**
 * Which Python runs `nnprobe serve`, decided the way users of the Python-tools extensions expect:
 * the Python extension's active interpreter when that extension is installed, else the
 * `nnprobe.interpreter` setting, else `python3`. Pure, so the order is unit-tested without VS Code.
 */

import * as path from "node:path";

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

/**
 * How a Python of ours is started: `-P` (Python 3.11+, which nnprobe requires) keeps the working
 * directory and the script's folder off `sys.path`, and the working directory is the extension's own
 * folder, never the workspace. Started with the workspace as its working directory and no `-P`, the
 * server imported a workspace `pygls/` or `numpy.py` before `initialize`, in Restricted Mode too; the
 * server learns the workspace from `initialize`, not from where it runs.
 */
export const SAFE_PATH = "-P";

export interface Launch {
  command: string;
  args: string[];
  options: { cwd: string };
}

/**
 * The interpreter as a command that means the same from any working directory: a relative path
 * (`.venv/bin/python` in the setting) was meant from the workspace folder; a bare name (`python3`)
 * is looked up on PATH, as before.
 */
export function interpreterCommand(python: string, workspaceDir: string | undefined): string {
  const relative = !path.isAbsolute(python) && /[\\/]/.test(python);
  return relative && workspaceDir ? path.resolve(workspaceDir, python) : python;
}

/** The language server's launch: `python -P -m nnprobe serve` in `neutralDir` (the extension's folder). */
export function serverLaunch(python: string, neutralDir: string, workspaceDir?: string): Launch {
  return { command: interpreterCommand(python, workspaceDir), args: serverArgs(), options: { cwd: neutralDir } };
}

/** The server command line: `-m nnprobe` works with any interpreter, a console script may not be on PATH. */
export function serverArgs(): string[] {
  return [SAFE_PATH, "-m", "nnprobe", "serve"];
}

/** Arguments that fail (exit 1) when the server side of nnprobe cannot be imported. */
export function importCheckArgs(): string[] {
  return [SAFE_PATH, "-c", "import nnprobe.server.main"];
}

/** pip arguments installing nnprobe with its language-server extra into that interpreter. */
export function installArgs(): string[] {
  return [SAFE_PATH, "-m", "pip", "install", "--upgrade", "nnprobe[lsp]"];
}

/**
 * What the user is told when the import check fails: its last stderr line, except that a Python
 * older than 3.11 rejects `-P` itself ("Unknown option: -P"), and no install would help there.
 */
export function importFailure(stderr: string, fallback: string): { reason: string; installable: boolean } {
  if (/Unknown option:? -P/.test(stderr)) {
    return { reason: "this Python is older than 3.11, and nnprobe needs 3.11 or newer", installable: false };
  }
  return { reason: stderr.trim().split("\n").pop() || fallback, installable: true };
}

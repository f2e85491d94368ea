/**
 * The Python extension's public API (@vscode/python-extension): the active interpreter and its
 * change event. Absent extension, absent answer: the caller falls back to nnprobe's own setting.
 */

import * as vscode from "vscode";
import { PythonExtension } from "@vscode/python-extension";

const PYTHON_EXTENSION_ID = "ms-python.python";

async function api(): Promise<PythonExtension | undefined> {
  if (!vscode.extensions.getExtension(PYTHON_EXTENSION_ID)) {
    return undefined;
  }
  return PythonExtension.api();
}

export async function activeInterpreter(resource?: vscode.Uri): Promise<string | undefined> {
  const python = await api();
  if (!python) {
    return undefined;
  }
  const path = python.environments.getActiveEnvironmentPath(resource);
  const env = await python.environments.resolveEnvironment(path);
  return env?.executable.uri?.fsPath ?? path.path;
}

export async function onInterpreterChange(listener: () => void): Promise<vscode.Disposable | undefined> {
  const python = await api();
  return python?.environments.onDidChangeActiveEnvironmentPath(listener);
}

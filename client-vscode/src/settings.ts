/**
 * Maps the editor's `nnprobe.*` configuration onto the table the server validates
 * (src/nnprobe/server/settings.py), adding what only the client knows: the interpreter it chose
 * and whether the workspace is trusted. Only values the user set are sent (never the manifest's
 * defaults), so the workspace's `[tool.nnprobe]` stays the base, the server's defaults stay the
 * only defaults, and a server older than a key is not sent it unasked.
 */

/** Keys the server reads from the `nnprobe` section, as the manifest contributes them. */
export const SERVER_KEYS = [
  "select",
  "extendSelect",
  "ignore",
  "severity",
  "rules",
  "exclude",
  "perFileIgnores",
  "debounce",
  "logLevel",
  "probeTimeout",
  "probeMemory",
  "pollInterval",
  "progressDelay",
  "supersededGrace",
] as const;

/** Keys the client computes itself; never read from the user's configuration. */
export const CLIENT_KEYS = ["interpreter", "trusted"] as const;

export interface ConfigurationLike {
  inspect<T>(key: string):
    | { globalValue?: T; workspaceValue?: T; workspaceFolderValue?: T }
    | undefined;
}

/** The most specific value the user set: folder, then workspace, then user settings. */
export function userValue(config: ConfigurationLike, key: string): unknown {
  const where = config.inspect<unknown>(key);
  return where?.workspaceFolderValue ?? where?.workspaceValue ?? where?.globalValue;
}

export interface ClientFacts {
  interpreter: string;
  trusted: boolean;
}

function isEmpty(value: unknown): boolean {
  if (value === null || value === undefined) {
    return true;
  }
  if (Array.isArray(value)) {
    return value.length === 0;
  }
  if (typeof value === "object") {
    return Object.keys(value as object).length === 0;
  }
  return typeof value === "string" && value.trim() === "";
}

export function serverSettings(config: ConfigurationLike, facts: ClientFacts): Record<string, unknown> {
  const settings: Record<string, unknown> = {};
  for (const key of SERVER_KEYS) {
    const value = userValue(config, key);
    if (!isEmpty(value)) {
      settings[key] = value;
    }
  }
  settings.interpreter = facts.interpreter;
  settings.trusted = facts.trusted;
  return settings;
}

/** Whether a configuration change needs a new server process rather than a settings push. */
export function needsRestart(affects: (section: string) => boolean): boolean {
  return affects("nnprobe.interpreter") || affects("python.defaultInterpreterPath");
}

/** Whether a configuration change is one the server should re-read. */
export function affectsServer(affects: (section: string) => boolean): boolean {
  return SERVER_KEYS.some((key) => affects(`nnprobe.${key}`));
}

import * as assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import { CLIENT_KEYS, SERVER_KEYS, affectsServer, needsRestart, serverSettings } from "../../src/settings";

const manifest = JSON.parse(fs.readFileSync(path.join(__dirname, "..", "..", "..", "package.json"), "utf8"));
const properties: Record<string, { default?: unknown; markdownDescription?: string; description?: string }> =
  manifest.contributes.configuration.properties;

function config(values: Record<string, unknown>, scope: "globalValue" | "workspaceValue" = "globalValue") {
  return { inspect: <T>(key: string) => (key in values ? { [scope]: values[key] as T } : undefined) };
}

describe("serverSettings", () => {
  it("passes set values and adds the client's interpreter and trust", () => {
    const got = serverSettings(
      config({ ignore: ["NP103"], severity: { NP101: "error" }, debounce: 50, logLevel: "debug", rules: { NP101: { "sgd-max": 0.05 } } }),
      { interpreter: "/env/bin/python", trusted: false },
    );
    assert.deepEqual(got, {
      ignore: ["NP103"],
      severity: { NP101: "error" },
      debounce: 50,
      logLevel: "debug",
      rules: { NP101: { "sgd-max": 0.05 } },
      interpreter: "/env/bin/python",
      trusted: false,
    });
  });

  it("leaves out unset values (VS Code's [] and {} defaults) so the workspace's config stays the base", () => {
    const got = serverSettings(
      config({ select: [], extendSelect: [], ignore: [], severity: {}, rules: {}, exclude: [], perFileIgnores: {}, debounce: null }),
      { interpreter: "python3", trusted: true },
    );
    assert.deepEqual(got, { interpreter: "python3", trusted: true });
  });

  it("sends only what the user set, the most specific scope winning", () => {
    const layered = {
      inspect: <T>(key: string) =>
        ({ debounce: { defaultValue: 200, globalValue: 50, workspaceValue: 400 } as unknown as { globalValue?: T }, probeTimeout: { defaultValue: null } as unknown as { globalValue?: T } })[key],
    };
    assert.deepEqual(serverSettings(layered, { interpreter: "python3", trusted: true }), { debounce: 400, interpreter: "python3", trusted: true });
  });

  it("never reads interpreter or trust from the user's configuration", () => {
    const got = serverSettings(config({ trusted: true, interpreter: "/evil/python" }), { interpreter: "python3", trusted: false });
    assert.equal(got.trusted, false);
    assert.equal(got.interpreter, "python3");
  });

  it("restarts on interpreter changes and pushes other nnprobe settings", () => {
    const only = (name: string) => (section: string) => section === name;
    assert.equal(needsRestart(only("nnprobe.interpreter")), true);
    assert.equal(needsRestart(only("nnprobe.ignore")), false);
    assert.equal(affectsServer(only("nnprobe.ignore")), true);
    assert.equal(affectsServer(only("editor.fontSize")), false);
  });
});

describe("the manifest's contributes.configuration", () => {
  it("declares every server setting with a description and a default", () => {
    for (const key of [...SERVER_KEYS, "interpreter"]) {
      const property = properties[`nnprobe.${key}`];
      assert.ok(property, `nnprobe.${key} is not contributed`);
      assert.ok((property.markdownDescription ?? property.description ?? "").length > 20, `nnprobe.${key} lacks a description`);
      assert.ok("default" in property, `nnprobe.${key} lacks a default`);
    }
  });

  it("declares nothing the server would reject, and leaves trust to Workspace Trust", () => {
    const allowed = new Set([...SERVER_KEYS, "interpreter", "trace.server"].map((k) => `nnprobe.${k}`));
    for (const key of Object.keys(properties)) {
      assert.ok(allowed.has(key), `${key} is not a server setting`);
    }
    assert.ok(!(`nnprobe.${CLIENT_KEYS[1]}` in properties));
  });

  it("supports untrusted workspaces in limited mode, restricting the interpreter", () => {
    const trust = manifest.capabilities.untrustedWorkspaces;
    assert.equal(trust.supported, "limited");
    assert.deepEqual(trust.restrictedConfigurations, ["nnprobe.interpreter"]);
  });

  it("has the server's default debounce and log level", () => {
    assert.equal(properties["nnprobe.debounce"].default, 200);
    assert.equal(properties["nnprobe.logLevel"].default, "info");
  });
});

import * as assert from "node:assert/strict";
import { DEFAULT_INTERPRETER, installArgs, resolveInterpreter, serverArgs } from "../../src/interpreter";

const ext = (path: string | undefined) => async () => path;

describe("resolveInterpreter", () => {
  it("uses the Python extension's active interpreter first", async () => {
    const got = await resolveInterpreter({ pythonExtension: ext("/env/bin/python"), setting: "/usr/bin/python3.12", trusted: true });
    assert.deepEqual(got, { command: "/env/bin/python", source: "python-extension" });
  });

  it("falls back to nnprobe.interpreter without the Python extension", async () => {
    const got = await resolveInterpreter({ pythonExtension: ext(undefined), setting: " /opt/py/bin/python ", trusted: true });
    assert.deepEqual(got, { command: "/opt/py/bin/python", source: "setting" });
  });

  it("falls back to python3 when nothing is set", async () => {
    for (const setting of [null, undefined, "", "   "]) {
      const got = await resolveInterpreter({ pythonExtension: ext(""), setting, trusted: true });
      assert.deepEqual(got, { command: DEFAULT_INTERPRETER, source: "default" });
    }
  });

  it("survives a Python extension whose API throws", async () => {
    const broken = async (): Promise<string> => {
      throw new Error("not activated");
    };
    const got = await resolveInterpreter({ pythonExtension: broken, setting: "/x/python", trusted: true });
    assert.equal(got.source, "setting");
  });

  it("never asks the Python extension in an untrusted workspace (its venv is workspace code)", async () => {
    let asked = false;
    const spy = async (): Promise<string> => {
      asked = true;
      return "/ws/.venv/bin/python";
    };
    const got = await resolveInterpreter({ pythonExtension: spy, setting: null, trusted: false });
    assert.equal(asked, false);
    assert.deepEqual(got, { command: "python3", source: "default" });
  });

  it("starts the server as a module and installs the lsp extra", () => {
    assert.deepEqual(serverArgs(), ["-m", "nnprobe", "serve"]);
    assert.ok(installArgs().includes("nnprobe[lsp]"));
    assert.deepEqual(installArgs().slice(0, 3), ["-m", "pip", "install"]);
  });
});

import * as assert from "node:assert/strict";
import * as path from "node:path";
import {
  DEFAULT_INTERPRETER,
  importCheckArgs,
  importFailure,
  installArgs,
  interpreterCommand,
  resolveInterpreter,
  serverArgs,
  serverLaunch,
} from "../../src/interpreter";

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
    assert.deepEqual(serverArgs(), ["-P", "-m", "nnprobe", "serve"]);
    assert.ok(installArgs().includes("nnprobe[lsp]"));
    assert.deepEqual(installArgs().slice(0, 4), ["-P", "-m", "pip", "install"]);
  });
});

describe("serverLaunch: nothing in the workspace can shadow a module the server imports", () => {
  const extensionDir = path.resolve("/ext/nnprobe-0.1.0");
  const workspace = path.resolve("/home/me/checkout");

  it("runs python -P -m nnprobe serve in the extension's folder, never the workspace", () => {
    const launch = serverLaunch("/env/bin/python", extensionDir, workspace);
    assert.deepEqual(launch, {
      command: "/env/bin/python",
      args: ["-P", "-m", "nnprobe", "serve"],
      options: { cwd: extensionDir },
    });
    assert.notEqual(launch.options.cwd, workspace);
  });

  it("puts -P before -m and -c in every Python it starts (after it, it would be the program's argument)", () => {
    for (const args of [serverArgs(), importCheckArgs(), installArgs()]) {
      assert.equal(args[0], "-P", args.join(" "));
      assert.ok(["-m", "-c"].includes(args[1]), args.join(" "));
    }
  });

  it("keeps a relative interpreter setting meaning what it meant from the workspace folder", () => {
    const venv = path.join(workspace, ".venv", "bin", "python");
    assert.equal(interpreterCommand(".venv/bin/python", workspace), venv);
    assert.equal(interpreterCommand("./.venv/bin/python", workspace), venv);
    assert.equal(serverLaunch(".venv/bin/python", extensionDir, workspace).command, venv);
    assert.equal(interpreterCommand("python3", workspace), "python3"); // PATH lookup, as before
    assert.equal(interpreterCommand("/usr/bin/python3", workspace), "/usr/bin/python3");
    assert.equal(interpreterCommand(".venv/bin/python", undefined), ".venv/bin/python");
  });

  it("says so when the interpreter is too old for -P instead of offering an install", () => {
    const old = importFailure("Unknown option: -P\nusage: python3 [option] ... \nTry `python -h' for more information.\n", "exit 2");
    assert.equal(old.installable, false);
    assert.match(old.reason, /3\.11/);
    const missing = importFailure("Traceback ...\nModuleNotFoundError: No module named 'nnprobe'\n", "exit 1");
    assert.deepEqual(missing, { reason: "ModuleNotFoundError: No module named 'nnprobe'", installable: true });
    assert.deepEqual(importFailure("", "exit 1"), { reason: "exit 1", installable: true });
  });
});

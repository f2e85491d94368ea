import * as assert from "node:assert/strict";
import { PaletteCommand } from "../../src/constants";
import { StatusItem } from "../../src/status";
import { ThemeColor, window } from "./vscode_mock";

describe("StatusItem", () => {
  it("shows starting, idle, inspecting (with what) and error, and opens the logs", () => {
    const status = new StatusItem();
    const item = window.statusItems[window.statusItems.length - 1];
    assert.equal(item.visible, true);
    assert.equal(item.command, PaletteCommand.showLogs);
    assert.equal(status.state, "starting");

    status.set("idle", "/env/bin/python");
    assert.equal(status.state, "idle");
    assert.match(item.tooltip ?? "", /idle \(\/env\/bin\/python\)/);

    const probe = status.begin("probing model.pt");
    const picture = status.begin("embedding preview of model.pt");
    assert.equal(status.state, "inspecting");
    assert.match(item.text, /probing model\.pt, embedding preview of model\.pt/);
    probe();
    assert.match(item.text, /^\$\(sync~spin\) nnprobe: embedding preview of model\.pt$/);
    picture();
    assert.equal(status.state, "idle");
    const color = (): unknown => item.backgroundColor;
    assert.equal(color(), undefined);

    status.set("error", "the server stopped");
    assert.equal(status.state, "error");
    assert.ok(color() instanceof ThemeColor);
    assert.equal((color() as ThemeColor).id, "statusBarItem.errorBackground");
    status.dispose();
    assert.equal(item.visible, false);
  });
});

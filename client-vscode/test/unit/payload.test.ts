import * as assert from "node:assert/strict";
import { contentSecurityPolicy, inertJson, makeNonce, panelHtml } from "../../src/panel_html";
import { PALETTE, UNLABELLED, checkPayload, colorOf, describePoint, labelColors, layout, nearest, panelTitle } from "../../src/payload";

const PNG = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg==";

describe("checkPayload", () => {
  it("keeps images, scatters, findings and unavailable answers", () => {
    assert.equal(checkPayload({ kind: "image", mime: "image/png", data: PNG, title: "conv1 filters" }).kind, "image");
    const scatter = checkPayload({ kind: "scatter", points: [[0, 1], [2, 3]], labels: [3], title: "fc1" });
    assert.deepEqual(scatter, { kind: "scatter", points: [[0, 1], [2, 3]], labels: [3, null], title: "fc1" });
    assert.equal(checkPayload({ kind: "findings", uri: "file:///a.pt", findings: [] }).kind, "findings");
    assert.deepEqual(checkPayload({ kind: "unavailable", reason: "needs torch" }), { kind: "unavailable", reason: "needs torch" });
  });

  it("turns anything malformed into a readable unavailable message", () => {
    const cases: [unknown, RegExp][] = [
      [null, /not an nnprobe payload/],
      [{ kind: "image", mime: "text/html", data: "<b>" }, /unsupported image \(text\/html\)/],
      [{ kind: "scatter", points: [[0, Number.NaN]], labels: [] }, /finite numbers/],
      [{ kind: "scatter", points: "nope" }, /finite numbers/],
      [{ kind: "video" }, /unknown payload kind "video"/],
    ];
    for (const [answer, reason] of cases) {
      const got = checkPayload(answer);
      assert.equal(got.kind, "unavailable");
      assert.match((got as { reason: string }).reason, reason);
    }
  });

  it("titles the panel after the picture, else after the command", () => {
    assert.equal(panelTitle(checkPayload({ kind: "image", mime: "image/png", data: PNG, title: "conv1 filters" }), "x"), "nnprobe: conv1 filters");
    assert.equal(panelTitle(checkPayload({ kind: "unavailable", reason: "r" }), "Embedding preview: m.pt"), "nnprobe: Embedding preview: m.pt");
  });
});

describe("scatter helpers", () => {
  it("colours by label, the same label the same colour, numbers in numeric order", () => {
    const colors = labelColors([10, 2, 2, null, 1]);
    assert.deepEqual([...colors.keys()], ["1", "2", "10"]);
    assert.equal(colorOf(2, colors), PALETTE[1]);
    assert.equal(colorOf(null, colors), UNLABELLED);
  });

  it("lays points into the box keeping the aspect, y up", () => {
    const box = { width: 200, height: 100, pad: 10 };
    const placed = layout([[0, 0], [4, 2], [2, 1]], box);
    for (const [x, y] of placed) {
      assert.ok(x >= 0 && x <= 200 && y >= 0 && y <= 100);
    }
    assert.ok(placed[1][1] < placed[0][1], "larger y is drawn higher");
    const dx = placed[1][0] - placed[0][0];
    const dy = placed[0][1] - placed[1][1];
    assert.ok(Math.abs(dx / dy - 2) < 1e-9, "aspect ratio kept");
    assert.deepEqual(layout([[5, 5]], box)[0].map(Number.isFinite), [true, true]);
  });

  it("finds the nearest point within a radius for the hover", () => {
    const points: [number, number][] = [[0, 0], [10, 0], [10, 10]];
    assert.equal(nearest(points, 9, 1, 3), 1);
    assert.equal(nearest(points, 5, 5, 3), -1);
    assert.equal(describePoint(7, 3), "label 3 · point #7");
    assert.equal(describePoint(0, null), "no label · point #0");
  });
});

describe("panelHtml", () => {
  const page = {
    cspSource: "https://file+.vscode-resource.vscode-cdn.net",
    nonce: "abcDEF123",
    scriptUri: "https://file+.vscode-resource.vscode-cdn.net/ext/dist/panel.js",
    styleUri: "https://file+.vscode-resource.vscode-cdn.net/ext/media/panel.css",
    title: "nnprobe: <fc1>",
    payload: checkPayload({ kind: "unavailable", reason: "</script><script>alert(1)</script>" }),
  };

  it("allows scripts only with the nonce, and nothing remote", () => {
    const html = panelHtml(page);
    const csp = contentSecurityPolicy(page.cspSource, page.nonce);
    assert.ok(csp.startsWith("default-src 'none'"));
    assert.match(csp, /script-src 'nonce-abcDEF123'$/);
    assert.ok(!csp.includes("unsafe-inline") && !csp.includes("unsafe-eval"));
    const scripts = html.match(/<script\b[^>]*>/g) ?? [];
    const executable = scripts.filter((tag) => !tag.includes('type="application/json"'));
    assert.equal(executable.length, 1);
    assert.match(executable[0], /nonce="abcDEF123"/);
    const urls = (html.match(/https?:\/\/[^"' ;]+/g) ?? []).filter((u) => !u.startsWith(page.cspSource));
    assert.deepEqual(urls, [], "no URL outside the webview's own resources");
  });

  it("embeds the payload so that no string in it can close the script element", () => {
    const html = panelHtml(page);
    assert.equal(html.match(/<\/script>/g)?.length, 2);
    assert.ok(html.includes("&lt;fc1&gt;"));
    assert.deepEqual(JSON.parse(inertJson(page.payload)), page.payload);
  });

  it("makes a fresh 32-character nonce", () => {
    const a = makeNonce();
    assert.match(a, /^[A-Za-z0-9]{32}$/);
    assert.notEqual(a, makeNonce());
  });
});

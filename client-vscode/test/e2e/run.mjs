// End to end: the built .vsix installed into a real code-server, driven by headless Chromium.
// A person can read what it saw: one screenshot per step under test-output/vscode-e2e/.
// Installs what it needs through scripts/setup-e2e.sh; skips loudly (exit 0) only when that script
// says this machine cannot run it, unless NNPROBE_E2E_REQUIRED=1 makes that a failure.

import { execFileSync, spawn } from "node:child_process";
import * as fs from "node:fs";
import * as net from "node:net";
import * as os from "node:os";
import * as path from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";

const HERE = path.dirname(fileURLToPath(import.meta.url));
const EXTENSION = path.resolve(HERE, "..", "..");
const REPO = path.resolve(EXTENSION, "..");
const SHOTS = path.join(REPO, "test-output", "vscode-e2e");
const WAIT = Number(process.env.NNPROBE_E2E_TIMEOUT_MS ?? 90_000);
const CHROMIUM = process.env.NNPROBE_E2E_CHROMIUM ?? "/usr/bin/chromium";

function log(message) {
  console.log(`[e2e ${new Date().toISOString().slice(11, 19)}] ${message}`);
}

function banner(message) {
  const line = "!".repeat(78);
  console.log(`\n${line}\n!! VS Code END-TO-END TEST SKIPPED: ${message}\n${line}\n`);
}

function setup() {
  try {
    const out = execFileSync(path.join(EXTENSION, "scripts", "setup-e2e.sh"), { encoding: "utf8", stdio: ["ignore", "pipe", "inherit"] });
    return Object.fromEntries(out.trim().split("\n").filter((l) => l.includes("=")).map((l) => l.split(/=(.*)/s).slice(0, 2)));
  } catch (error) {
    if (error.status === 3) {
      return null;
    }
    throw error;
  }
}

function python() {
  const venv = path.join(REPO, ".venv", "bin", "python");
  return process.env.NNPROBE_E2E_PYTHON ?? (fs.existsSync(venv) ? venv : "python3");
}

function freePort() {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
    server.on("error", reject);
  });
}

async function healthy(url, deadline) {
  while (Date.now() < deadline) {
    try {
      const response = await fetch(`${url}/healthz`);
      if (response.ok) {
        return;
      }
    } catch {
      // not listening yet
    }
    await new Promise((r) => setTimeout(r, 250));
  }
  throw new Error(`code-server did not answer ${url}/healthz`);
}

/** A code-server with its own user data, extensions and XDG folders, the .vsix installed. */
async function startCodeServer(env, tmp, vsix, { trust }) {
  const userData = path.join(tmp, "user-data");
  const extensions = path.join(tmp, "extensions");
  fs.mkdirSync(path.join(userData, "User"), { recursive: true });
  fs.writeFileSync(
    path.join(userData, "User", "settings.json"),
    JSON.stringify({
      "nnprobe.interpreter": python(),
      "workbench.startupEditor": "none",
      "workbench.colorTheme": "Default Dark Modern",
      "workbench.tips.enabled": false,
      "telemetry.telemetryLevel": "off",
      "extensions.autoCheckUpdates": false,
      "extensions.ignoreRecommendations": true,
      "chat.disableAIFeatures": true,
      "security.workspace.trust.startupPrompt": "always",
      "editor.hover.delay": 100,
      "workbench.secondarySideBar.defaultVisibility": "hidden",
    }, null, 2),
  );
  const childEnv = {
    ...process.env,
    PATH: `${env.NODE_HOME}/bin:${process.env.PATH}`,
    XDG_CONFIG_HOME: path.join(tmp, "xdg-config"),
    XDG_DATA_HOME: path.join(tmp, "xdg-data"),
    XDG_CACHE_HOME: path.join(tmp, "xdg-cache"),
    XDG_STATE_HOME: path.join(tmp, "xdg-state"),
  };
  const dirs = ["--user-data-dir", userData, "--extensions-dir", extensions];
  execFileSync(env.CODE_SERVER, ["--install-extension", vsix, ...dirs], { env: childEnv, stdio: "inherit" });
  const port = await freePort();
  const args = [
    ...dirs, "--auth", "none", "--bind-addr", `127.0.0.1:${port}`,
    "--disable-telemetry", "--disable-update-check", "--disable-getting-started-override",
    ...(trust ? [] : ["--disable-workspace-trust"]),
  ];
  const logFile = fs.openSync(path.join(tmp, "code-server.log"), "w");
  const child = spawn(env.CODE_SERVER, args, { env: childEnv, stdio: ["ignore", logFile, logFile], detached: true });
  const url = `http://127.0.0.1:${port}`;
  await healthy(url, Date.now() + WAIT);
  return {
    url,
    stop() {
      try {
        process.kill(-child.pid, "SIGTERM");
      } catch {
        // already gone
      }
    },
  };
}

async function openBrowser(tmp) {
  const browser = await chromium.launchPersistentContext(path.join(tmp, "chromium"), {
    executablePath: CHROMIUM,
    headless: true,
    viewport: { width: 1400, height: 900 },
    args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
      "--disable-background-networking", "--disable-component-update", "--disable-sync"],
  });
  const page = browser.pages()[0] ?? (await browser.newPage());
  page.setDefaultTimeout(WAIT);
  return { browser, page };
}

async function shot(page, name) {
  const file = path.join(SHOTS, `${name}.png`);
  await page.screenshot({ path: file });
  log(`screenshot ${path.relative(REPO, file)}`);
}

async function palette(page, text) {
  await page.keyboard.press("F1");
  const input = page.locator(".quick-input-widget input");
  await input.waitFor({ state: "visible" });
  await input.fill(`>${text}`);
  await page.locator(".quick-input-list .monaco-list-row", { hasText: text }).first().waitFor();
  await page.keyboard.press("Enter");
}

async function openFile(page, name) {
  await page.locator(".monaco-workbench").waitFor();
  await page.keyboard.press("Control+P");
  const input = page.locator(".quick-input-widget input");
  await input.waitFor({ state: "visible" });
  await input.fill(name);
  await page.locator(".quick-input-list .monaco-list-row", { hasText: name }).first().waitFor();
  await page.keyboard.press("Enter");
  await page.locator(".monaco-editor .view-lines", { hasText: "CrossEntropyLoss" }).first().waitFor();
}

async function problemsText(page) {
  await palette(page, "View: Focus Problems");
  const panel = page.locator(".markers-panel");
  await panel.waitFor({ state: "visible" });
  return panel;
}

async function until(condition, what) {
  const deadline = Date.now() + WAIT;
  while (!condition()) {
    if (Date.now() > deadline) {
      throw new Error(`timed out waiting until ${what}`);
    }
    await new Promise((r) => setTimeout(r, 200));
  }
}

/** Runs nnprobe: Inspect Checkpoint... on model.pt; returns what the panel shows once it differs from `before`. */
async function inspectCheckpoint(page, before = null) {
  await palette(page, "nnprobe: Inspect Checkpoint...");
  await page.locator(".quick-input-list .monaco-list-row", { hasText: "model.pt" }).first().waitFor();
  await page.keyboard.press("Enter");
  const webview = page.frameLocator("iframe.webview.ready").frameLocator("iframe#active-frame");
  const root = webview.locator("#root[data-kind]");
  await root.waitFor();
  let shown = await root.innerText();
  const deadline = Date.now() + WAIT;
  while (shown === before && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 200));
    shown = await root.innerText();
  }
  return shown;
}

async function outputLine(page, text) {
  await page.locator(".panel .monaco-editor .view-lines", { hasText: text }).first().waitFor({ state: "visible" });
}

function check(condition, message) {
  if (!condition) {
    throw new Error(`check failed: ${message}`);
  }
  log(`ok: ${message}`);
}

function makeWorkspace(tmp, fixture) {
  const ws = path.join(tmp, "workspace");
  fs.cpSync(path.join(HERE, fixture), ws, { recursive: true });
  saveCheckpoint(path.join(ws, "model.pt"));
  return ws;
}

/** The weights of the fixtures' Net (fc1, fc2), saved without importing workspace code. */
function saveCheckpoint(file, tamper = "") {
  execFileSync(python(), ["-c", [
    "import torch, sys",
    "from torch import nn",
    "torch.manual_seed(0)",
    "m = nn.Module()",
    "m.fc1, m.fc2 = nn.Linear(64, 32), nn.Linear(32, 10)",
    tamper,
    "torch.save(m.state_dict(), sys.argv[1] + '.tmp')",
    "import os; os.replace(sys.argv[1] + '.tmp', sys.argv[1])",
  ].join("\n"), file], { stdio: "inherit" });
}

/** Trusted workspace: squiggle, Problems, hover, quick fix, a palette command and the panel. */
async function trustedRun(env, vsix) {
  const name = "trusted";
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "nnprobe-e2e-"));
  const ws = makeWorkspace(tmp, "workspace");
  const server = await startCodeServer(env, tmp, vsix, { trust: false });
  let browser;
  let page;
  try {
    ({ browser, page } = await openBrowser(tmp));
    await page.goto(`${server.url}/?folder=${encodeURIComponent(ws)}`);
    await openFile(page, "train.py");
    await page.locator(".squiggly-error").first().waitFor();
    await shot(page, "01-squiggle");

    const problems = await problemsText(page);
    await problems.locator(".monaco-list-row", { hasText: "NP104" }).first().waitFor();
    const listed = await problems.innerText();
    check(listed.includes("NP104") && listed.includes("CrossEntropyLoss"), "the Problems panel lists NP104 with its message");
    check(!/NP1(0[1-35-9]|1\d|2\d)/.test(listed), "and no other NP1xx code on this script");
    await shot(page, "02-problems");

    // The panel shrinks the editor below line 27; opening the problem scrolls back to it.
    await problems.locator(".monaco-list-row", { hasText: "NP104" }).first().click();
    // Monaco draws the squiggle as an overlay Playwright calls invisible: point the mouse at it.
    const squiggle = await page.locator(".view-overlays .squiggly-error").first().evaluate((el) => {
      const r = el.getBoundingClientRect();
      return { x: r.left + r.width / 2, y: r.top + r.height / 2 };
    });
    await page.mouse.move(squiggle.x, squiggle.y);
    const hover = page.locator(".monaco-hover", { hasText: "softmax" }).first();
    await hover.waitFor({ state: "visible" });
    const hoverHtml = await hover.innerHTML();
    check(hoverHtml.includes("applies log_softmax itself"), "the hover shows the rule's message");
    check(hoverHtml.includes("nnprobe.dev/rules/NP104"), "the hover links the rule's docs page");
    await shot(page, "03-hover");
    await page.keyboard.press("Escape");

    await page.mouse.click(squiggle.x, squiggle.y);
    await page.keyboard.press("Control+.");
    const fix = page.locator(".action-widget .monaco-list-row", { hasText: "remove the softmax" }).first();
    await fix.waitFor({ state: "visible" });
    await shot(page, "04-quick-fix-menu");
    await fix.click();
    await page.locator(".monaco-editor .view-lines", { hasText: "loss_fn(logits, y)" }).first().waitFor();
    await page.locator(".squiggly-error").first().waitFor({ state: "detached" });
    await problems.locator(".monaco-list-row", { hasText: "NP104" }).first().waitFor({ state: "detached" });
    check(true, "the quick fix rewrote the line to loss_fn(logits, y) and NP104 disappeared");
    await shot(page, "05-fixed");

    await palette(page, "nnprobe: Show Embedding Preview");
    await page.locator(".quick-input-list .monaco-list-row", { hasText: "model.pt" }).first().waitFor();
    await page.keyboard.press("Enter");
    await page.locator(".quick-input-widget", { hasText: "layer" }).first().waitFor({ state: "visible" });
    await page.keyboard.press("Enter");
    const webview = page.frameLocator("iframe.webview.ready").frameLocator("iframe#active-frame");
    const root = webview.locator("#root[data-kind]");
    await root.waitFor();
    const kind = await root.getAttribute("data-kind");
    const shown = await root.innerText();
    const tab = await page.locator(".tab", { hasText: "nnprobe:" }).first().innerText();
    check(tab.includes("Embedding preview: model.pt") || tab.includes("nnprobe:"), `the picture panel opened ("${tab.trim()}")`);
    if (kind === "scatter") {
      const points = await webview.locator("circle.point").count();
      check(points > 0, `the embedding preview draws ${points} points`);
      await webview.locator("circle.point").first().hover();
      const tip = await webview.locator("#tooltip").innerText();
      check(/point #\d+/.test(tip), `hovering a point shows "${tip}"`);
    } else {
      check(kind === "unavailable" && shown.length > 20, `the panel shows the server's reason: "${shown.replace(/\s+/g, " ")}"`);
    }
    await shot(page, "06-embedding-preview");

    // A run writes a checkpoint whose fc1 went NaN: runtime findings land on fc1's line (10).
    saveCheckpoint(path.join(ws, "model.pt"), "m.fc1.weight.data[0, 0] = float('nan')");
    await palette(page, "View: Focus Problems");
    // The script's copy of a checkpoint finding is prefixed with the checkpoint's name.
    const nan = problems.locator(".monaco-list-row", { hasText: /model\.pt: .*fc1.* non-finite/ }).first();
    await nan.waitFor();
    const row = await nan.innerText();
    check(row.includes("NP202") && row.includes("[Ln 10,"), `the new checkpoint's NaN weights are listed on train.py line 10, self.fc1: "${row.replace(/\s+/g, " ")}"`);
    await nan.click({ position: { x: 40, y: 8 } });
    await page.locator(".monaco-editor .view-lines", { hasText: "self.fc1 = nn.Linear" }).first().waitFor();
    await page.locator(".squiggly-error").first().waitFor({ state: "attached" });
    await shot(page, "07-runtime-finding");

    // Point nnprobe.interpreter at a Python without nnprobe: the server restarts on the change,
    // finds nnprobe missing and offers to install it.
    const bare = path.join(tmp, "bare-python");
    fs.writeFileSync(bare, `#!/bin/sh\nexec ${python()} -S "$@"\n`, { mode: 0o755 });
    const settingsFile = path.join(tmp, "user-data", "User", "settings.json");
    const userSettings = JSON.parse(fs.readFileSync(settingsFile, "utf8"));
    await palette(page, "Preferences: Open User Settings (JSON)");
    await page.locator(".monaco-editor .view-lines", { hasText: "nnprobe.interpreter" }).first().waitFor();
    await page.keyboard.press("Control+A");
    await page.keyboard.insertText(JSON.stringify({ ...userSettings, "nnprobe.interpreter": bare }, null, 2));
    await page.keyboard.press("Control+S");
    const offer = page.locator(".notifications-toasts .notification-toast", { hasText: "nnprobe is not installed" }).first();
    await offer.waitFor({ state: "visible" });
    const offerText = await offer.innerText();
    check(offerText.includes(bare) && /Install nnprobe/.test(offerText), "changing nnprobe.interpreter restarted the server, which offers to install nnprobe there");
    await page.locator(".statusbar-item.has-background-color", { hasText: "nnprobe" }).first().waitFor();
    check(true, "the status bar item shows the error");
    await shot(page, "08-missing-nnprobe");
  } catch (error) {
    if (page) {
      await shot(page, `failed-${name}`).catch(() => undefined);
    }
    throw error;
  } finally {
    await browser?.close();
    server.stop();
  }
}

/** Untrusted workspace: static findings still appear, the server runs untrusted, no workspace code runs. */
async function untrustedRun(env, vsix) {
  const name = "untrusted";
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "nnprobe-e2e-untrusted-"));
  const ws = makeWorkspace(tmp, "untrusted");
  const sentinel = path.join(ws, "imported.txt");
  const server = await startCodeServer(env, tmp, vsix, { trust: true });
  let browser;
  let page;
  try {
    ({ browser, page } = await openBrowser(tmp));
    await page.goto(`${server.url}/?folder=${encodeURIComponent(ws)}`);
    const refuse = page.getByRole("button", { name: /No, I don't trust/ });
    await refuse.waitFor({ state: "visible" });
    await shot(page, "09-untrusted-prompt");
    await refuse.click();
    await openFile(page, "train.py");
    await page.locator(".squiggly-error").first().waitFor();
    check(true, "static findings appear in the untrusted workspace");
    const inspection = await inspectCheckpoint(page);
    await palette(page, "nnprobe: Show Logs");
    await outputLine(page, "trusted workspace: false");
    check(true, "the server was started for an untrusted workspace (trusted: false)");
    check(!fs.existsSync(sentinel), "no workspace code ran (net.py never imported)");
    const refused = /untrusted workspace/.test(inspection);
    if (refused) {
      check(true, "the checkpoint inspection says the untrusted workspace kept its model code from running");
    }
    await shot(page, "10-untrusted");

    await palette(page, "Workspaces: Manage Workspace Trust");
    const grant = page.locator(".workspace-trust-editor .monaco-button", { hasText: /^Trust/ }).first();
    await grant.waitFor({ state: "visible" });
    await grant.click();
    await page.locator(".statusbar-item", { hasText: "Restricted Mode" }).first().waitFor({ state: "detached" });
    await page.locator('[aria-label^="Close Modal Editor"]').first().click();
    await page.locator(".workspace-trust-editor").first().waitFor({ state: "hidden" });
    await palette(page, "nnprobe: Show Logs");
    await outputLine(page, "trusted workspace: true");
    check(true, "granting trust reached the running server without a reload (trusted: true)");
    await shot(page, "11-trust-granted");
    if (refused) {
      await inspectCheckpoint(page, inspection);
      await until(() => fs.existsSync(sentinel), "net.py imported once the workspace is trusted");
      check(true, "once trusted, the server built the model from the workspace's code (net.py ran)");
      await shot(page, "12-trusted-inspection");
    }
  } catch (error) {
    if (page) {
      await shot(page, `failed-${name}`).catch(() => undefined);
    }
    throw error;
  } finally {
    await browser?.close();
    server.stop();
  }
}

async function main() {
  fs.rmSync(SHOTS, { recursive: true, force: true });
  fs.mkdirSync(SHOTS, { recursive: true });
  const env = setup();
  if (env === null) {
    const message = "this machine cannot install code-server and Chromium (see setup-e2e above)";
    banner(message);
    process.exit(process.env.NNPROBE_E2E_REQUIRED === "1" ? 1 : 0);
  }
  log("packaging the extension");
  execFileSync("npm", ["run", "package"], { cwd: EXTENSION, stdio: "inherit" });
  const vsix = path.join(EXTENSION, "dist", "nnprobe.vsix");
  const started = Date.now();
  await trustedRun(env, vsix);
  await untrustedRun(env, vsix);
  log(`passed in ${((Date.now() - started) / 1000).toFixed(1)} s; screenshots in ${path.relative(REPO, SHOTS)}/`);
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});

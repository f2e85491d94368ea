// Two bundles: the extension host side (Node, `vscode` provided by the editor) and the picture
// panel's script (browser), so the .vsix carries every library and the webview loads nothing remote.
import * as esbuild from "esbuild";

const common = { bundle: true, minify: false, sourcemap: false, logLevel: "warning" };
await esbuild.build({
  ...common,
  entryPoints: ["src/extension.ts"],
  outfile: "dist/extension.js",
  platform: "node",
  format: "cjs",
  target: "node20",
  external: ["vscode"],
});
await esbuild.build({
  ...common,
  entryPoints: ["src/webview/panel.ts"],
  outfile: "dist/panel.js",
  platform: "browser",
  format: "iife",
  target: "es2020",
});

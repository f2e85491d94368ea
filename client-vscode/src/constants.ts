/**
 * Names both sides of the protocol agree on, in one place: the server's command ids (which the
 * language client registers as VS Code commands by itself) and the extension's own palette ids,
 * which must differ from them or VS Code refuses the second registration.
 */

export const SECTION = "nnprobe";
export const CLIENT_ID = "nnprobe";
export const CLIENT_NAME = "nnprobe";

export const ServerCommand = {
  inspect: "nnprobe.inspect",
  embeddingPreview: "nnprobe.embeddingPreview",
  filters: "nnprobe.filters",
  activationMaps: "nnprobe.activationMaps",
  occlusion: "nnprobe.occlusion",
  topActivating: "nnprobe.topActivating",
  curves: "nnprobe.curves",
  debugInfo: "nnprobe.debugInfo",
} as const;

export const PaletteCommand = {
  inspectCheckpoint: "nnprobe.client.inspectCheckpoint",
  embeddingPreview: "nnprobe.client.embeddingPreview",
  filters: "nnprobe.client.filters",
  activationMaps: "nnprobe.client.activationMaps",
  occlusion: "nnprobe.client.occlusion",
  topActivating: "nnprobe.client.topActivating",
  restart: "nnprobe.client.restart",
  showLogs: "nnprobe.client.showLogs",
} as const;

/** Palette picture commands and the server command each one runs. */
export const PICTURE_COMMANDS: ReadonlyArray<{ palette: string; server: string; title: string }> = [
  { palette: PaletteCommand.embeddingPreview, server: ServerCommand.embeddingPreview, title: "Embedding preview" },
  { palette: PaletteCommand.filters, server: ServerCommand.filters, title: "First-layer filters" },
  { palette: PaletteCommand.activationMaps, server: ServerCommand.activationMaps, title: "Activation maps" },
  { palette: PaletteCommand.occlusion, server: ServerCommand.occlusion, title: "Occlusion map" },
  { palette: PaletteCommand.topActivating, server: ServerCommand.topActivating, title: "Top activating inputs" },
];

// The server's checkpoint_watch.GLOB, from nnprobe.core.files.CHECKPOINT_SUFFIXES (tests/lsp/test_lsp_checkpoint_suffixes.py compares them).
export const CHECKPOINT_GLOB = "**/*.{bin,ckpt,onnx,pt,pth,safetensors}";
export const CHECKPOINT_EXCLUDE = "**/{node_modules,.git,.venv,venv,__pycache__}/**";

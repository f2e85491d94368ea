/**
 * The server's command answers (docs/lsp.md, "Commands") checked and prepared for display. Shared by
 * the extension host and the panel's browser script, so it imports nothing from VS Code or Node.
 */

export interface ImagePayload {
  kind: "image";
  mime: string;
  data: string;
  title?: string;
}

export interface ScatterPayload {
  kind: "scatter";
  points: [number, number][];
  labels: (string | number | null)[];
  title?: string;
}

export interface FindingRow {
  code: string;
  severity: string;
  message: string;
  path?: string;
  range?: { start?: { line?: number } };
  module?: string | null;
}

export interface FindingsPayload {
  kind: "findings";
  uri: string;
  findings: FindingRow[];
  summary?: Record<string, number>;
}

export interface UnavailablePayload {
  kind: "unavailable";
  reason: string;
}

export type Payload = ImagePayload | ScatterPayload | FindingsPayload | UnavailablePayload;

const IMAGE_MIMES = new Set(["image/png", "image/jpeg", "image/gif", "image/webp"]);

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/** A payload the panel can draw; anything else becomes an `unavailable` saying what was wrong. */
export function checkPayload(value: unknown): Payload {
  if (!isRecord(value) || typeof value.kind !== "string") {
    return { kind: "unavailable", reason: "the server answered something that is not an nnprobe payload" };
  }
  switch (value.kind) {
    case "image":
      if (typeof value.data !== "string" || !IMAGE_MIMES.has(String(value.mime))) {
        return { kind: "unavailable", reason: `unsupported image (${String(value.mime)})` };
      }
      return value as unknown as ImagePayload;
    case "scatter": {
      const points = value.points;
      const ok =
        Array.isArray(points) &&
        points.every(
          (p) => Array.isArray(p) && p.length >= 2 && Number.isFinite(p[0]) && Number.isFinite(p[1]),
        );
      if (!ok) {
        return { kind: "unavailable", reason: "the scatter plot's points are not pairs of finite numbers" };
      }
      const labels = Array.isArray(value.labels) ? value.labels : [];
      return {
        kind: "scatter",
        points: (points as number[][]).map((p) => [p[0], p[1]] as [number, number]),
        labels: (points as unknown[]).map((_, i) => (labels[i] ?? null) as string | number | null),
        title: typeof value.title === "string" ? value.title : undefined,
      };
    }
    case "findings":
      return { ...(value as unknown as FindingsPayload), findings: Array.isArray(value.findings) ? (value.findings as FindingRow[]) : [] };
    case "unavailable":
      return { kind: "unavailable", reason: typeof value.reason === "string" ? value.reason : "no reason given" };
    default:
      return { kind: "unavailable", reason: `unknown payload kind "${value.kind}"` };
  }
}

/** Tableau's ten categorical colours: readable on light and dark backgrounds alike. */
export const PALETTE = [
  "#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f",
  "#edc948", "#b07aa1", "#ff9da7", "#9c755f", "#bab0ac",
];
export const UNLABELLED = "#888888";

/** One colour per distinct label, in sorted label order, so the same class keeps its colour. */
export function labelColors(labels: (string | number | null)[]): Map<string, string> {
  const distinct = [...new Set(labels.filter((l) => l !== null).map(String))];
  distinct.sort((a, b) => {
    const na = Number(a);
    const nb = Number(b);
    return Number.isFinite(na) && Number.isFinite(nb) ? na - nb : a.localeCompare(b);
  });
  return new Map(distinct.map((label, i) => [label, PALETTE[i % PALETTE.length]]));
}

export function colorOf(label: string | number | null, colors: Map<string, string>): string {
  return label === null ? UNLABELLED : colors.get(String(label)) ?? UNLABELLED;
}

export interface Box {
  width: number;
  height: number;
  pad: number;
}

/** Points scaled into the box, y pointing up, aspect kept, so distances read true. */
export function layout(points: [number, number][], box: Box): [number, number][] {
  if (points.length === 0) {
    return [];
  }
  const xs = points.map((p) => p[0]);
  const ys = points.map((p) => p[1]);
  const [x0, x1] = [Math.min(...xs), Math.max(...xs)];
  const [y0, y1] = [Math.min(...ys), Math.max(...ys)];
  const span = Math.max(x1 - x0, y1 - y0) || 1;
  const scale = Math.min(box.width, box.height) - 2 * box.pad;
  const offX = (box.width - ((x1 - x0) / span) * scale) / 2;
  const offY = (box.height - ((y1 - y0) / span) * scale) / 2;
  return points.map(([x, y]) => [
    offX + ((x - x0) / span) * scale,
    box.height - (offY + ((y - y0) / span) * scale),
  ]);
}

/** Index of the point nearest (x, y) within `radius`, or -1. */
export function nearest(points: [number, number][], x: number, y: number, radius: number): number {
  let best = -1;
  let bestDistance = radius * radius;
  points.forEach(([px, py], i) => {
    const d = (px - x) ** 2 + (py - y) ** 2;
    if (d <= bestDistance) {
      best = i;
      bestDistance = d;
    }
  });
  return best;
}

export function describePoint(index: number, label: string | number | null): string {
  return `${label === null ? "no label" : `label ${label}`} · point #${index}`;
}

/** Text for the panel's title bar. */
export function panelTitle(payload: Payload, fallback: string): string {
  if ((payload.kind === "image" || payload.kind === "scatter") && payload.title) {
    return `nnprobe: ${payload.title}`;
  }
  return `nnprobe: ${fallback}`;
}

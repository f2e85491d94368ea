/**
 * The picture panel's script, bundled for the browser: draws the payload the extension embedded in
 * the page. Scatter plots are SVG so hovering, zooming (wheel) and panning (drag) need no library.
 */

import {
  type FindingsPayload,
  type Payload,
  type ScatterPayload,
  colorOf,
  describePoint,
  labelColors,
  layout,
  nearest,
} from "../payload";

const SVG = "http://www.w3.org/2000/svg";
const BOX = { width: 640, height: 640, pad: 24 };

function el<K extends keyof HTMLElementTagNameMap>(tag: K, text?: string, cls?: string): HTMLElementTagNameMap[K] {
  const node = document.createElement(tag);
  if (text !== undefined) {
    node.textContent = text;
  }
  if (cls) {
    node.className = cls;
  }
  return node;
}

function drawScatter(root: HTMLElement, payload: ScatterPayload): void {
  const colors = labelColors(payload.labels);
  const placed = layout(payload.points, BOX);
  const svg = document.createElementNS(SVG, "svg");
  svg.setAttribute("id", "scatter");
  svg.setAttribute("viewBox", `0 0 ${BOX.width} ${BOX.height}`);
  svg.setAttribute("role", "img");
  svg.setAttribute("aria-label", payload.title ?? "embedding preview");
  const group = document.createElementNS(SVG, "g");
  placed.forEach(([x, y], i) => {
    const dot = document.createElementNS(SVG, "circle");
    dot.setAttribute("cx", x.toFixed(2));
    dot.setAttribute("cy", y.toFixed(2));
    dot.setAttribute("r", "4");
    dot.setAttribute("fill", colorOf(payload.labels[i], colors));
    dot.setAttribute("data-index", String(i));
    dot.setAttribute("class", "point");
    group.appendChild(dot);
  });
  svg.appendChild(group);
  const wrap = el("div", undefined, "plot");
  wrap.appendChild(svg);
  const tip = el("div", "", "tooltip");
  tip.id = "tooltip";
  wrap.appendChild(tip);
  root.appendChild(wrap);

  const legend = el("ul", undefined, "legend");
  for (const [label, color] of colors) {
    const item = el("li", ` ${label}`);
    const swatch = el("span", undefined, "swatch");
    swatch.style.background = color;
    item.prepend(swatch);
    legend.appendChild(item);
  }
  root.appendChild(legend);
  root.appendChild(el("p", `${payload.points.length} points · wheel to zoom, drag to pan, double-click to reset`, "hint"));

  let view = { x: 0, y: 0, w: BOX.width, h: BOX.height };
  const apply = (): void => svg.setAttribute("viewBox", `${view.x} ${view.y} ${view.w} ${view.h}`);
  const toPlot = (event: MouseEvent): [number, number] => {
    const rect = svg.getBoundingClientRect();
    return [
      view.x + ((event.clientX - rect.left) / rect.width) * view.w,
      view.y + ((event.clientY - rect.top) / rect.height) * view.h,
    ];
  };
  let drag: [number, number] | null = null;
  svg.addEventListener("mousemove", (event) => {
    const [x, y] = toPlot(event);
    if (drag) {
      view = { ...view, x: view.x - (x - drag[0]), y: view.y - (y - drag[1]) };
      apply();
      return;
    }
    const i = nearest(placed, x, y, (8 * view.w) / BOX.width);
    if (i < 0) {
      tip.style.display = "none";
      return;
    }
    tip.textContent = describePoint(i, payload.labels[i]);
    tip.style.display = "block";
    const rect = wrap.getBoundingClientRect();
    tip.style.left = `${event.clientX - rect.left + 12}px`;
    tip.style.top = `${event.clientY - rect.top + 12}px`;
  });
  svg.addEventListener("mouseleave", () => {
    tip.style.display = "none";
    drag = null;
  });
  svg.addEventListener("mousedown", (event) => {
    drag = toPlot(event);
  });
  svg.addEventListener("mouseup", () => {
    drag = null;
  });
  svg.addEventListener("dblclick", () => {
    view = { x: 0, y: 0, w: BOX.width, h: BOX.height };
    apply();
  });
  svg.addEventListener(
    "wheel",
    (event) => {
      event.preventDefault();
      const [x, y] = toPlot(event);
      const factor = event.deltaY < 0 ? 0.8 : 1.25;
      view = { x: x - (x - view.x) * factor, y: y - (y - view.y) * factor, w: view.w * factor, h: view.h * factor };
      apply();
    },
    { passive: false },
  );
}

function drawFindings(root: HTMLElement, payload: FindingsPayload): void {
  if (payload.findings.length === 0) {
    root.appendChild(el("p", "No findings.", "message"));
    return;
  }
  const table = el("table", undefined, "findings");
  const head = el("tr");
  for (const name of ["code", "severity", "where", "message"]) {
    head.appendChild(el("th", name));
  }
  table.appendChild(head);
  for (const finding of payload.findings) {
    const row = el("tr");
    const line = finding.range?.start?.line;
    const where = [finding.module, line !== undefined ? `line ${line}` : undefined].filter(Boolean).join(", ");
    for (const cell of [finding.code, finding.severity, where, finding.message]) {
      row.appendChild(el("td", String(cell ?? "")));
    }
    table.appendChild(row);
  }
  root.appendChild(table);
}

export function draw(root: HTMLElement, payload: Payload): void {
  root.replaceChildren();
  root.dataset.kind = payload.kind;
  switch (payload.kind) {
    case "image": {
      const img = el("img");
      img.src = `data:${payload.mime};base64,${payload.data}`;
      img.alt = payload.title ?? "nnprobe picture";
      img.id = "picture";
      root.appendChild(img);
      break;
    }
    case "scatter":
      drawScatter(root, payload);
      break;
    case "findings":
      drawFindings(root, payload);
      break;
    case "unavailable":
      root.appendChild(el("p", "Not available here", "unavailable-heading"));
      root.appendChild(el("p", payload.reason, "message unavailable"));
      break;
  }
}

const source = document.getElementById("payload");
const root = document.getElementById("root");
if (source && root) {
  draw(root, JSON.parse(source.textContent ?? "{}") as Payload);
}

// Small SVG charts for the supervisor dashboard: bars, a donut, a histogram and a line. No library, no CDN.
// Each function replaces the content of `box` with one <svg role="img"> whose aria-label says what it shows.

const NS = "http://www.w3.org/2000/svg";
const W = 320;
const H = 170;
const PAD = { left: 34, right: 8, top: 10, bottom: 26 };

function el(name, attrs = {}, text) {
  const node = document.createElementNS(NS, name);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, String(v));
  if (text !== undefined) node.textContent = text;
  return node;
}

function svg(label, height = H) {
  const root = el("svg", { viewBox: `0 0 ${W} ${height}`, role: "img", "aria-label": label });
  root.append(el("title", {}, label));
  return root;
}

function noData(box, message = "No calls in this range.") {
  const p = document.createElement("p");
  p.className = "nodata";
  p.textContent = message;
  box.replaceChildren(p);
}

/** A "nice" upper bound for an axis (1, 2, 5 × 10^k) at or above `max`. */
function niceMax(max) {
  if (!(max > 0)) return 1;
  const p = 10 ** Math.floor(Math.log10(max));
  for (const m of [1, 2, 5, 10]) if (m * p >= max) return m * p;
  return 10 * p;
}

function yAxis(root, max, format = (v) => String(v), ticks = 4) {
  const plotH = H - PAD.top - PAD.bottom;
  for (let i = 0; i <= ticks; i++) {
    const v = (max * i) / ticks;
    const y = PAD.top + plotH - (plotH * i) / ticks;
    root.append(el("line", { class: i === 0 ? "axis" : "grid-line", x1: PAD.left, x2: W - PAD.right, y1: y, y2: y }));
    root.append(el("text", { x: PAD.left - 4, y: y + 3, "text-anchor": "end" }, format(v)));
  }
}

/** Labels under the x axis, thinned so they do not overlap. */
function xLabels(root, labels, xOf) {
  const every = Math.max(1, Math.ceil(labels.length / 8));
  labels.forEach((label, i) => {
    if (i % every === 0) root.append(el("text", { x: xOf(i), y: H - PAD.bottom + 13, "text-anchor": "middle" }, label));
  });
}

/** Vertical bars: `items` = [{label, value, title}]. */
export function barChart(box, items, { label, unit = "" }) {
  if (!items.length || items.every((d) => !d.value)) return noData(box);
  const root = svg(label);
  // Counts: whole-number ticks (a 1-call day must not read 0.3, 0.5, 0.8).
  const max = Math.max(4, niceMax(Math.max(...items.map((d) => d.value))));
  const ticks = max % 4 === 0 ? 4 : max % 5 === 0 ? 5 : 2;
  yAxis(root, max, (v) => (Number.isInteger(v) ? String(v) : v.toFixed(1)), ticks);
  const plotW = W - PAD.left - PAD.right;
  const plotH = H - PAD.top - PAD.bottom;
  const step = plotW / items.length;
  const bw = Math.max(2, step * 0.72);
  items.forEach((d, i) => {
    const h = (plotH * d.value) / max;
    const bar = el("rect", {
      class: "bar", x: PAD.left + i * step + (step - bw) / 2, y: PAD.top + plotH - h, width: bw, height: Math.max(h, 0),
      rx: 2,
    });
    bar.append(el("title", {}, d.title || `${d.label}: ${d.value}${unit}`));
    root.append(bar);
  });
  xLabels(root, items.map((d) => d.label), (i) => PAD.left + i * step + step / 2);
  box.replaceChildren(root);
}

/** A donut of shares: `parts` = [{label, value, color}]; the centre shows the first part's share. */
export function donut(box, parts, { label, centreLabel }) {
  const total = parts.reduce((s, p) => s + p.value, 0);
  if (!total) return noData(box);
  const height = 150;
  const root = svg(label, height);
  const cx = W / 2;
  const cy = height / 2;
  const r = 58;
  const width = 20;
  let angle = -Math.PI / 2;
  for (const p of parts) {
    if (!p.value) continue;
    const share = p.value / total;
    let node;
    if (share >= 0.9999) {
      node = el("circle", { cx, cy, r, fill: "none", stroke: p.color, "stroke-width": width });
    } else {
      const end = angle + share * 2 * Math.PI;
      const [x1, y1] = [cx + r * Math.cos(angle), cy + r * Math.sin(angle)];
      const [x2, y2] = [cx + r * Math.cos(end), cy + r * Math.sin(end)];
      node = el("path", {
        d: `M ${x1} ${y1} A ${r} ${r} 0 ${share > 0.5 ? 1 : 0} 1 ${x2} ${y2}`,
        fill: "none", stroke: p.color, "stroke-width": width,
      });
      angle = end;
    }
    node.append(el("title", {}, `${p.label}: ${p.value} (${Math.round(share * 100)} %)`));
    root.append(node);
  }
  const first = parts[0];
  root.append(el("text", { x: cx, y: cy + 2, "text-anchor": "middle", style: "font-size:22px;font-weight:700;fill:#172033" },
    `${Math.round((first.value / total) * 100)} %`));
  root.append(el("text", { x: cx, y: cy + 18, "text-anchor": "middle" }, centreLabel || first.label));
  const legend = document.createElement("div");
  legend.className = "legend";
  for (const p of parts) {
    const item = document.createElement("span");
    const swatch = document.createElement("i");
    swatch.style.background = p.color;
    item.append(swatch, `${p.label} ${p.value}`);
    legend.append(item);
  }
  box.replaceChildren(root, legend);
}

/** Histogram of cumulative-free buckets `[{le, n}]` (le = upper edge in ms, null or Infinity = overflow). */
export function histogram(box, buckets, { label, markers = {} }) {
  if (!buckets.length || buckets.every((b) => !b.n)) return noData(box, "No timed replies in this range.");
  const items = buckets.map((b, i) => {
    const lo = i === 0 ? 0 : buckets[i - 1].le;
    const open = b.le == null || !Number.isFinite(Number(b.le));
    return { label: open ? `>${axisS(lo)}` : axisS(b.le), value: b.n, title: `${open ? `over ${fmtMs(lo)}` : `${fmtMs(lo)}–${fmtMs(b.le)}`}: ${b.n} replies` };
  });
  barChart(box, items, { label });
  const root = box.querySelector("svg");
  if (!root) return;
  root.append(el("text", { x: W - PAD.right, y: H - 1, "text-anchor": "end" }, "seconds"));
  // Mark p50 / p95 on the x axis by interpolating inside the bucket that holds them.
  const plotW = W - PAD.left - PAD.right;
  const step = plotW / items.length;
  for (const [name, value] of Object.entries(markers)) {
    if (value == null) continue;
    let i = buckets.findIndex((b) => b.le == null || !Number.isFinite(Number(b.le)) || value <= b.le);
    if (i < 0) i = buckets.length - 1;
    const lo = i === 0 ? 0 : buckets[i - 1].le;
    const hi = Number.isFinite(Number(buckets[i].le)) && buckets[i].le != null ? buckets[i].le : lo * 2 || 1;
    const frac = Math.min(1, Math.max(0, (value - lo) / (hi - lo || 1)));
    const x = PAD.left + (i + frac) * step;
    root.append(el("line", { class: "marker", x1: x, x2: x, y1: PAD.top, y2: H - PAD.bottom }));
    // Labels near the right edge are written leftwards of their line, so neither runs off the plot or over the other.
    const right = x > W * 0.6;
    root.append(el("text", { x: right ? x - 2 : x + 2, y: PAD.top + 8 + (name === "p95" ? 12 : 0),
      "text-anchor": right ? "end" : "start", style: "fill:#172033" }, `${name} ${fmtMs(value)}`));
  }
}

/** Lines of mean and max per point: `points` = [{label, mean, max}], values 0..1; dashed level thresholds. */
export function lineChart(box, points, { label, thresholds = [], empty = "No scored caller turns in this range." }) {
  const valid = points.filter((p) => p.mean != null);
  if (!valid.length) return noData(box, empty);
  const root = svg(label);
  const max = 1;
  yAxis(root, max, (v) => v.toFixed(2).replace(/0$/, ""));
  const plotW = W - PAD.left - PAD.right;
  const plotH = H - PAD.top - PAD.bottom;
  const xOf = (i) => PAD.left + (points.length === 1 ? plotW / 2 : (plotW * i) / (points.length - 1));
  const yOf = (v) => PAD.top + plotH - plotH * Math.min(1, Math.max(0, v / max));
  for (const t of thresholds) {
    root.append(el("line", { class: "threshold", x1: PAD.left, x2: W - PAD.right, y1: yOf(t.value), y2: yOf(t.value) }));
    root.append(el("text", { x: W - PAD.right, y: yOf(t.value) - 3, "text-anchor": "end" }, t.label));
  }
  const path = (key) => points
    .map((p, i) => (p[key] == null ? null : `${xOf(i)},${yOf(p[key])}`))
    .filter(Boolean)
    .join(" L ");
  if (points.some((p) => p.max != null)) root.append(el("path", { class: "line-max", d: `M ${path("max")}` }));
  root.append(el("path", { class: "line-mean", d: `M ${path("mean")}` }));
  points.forEach((p, i) => {
    if (p.mean == null) return;
    const dot = el("circle", { class: "dot-mean", cx: xOf(i), cy: yOf(p.mean), r: 3 });
    dot.append(el("title", {}, `${p.label}: mean ${p.mean.toFixed(2)}${p.max != null ? `, max ${p.max.toFixed(2)}` : ""}`));
    root.append(dot);
  });
  xLabels(root, points.map((p) => p.label), xOf);
  const legend = document.createElement("div");
  legend.className = "legend";
  legend.innerHTML = '<span><i style="background:#d9480f"></i>mean</span><span><i style="background:#9e1419"></i>max (dashed)</span>';
  box.replaceChildren(root, legend);
}

/** Short axis label in seconds: 250 -> "0.25", 1000 -> "1". */
function axisS(ms) {
  return String(Math.round(ms) / 1000);
}

export function fmtMs(ms) {
  if (ms == null || !Number.isFinite(Number(ms))) return "–";
  return ms >= 1000 ? `${(ms / 1000).toFixed(ms % 1000 ? 1 : 0)} s` : `${Math.round(ms)} ms`;
}

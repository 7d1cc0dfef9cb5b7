// Shared by the book's explorers (graph.js, triangle.js, match3.js, coverage.js).
//
// Each explorer is an ES module exporting `render({ model, el })`, the anywidget contract. The
// model holds three values: `spec` (the controls, caption and fixed sizes), `values` (the
// controls' current settings) and `data` (inputs prepared by Python: token tensors as base64
// float64, keyed by the settings they depend on). In a notebook the model is anywidget's; on the
// static book page it is `staticModel(...)` below, fed with the JSON Python wrote at build time.
// Every control change recomputes the explorer's maths from `data` and redraws a canvas
// synchronously, then writes the computed numbers to a JSON text node (read by the book's
// browser test).

export const VIRIDIS = ["#440154", "#472d7b", "#3b528b", "#2c728e", "#21918c", "#28ae80",
  "#5ec962", "#addc30", "#fde725"];
export const RDBU = ["#053061", "#2a71b2", "#6bacd1", "#c2ddec", "#f7f6f6", "#fbccb4", "#e48066",
  "#ba2832", "#67001f"];
export const PALETTE = { dot: "#1f77b4", simplicial: "#d62728", accent: "#2ca02c",
  accent3: "#ff7f0e", masked: "#d9d9d9", ink: "#222222" };
export const FONT = "system-ui, -apple-system, 'Segoe UI', 'DejaVu Sans', sans-serif";

const hexCache = new Map();
function rgb(hex) {
  let c = hexCache.get(hex);
  if (!c) {
    c = [1, 3, 5].map((i) => parseInt(hex.slice(i, i + 2), 16));
    hexCache.set(hex, c);
  }
  return c;
}

/** Colour of t in [0, 1] on a list of hex stops, as [r, g, b]. */
export function colourAt(stops, t) {
  const x = Math.min(1, Math.max(0, Number.isFinite(t) ? t : 0)) * (stops.length - 1);
  const i = Math.min(stops.length - 2, Math.floor(x));
  const f = x - i;
  const a = rgb(stops[i]);
  const b = rgb(stops[i + 1]);
  return [0, 1, 2].map((c) => Math.round(a[c] + f * (b[c] - a[c])));
}

export function css([r, g, b], alpha = 1) {
  return alpha === 1 ? `rgb(${r},${g},${b})` : `rgba(${r},${g},${b},${alpha})`;
}

const luts = new Map();
/** 256 colours of a list of stops, as a flat RGB Uint8Array (for per-pixel drawing). */
export function lut(stops) {
  let out = luts.get(stops);
  if (!out) {
    out = new Uint8Array(256 * 3);
    for (let t = 0; t < 256; t++) out.set(colourAt(stops, t / 255), 3 * t);
    luts.set(stops, out);
  }
  return out;
}

const decoded = new Map();
/** A base64 string of little-endian float64 values (numpy's tobytes) as a Float64Array. */
export function f64(b64) {
  let out = decoded.get(b64);
  if (!out) {
    const bin = atob(b64);
    const bytes = new Uint8Array(bin.length);
    for (let i = 0; i < bin.length; i++) bytes[i] = bin.charCodeAt(i);
    out = new Float64Array(bytes.buffer);
    if (decoded.size > 256) decoded.clear();
    decoded.set(b64, out);
  }
  return out;
}

/** The model of a static page: get/set/on/off/save_changes over a plain object, no kernel. */
export function staticModel(state) {
  const values = { ...state };
  const listeners = new Map();
  return {
    get: (name) => values[name],
    set(name, value) {
      values[name] = value;
      for (const cb of listeners.get(`change:${name}`) || []) cb();
    },
    on(event, cb) {
      if (!listeners.has(event)) listeners.set(event, new Set());
      listeners.get(event).add(cb);
    },
    off(event, cb) {
      if (!event) listeners.clear();
      else if (!cb) listeners.delete(event);
      else listeners.get(event)?.delete(cb);
    },
    save_changes() {},
  };
}

const STYLE = `
.sx-explorer { font-family: ${FONT}; font-size: 14px; color: #222; background: #fff; margin: 0.5em 0 1em;
  padding: 0.4em 0.5em; border-radius: 4px; color-scheme: light; }
.sx-explorer .sx-caption { margin: 0 0 0.5em; font-style: italic; }
.sx-explorer .sx-controls { display: flex; flex-wrap: wrap; gap: 0.35em 1.4em; margin-bottom: 0.5em; }
.sx-explorer .sx-control { display: flex; align-items: center; gap: 0.5em; min-width: 15em; }
.sx-explorer .sx-control label { white-space: nowrap; min-width: 6.5em; }
.sx-explorer .sx-control output { min-width: 3.2em; font-variant-numeric: tabular-nums; }
.sx-explorer input[type=range] { -webkit-appearance: none; appearance: none; width: 9em;
  height: 6px; border-radius: 3px; background: #b8c4d6; outline: none; margin: 0.6em 0; }
.sx-explorer input[type=range]::-webkit-slider-thumb { -webkit-appearance: none; appearance: none;
  width: 16px; height: 16px; border-radius: 50%; background: #1f5fa8; border: 2px solid #fff;
  box-shadow: 0 0 0 1px #1f5fa8; cursor: pointer; }
.sx-explorer input[type=range]::-moz-range-thumb { width: 14px; height: 14px; border-radius: 50%;
  background: #1f5fa8; border: 2px solid #fff; cursor: pointer; }
.sx-explorer input[type=range]:focus-visible { box-shadow: 0 0 0 3px #f0a030; }
.sx-explorer select:focus-visible, .sx-explorer input[type=checkbox]:focus-visible {
  outline: 3px solid #f0a030; }
.sx-explorer select { font: inherit; padding: 0.1em 0.3em; }
.sx-explorer canvas { display: block; max-width: 100%; }
.sx-explorer .sx-note { margin: 0.4em 0 0; font-size: 13px; color: #444; min-height: 1.2em; }
.sx-explorer .sx-state { display: none; }
`;

export function injectStyle(doc = document) {
  if (doc.getElementById("sx-explorer-style")) return;
  const style = doc.createElement("style");
  style.id = "sx-explorer-style";
  style.textContent = STYLE;
  doc.head.appendChild(style);
}

let uid = 0;

function formatValue(spec, value) {
  if (spec.type === "log") return Number(value.toPrecision(3)).toString();
  if (spec.all_at_max && value >= spec.max) return "all";
  return String(value);
}

function controlMax(spec, values) {
  return spec.max_from ? values[spec.max_from] - 1 : spec.max;
}

/**
 * Build the controls described by `specs` into `parent`. Every change writes the new settings
 * to the model (`values`); the model's change:values event redraws. Returns a function that
 * syncs the inputs with the model (after the kernel or a dependent control changed them).
 *
 * Control types: "int" (min, max or max_from, step), "log" (base-10 exponents min, max, step),
 * "values" (a slider over a list), "choice" (a select of [label, value] options), "bool".
 */
export function buildControls(parent, model, specs) {
  const inputs = {};
  const box = document.createElement("div");
  box.className = "sx-controls";
  parent.appendChild(box);
  const set = (name, value) => {
    const values = { ...model.get("values"), [name]: value };
    for (const s of specs) {  // a dependent maximum (query <= n - 1) clamps its control
      if (s.max_from && values[s.name] > values[s.max_from] - 1) values[s.name] = values[s.max_from] - 1;
    }
    model.set("values", values);  // fires change:values: the explorer resyncs and redraws
    model.save_changes();
  };
  for (const spec of specs) {
    const wrap = document.createElement("div");
    wrap.className = "sx-control";
    const id = `sx-${spec.name}-${++uid}`;
    const label = document.createElement("label");
    label.htmlFor = id;
    label.textContent = spec.label;
    wrap.appendChild(label);
    let input;
    const out = document.createElement("output");
    out.htmlFor = id;
    if (spec.type === "choice") {
      input = document.createElement("select");
      for (const [text, value] of spec.options) {
        const opt = document.createElement("option");
        opt.value = JSON.stringify(value);
        opt.textContent = text;
        input.appendChild(opt);
      }
      input.addEventListener("change", () => set(spec.name, JSON.parse(input.value)));
    } else if (spec.type === "bool") {
      input = document.createElement("input");
      input.type = "checkbox";
      input.addEventListener("change", () => set(spec.name, input.checked));
    } else {
      input = document.createElement("input");
      input.type = "range";
      input.addEventListener("input", () => {
        const x = Number(input.value);
        let value = x;
        if (spec.type === "log") value = Number((10 ** x).toPrecision(12));
        if (spec.type === "values") value = spec.values[x];
        set(spec.name, value);
      });
    }
    input.id = id;
    input.dataset.control = spec.name;
    wrap.appendChild(input);
    if (spec.type !== "choice" && spec.type !== "bool") wrap.appendChild(out);
    box.appendChild(wrap);
    inputs[spec.name] = { input, out, spec };
  }
  function sync() {
    const values = model.get("values");
    for (const { input, out, spec } of Object.values(inputs)) {
      const v = values[spec.name];
      if (spec.type === "choice") input.value = JSON.stringify(v);
      else if (spec.type === "bool") input.checked = !!v;
      else {
        if (spec.type === "log") {
          input.min = spec.min; input.max = spec.max; input.step = spec.step;
          input.value = Math.log10(v);
        } else if (spec.type === "values") {
          input.min = 0; input.max = spec.values.length - 1; input.step = 1;
          const at = spec.values.indexOf(v);
          input.value = at < 0 ? 0 : at;
        } else {
          input.min = spec.min; input.max = Math.max(spec.min, controlMax(spec, values));
          input.step = spec.step || 1;
          input.value = v;
        }
        out.textContent = formatValue(spec, v);
        input.setAttribute("aria-valuetext", formatValue(spec, v));
      }
    }
  }
  sync();
  return sync;
}

/**
 * The frame of an explorer: caption, controls, a canvas (role img, with a text alternative
 * updated on every draw), a note line and the JSON state node. `draw(width)` must redraw the
 * canvas and return { state, alt, note }. Redraws on control changes, on `change:data` (a
 * kernel sending new inputs) and on resize.
 */
export function mount({ model, el, name, draw }) {
  injectStyle(el.ownerDocument);
  el.replaceChildren();
  const root = document.createElement("div");
  root.className = `sx-explorer sx-${name}`;
  root.dataset.explorer = name;
  el.appendChild(root);
  const spec = model.get("spec");
  if (spec.caption) {
    const cap = document.createElement("p");
    cap.className = "sx-caption";
    cap.textContent = spec.caption;
    root.appendChild(cap);
  }
  const canvas = document.createElement("canvas");
  canvas.setAttribute("role", "img");
  const note = document.createElement("p");
  note.className = "sx-note";
  note.setAttribute("aria-live", "polite");
  const stateNode = document.createElement("script");
  stateNode.type = "application/json";
  stateNode.className = "sx-state";
  let renders = 0;
  let measured = 0;  // the frame's width, kept by the resize observer (no layout per redraw)
  const redraw = () => {
    const t0 = performance.now();
    if (!measured) {  // the content width (the frame has padding)
      const style = getComputedStyle(root);
      measured = Math.floor(root.clientWidth - parseFloat(style.paddingLeft || 0) - parseFloat(style.paddingRight || 0));
    }
    const width = Math.max(320, measured || 720);
    const result = draw(canvas, width);
    canvas.setAttribute("aria-label", result.alt);
    note.textContent = result.note || "";
    stateNode.textContent = JSON.stringify(result.state);
    renders += 1;
    root.dataset.renders = String(renders);
    root.dataset.renderMs = (performance.now() - t0).toFixed(2);
  };
  const sync = buildControls(root, model, spec.controls);
  root.append(canvas, note, stateNode);
  const onValues = () => { sync(); redraw(); };
  model.on("change:values", onValues);
  model.on("change:data", redraw);
  const observer = typeof ResizeObserver === "undefined" ? null : new ResizeObserver((entries) => {
    const w = Math.floor(entries[entries.length - 1].contentRect.width);
    if (w && Math.abs(w - measured) > 4) { measured = w; redraw(); }
  });
  observer?.observe(root);
  redraw();
  return () => {
    observer?.disconnect();
    model.off("change:values", onValues);
    model.off("change:data", redraw);
  };
}

// ---------------------------------------------------------------------------------------------
// Canvas drawing. Sizes are CSS pixels; the canvas is drawn at the device pixel ratio.
// ---------------------------------------------------------------------------------------------

/** What `draw` returns while the kernel prepares the inputs of the current setting. */
export function pending(canvas, width, values, note) {
  setupCanvas(canvas, width, 40);
  return { state: { values, pending: true }, alt: "waiting for the kernel", note };
}

export function setupCanvas(canvas, width, height) {
  const dpr = window.devicePixelRatio || 1;
  const [w, h] = [Math.round(width * dpr), Math.round(height * dpr)];
  if (canvas.width !== w || canvas.height !== h) {  // resizing reallocates: only when needed
    canvas.width = w;
    canvas.height = h;
    canvas.style.width = `${width}px`;
    canvas.style.height = `${height}px`;
  }
  const ctx = canvas.getContext("2d");
  ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
  ctx.fillStyle = "#ffffff";
  ctx.fillRect(0, 0, width, height);
  return ctx;
}

/** Columns of a grid of `count` panels at least `minWidth` wide in `width` pixels. */
export function columns(width, count, minWidth) {
  return Math.max(1, Math.min(count, Math.floor(width / minWidth)));
}

/**
 * A canvas of `count` panels, each `height` tall and at least `minWidth` wide, under a header of
 * `head` pixels: as many columns as fit in `width`. Returns the 2-D context and `box(p)`, the
 * rectangle `{x, y, w, h}` of panel p (row-major).
 */
export function panelGrid(canvas, width, count, { height, minWidth = 320, head = 0 }) {
  const cols = columns(width, count, minWidth);
  const pw = width / cols;
  const ctx = setupCanvas(canvas, width, head + height * Math.ceil(count / cols));
  const box = (p) => ({ x: (p % cols) * pw, y: head + Math.floor(p / cols) * height, w: pw, h: height });
  return { ctx, box };
}

export function text(ctx, s, x, y, { size = 13, align = "center", baseline = "alphabetic",
  weight = "normal", colour = PALETTE.ink, rotate = 0 } = {}) {
  ctx.save();
  ctx.font = `${weight} ${size}px ${FONT}`;
  ctx.fillStyle = colour;
  ctx.textAlign = align;
  ctx.textBaseline = baseline;
  ctx.translate(x, y);
  if (rotate) ctx.rotate(rotate);
  ctx.fillText(s, 0, 0);
  ctx.restore();
}

/** Text cut with an ellipsis to fit `maxWidth` pixels. */
export function fit(ctx, s, maxWidth, size = 13) {
  ctx.save();
  ctx.font = `${size}px ${FONT}`;
  let out = s;
  while (out.length > 3 && ctx.measureText(out).width > maxWidth) out = out.slice(0, -2);
  ctx.restore();
  return out === s ? s : `${out.slice(0, -1)}…`;
}

function tickStep(count, maxTicks = 7) {
  const raw = Math.max(1, count / maxTicks);
  for (const s of [1, 2, 5, 10, 20, 25, 50, 100]) if (s >= raw) return s;
  return 100;
}

const scratches = new Map();
function scratch(rows, cols) {  // one offscreen canvas per image size, reused
  const key = `${rows}x${cols}`;
  let c = scratches.get(key);
  if (!c) {
    if (scratches.size > 16) scratches.clear();
    c = document.createElement("canvas");
    c.width = cols;
    c.height = rows;
    scratches.set(key, c);
  }
  return c;
}

/**
 * A heatmap of rows x cols cells in the square box (x, y, size, size) or (x, y, w, h).
 * `value(r, c)` returns a number, or null for a masked cell (drawn grey). `norm(v)` maps a
 * value to [0, 1]. Axis ticks are the cell indices.
 */
export function heatmap(ctx, box, rows, cols, value, { stops = VIRIDIS, norm, xlabel, ylabel,
  title, masked = PALETTE.masked } = {}) {
  const { x, y, w, h } = box;
  const off = scratch(rows, cols);
  const octx = off.getContext("2d");
  const img = octx.createImageData(cols, rows);
  const grey = rgb(masked);
  const table = lut(stops);
  const px = img.data;
  for (let r = 0; r < rows; r++) {
    for (let c = 0; c < cols; c++) {
      const v = value(r, c);
      const p = 4 * (r * cols + c);
      if (v === null) {
        px[p] = grey[0]; px[p + 1] = grey[1]; px[p + 2] = grey[2];
      } else {
        const t = norm(v);
        const q = 3 * (t > 0 ? (t < 1 ? Math.round(t * 255) : 255) : 0);  // NaN -> 0
        px[p] = table[q]; px[p + 1] = table[q + 1]; px[p + 2] = table[q + 2];
      }
      px[p + 3] = 255;
    }
  }
  octx.putImageData(img, 0, 0);
  ctx.save();
  ctx.imageSmoothingEnabled = false;
  ctx.drawImage(off, x, y, w, h);
  ctx.restore();
  return frame(ctx, box, rows, cols, { xlabel, ylabel, title });
}

/** Border, index ticks and labels of a rows x cols grid drawn in `box`; returns the cell size. */
export function frame(ctx, box, rows, cols, { xlabel, ylabel, title } = {}) {
  const { x, y, w, h } = box;
  ctx.strokeStyle = "#555";
  ctx.lineWidth = 1;
  ctx.strokeRect(x + 0.5, y + 0.5, w - 1, h - 1);
  const cw = w / cols;
  const ch = h / rows;
  const sx = tickStep(cols);
  for (let c = 0; c < cols; c += sx) text(ctx, String(c), x + (c + 0.5) * cw, y + h + 14, { size: 12 });
  const sy = tickStep(rows);
  for (let r = 0; r < rows; r += sy) {
    text(ctx, String(r), x - 5, y + (r + 0.5) * ch, { size: 12, align: "right", baseline: "middle" });
  }
  if (xlabel) text(ctx, xlabel, x + w / 2, y + h + 31, { size: 13 });
  if (ylabel) text(ctx, ylabel, x - 30, y + h / 2, { size: 13, rotate: -Math.PI / 2 });
  if (title) text(ctx, fit(ctx, title, w + 96, 13), x + w / 2, y - 8, { size: 13, weight: "bold" });
  return { cw, ch };
}

/** A vertical colour bar with labelled ticks: `ticks` is a list of values. */
export function colourbar(ctx, box, { stops = VIRIDIS, norm, ticks, label, format = (v) => String(v) }) {
  const { x, y, w, h } = box;
  for (let i = 0; i < h; i++) {
    ctx.fillStyle = css(colourAt(stops, 1 - i / (h - 1)));
    ctx.fillRect(x, y + i, w, 1);
  }
  ctx.strokeStyle = "#555";
  ctx.strokeRect(x + 0.5, y + 0.5, w - 1, h - 1);
  for (const v of ticks) {
    const ty = y + (1 - norm(v)) * (h - 1);
    ctx.fillStyle = "#555";
    ctx.fillRect(x + w, ty, 4, 1);
    text(ctx, format(v), x + w + 6, ty, { size: 12, align: "left", baseline: "middle" });
  }
  if (label) text(ctx, label, x + w + 46, y + h / 2, { size: 12, rotate: Math.PI / 2 });
}

/** Grouped bars: `series` = [{ values, colour, label }]; y range [lo, hi]. */
export function bars(ctx, box, series, { lo, hi, xlabel, ylabel, title, yticks }) {
  const { x, y, w, h } = box;
  const n = series[0].values.length;
  const ymap = (v) => y + h - ((v - lo) / (hi - lo)) * h;
  ctx.strokeStyle = "#999";
  ctx.lineWidth = 1;
  for (const t of yticks) {
    const ty = Math.round(ymap(t)) + 0.5;
    ctx.strokeStyle = "#e3e3e3";
    ctx.beginPath(); ctx.moveTo(x, ty); ctx.lineTo(x + w, ty); ctx.stroke();
    text(ctx, formatTick(t), x - 5, ty, { size: 12, align: "right", baseline: "middle" });
  }
  const group = w / n;
  const bw = (group * 0.8) / series.length;
  series.forEach((s, si) => {
    ctx.fillStyle = s.colour;
    for (let i = 0; i < n; i++) {
      const v = Math.min(hi, Math.max(lo, s.values[i]));
      const y0 = ymap(Math.max(0, lo));
      const y1 = ymap(v);
      ctx.fillRect(x + i * group + group * 0.1 + si * bw, Math.min(y0, y1), bw, Math.max(1, Math.abs(y1 - y0)));
    }
  });
  ctx.strokeStyle = "#333";
  ctx.beginPath();
  const zy = Math.round(ymap(Math.max(lo, Math.min(hi, 0)))) + 0.5;
  ctx.moveTo(x, zy); ctx.lineTo(x + w, zy); ctx.stroke();
  const step = tickStep(n, 10);
  for (let i = 0; i < n; i += step) text(ctx, String(i), x + (i + 0.5) * group, y + h + 14, { size: 12 });
  if (xlabel) text(ctx, xlabel, x + w / 2, y + h + 31, { size: 13 });
  if (ylabel) text(ctx, ylabel, x - 40, y + h / 2, { size: 13, rotate: -Math.PI / 2 });
  if (title) text(ctx, fit(ctx, title, w + 40, 13), x + w / 2, y - 26, { size: 13, weight: "bold" });
  let lx = x;
  for (const s of series) {  // legend in one row above the plot
    ctx.fillStyle = s.colour;
    ctx.fillRect(lx, y - 16, 12, 12);
    text(ctx, s.label, lx + 16, y - 6, { size: 12, align: "left" });
    ctx.save(); ctx.font = `12px ${FONT}`; lx += 30 + ctx.measureText(s.label).width; ctx.restore();
  }
}

export function formatTick(v) {
  if (v === 0) return "0";
  const a = Math.abs(v);
  return a >= 100 || a < 0.01 ? v.toExponential(0) : Number(v.toPrecision(2)).toString();
}

/** Nice symmetric or positive tick values covering [lo, hi]. */
export function niceTicks(lo, hi, count = 5) {
  const span = hi - lo || 1;
  const raw = span / count;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * mag).find((s) => s >= raw);
  const out = [];
  for (let t = Math.ceil(lo / step) * step; t <= hi + 1e-12; t += step) out.push(Number(t.toPrecision(10)));
  return out;
}

/** Points of n tokens on a circle (token 0 at the top, clockwise), as in the Python figures. */
export function circle(n, cx, cy, r) {
  const pts = [];
  for (let i = 0; i < n; i++) {
    const a = n === 1 ? 0 : (2 * Math.PI * i) / n;
    pts.push([cx + r * Math.cos(a), cy - r * Math.sin(a)]);
  }
  return pts;
}

export function arrow(ctx, [x0, y0], [x1, y1], { width = 1, colour = "#333", shorten = 12, head = 8 }) {
  const dx = x1 - x0;
  const dy = y1 - y0;
  const len = Math.hypot(dx, dy) || 1;
  const ux = dx / len;
  const uy = dy / len;
  const sx = x0 + ux * shorten;
  const sy = y0 + uy * shorten;
  const ex = x1 - ux * shorten;
  const ey = y1 - uy * shorten;
  ctx.strokeStyle = colour;
  ctx.fillStyle = colour;
  ctx.lineWidth = width;
  ctx.beginPath(); ctx.moveTo(sx, sy); ctx.lineTo(ex - ux * head * 0.6, ey - uy * head * 0.6); ctx.stroke();
  ctx.beginPath();
  ctx.moveTo(ex, ey);
  ctx.lineTo(ex - ux * head - uy * head * 0.45, ey - uy * head + ux * head * 0.45);
  ctx.lineTo(ex - ux * head + uy * head * 0.45, ey - uy * head - ux * head * 0.45);
  ctx.closePath();
  ctx.fill();
}

/** Stable order of indices by value, largest first (ties: lower index first). */
export function argsortDesc(values, count = values.length) {
  const idx = Array.from({ length: count }, (_, i) => i);
  idx.sort((a, b) => (values[b] - values[a]) || (a - b));
  return idx;
}

/** Softmax of `logits[0..count)` in place into a new Float64Array (max-subtracted). */
export function softmax(logits, count = logits.length) {
  let m = -Infinity;
  for (let i = 0; i < count; i++) if (logits[i] > m) m = logits[i];
  const out = new Float64Array(count);
  let s = 0;
  for (let i = 0; i < count; i++) { out[i] = Math.exp(logits[i] - m); s += out[i]; }
  for (let i = 0; i < count; i++) out[i] /= s;
  return out;
}

// Graph-attention explorer (chapter 1): the attention weights P of one head as a weighted
// directed graph, its k-th power (k-step walks) and one query's row. Reproduces
// simplex_lib.widgets.graph_explorer.explorer_data in the browser.
import {
  arrow, bars, circle, colourAt, colourbar, css, f64, fit, heatmap, mount, PALETTE, panelGrid,
  pending, softmax, text, VIRIDIS,
} from "./common.js";

/** Row-stochastic attention softmax(q k^T / (sqrt(d) T)) with an optional causal mask. */
export function attentionMatrix(q, k, n, d, temperature, causal) {
  const s = 1 / Math.sqrt(d) / temperature;
  const a = new Float64Array(n * n);
  const logits = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    const m = causal ? i + 1 : n;
    for (let j = 0; j < m; j++) {
      let dot = 0;
      for (let l = 0; l < d; l++) dot += q[i * d + l] * k[j * d + l];
      logits[j] = dot * s;
    }
    const p = softmax(logits, m);
    for (let j = 0; j < m; j++) a[i * n + j] = p[j];
  }
  return a;
}

function matmul(a, b, n) {
  const out = new Float64Array(n * n);
  for (let i = 0; i < n; i++) {
    for (let l = 0; l < n; l++) {
      const x = a[i * n + l];
      if (x === 0) continue;
      for (let j = 0; j < n; j++) out[i * n + j] += x * b[l * n + j];
    }
  }
  return out;
}

/** a^k by repeated squaring (k = 0: the identity). */
export function matrixPower(a, n, k) {
  let result = new Float64Array(n * n);
  for (let i = 0; i < n; i++) result[i * n + i] = 1;
  let base = a;
  let first = true;
  while (k > 0) {
    if (k & 1) { result = first ? base.slice() : matmul(result, base, n); first = false; }
    k >>= 1;
    if (k) base = matmul(base, base, n);
  }
  return result;
}

/** Everything the explorer shows for one setting (the Python function's numbers). */
export function explorerState(values, payload) {
  const { n, temperature, query, hops, causal } = values;
  const d = payload.d;
  const q = f64(payload.q);
  const k = f64(payload.k);
  const v = f64(payload.v);
  const A = attentionMatrix(q, k, n, d, temperature, causal);
  const Ak = matrixPower(A, n, hops);
  const received = new Float64Array(n);
  for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) received[j] += A[i * n + j];
  const out = new Float64Array(n * d);
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < n; j++) {
      const w = Ak[i * n + j];
      for (let l = 0; l < d; l++) out[i * d + l] += w * v[j * d + l];
    }
  }
  return {
    A, Ak, received, out, n, d,
    row: A.slice(query * n, query * n + n),
    row_k: Ak.slice(query * n, query * n + n),
  };
}

const SUPERSCRIPT = "⁰¹²³⁴⁵⁶⁷⁸⁹";
const power = (k) => `P${String(k).split("").map((c) => SUPERSCRIPT[Number(c)]).join("")}`;
const hopsText = (k) => `${k} hop${k === 1 ? "" : "s"}`;

function drawHeatmap(ctx, s, values, box) {
  const { n } = s;
  const side = Math.max(60, Math.min(box.w - 150, box.h - 80));
  const x = box.x + 52;
  const y = box.y + 34;
  const norm = (t) => t;  // fixed scale 0..1: shades compare across settings
  const { ch } = heatmap(ctx, { x, y, w: side, h: side }, n, n, (r, c) => s.Ak[r * n + c], {
    norm, xlabel: "key token j", ylabel: "query token i",
    title: `${power(values.hops)}: weight of ${values.hops}-step walks i → j`,
  });
  ctx.strokeStyle = PALETTE.simplicial;
  ctx.lineWidth = 2;
  ctx.strokeRect(x + 1, y + values.query * ch + 1, side - 2, ch - 2);
  colourbar(ctx, { x: x + side + 12, y, w: 12, h: side }, {
    norm, ticks: [0, 0.25, 0.5, 0.75, 1], label: "weight (probability)",
  });
}

function drawRow(ctx, s, values, box) {
  bars(ctx, { x: box.x + 56, y: box.y + 52, w: box.w - 72, h: box.h - 100 }, [
    { values: s.row, colour: PALETTE.dot, label: "P (one hop)" },
    { values: s.row_k, colour: PALETTE.simplicial, label: `${power(values.hops)} (${hopsText(values.hops)})` },
  ], {
    lo: 0, hi: 1.05, yticks: [0, 0.25, 0.5, 0.75, 1], xlabel: "key token j",
    ylabel: "attention weight", title: `row of query ${values.query}`,
  });
}

function drawGraph(ctx, s, values, box) {
  const { n, A, received } = s;
  const r = Math.max(30, Math.min(box.w, box.h - 60) / 2 - 30);
  const cx = box.x + box.w / 2;
  const cy = box.y + 30 + (box.h - 60) / 2;
  const pts = circle(n, cx, cy, r);
  text(ctx, "graph of P: 2 heaviest out-edges per node", cx, box.y + 16, { size: 13, weight: "bold" });
  const top = Math.min(2, n);
  for (let i = 0; i < n; i++) {
    const row = Array.from({ length: n }, (_, j) => j).filter((j) => A[i * n + j] > 0 && j !== i);
    row.sort((a, b) => A[i * n + b] - A[i * n + a] || a - b);
    for (const j of row.slice(0, top)) {
      const w = A[i * n + j];
      arrow(ctx, pts[i], pts[j], { width: 0.6 + 5 * w, colour: `rgba(25,25,75,${0.2 + 0.75 * w})`, shorten: 14 });
    }
  }
  const rmax = Math.max(...received, 1e-12);
  for (let i = 0; i < n; i++) {
    const [x, y] = pts[i];
    if (i === values.query) {
      ctx.strokeStyle = PALETTE.simplicial; ctx.lineWidth = 3;
      ctx.beginPath(); ctx.arc(x, y, 16, 0, 2 * Math.PI); ctx.stroke();
    }
    const col = colourAt(VIRIDIS, received[i] / rmax);
    ctx.fillStyle = css(col);
    ctx.strokeStyle = "#000"; ctx.lineWidth = 1;
    ctx.beginPath(); ctx.arc(x, y, 11, 0, 2 * Math.PI); ctx.fill(); ctx.stroke();
    const light = col[0] * 0.3 + col[1] * 0.6 + col[2] * 0.1 > 150;
    text(ctx, String(i), x, y + 0.5, { size: 12, baseline: "middle", colour: light ? "#000" : "#fff" });
  }
  text(ctx, fit(ctx, `shade: attention received (max ${rmax.toFixed(2)}); ring: query`, box.w - 8, 12),
    cx, box.y + box.h - 6, { size: 12 });
}

function jsonState(values, s) {
  return {
    values, A: Array.from(s.A), Ak: Array.from(s.Ak), row: Array.from(s.row),
    row_k: Array.from(s.row_k), received: Array.from(s.received), out: Array.from(s.out),
  };
}

/** The numbers the page shows for these settings (null while the inputs are missing). */
export function stateOf(values, spec, data) {
  const payload = data[`${values.seed}/${values.n}`];
  return payload ? jsonState(values, explorerState(values, payload)) : null;
}

export function render({ model, el }) {
  return mount({
    model, el, name: "graph",
    draw(canvas, width) {
      const values = model.get("values");
      const payload = model.get("data")[`${values.seed}/${values.n}`];
      if (!payload) {
        return pending(canvas, width, values, "Computing the tokens for this seed…");
      }
      const s = explorerState(values, payload);
      const { ctx, box } = panelGrid(canvas, width, 3, { height: 340, minWidth: 300 });
      [drawHeatmap, drawRow, drawGraph].forEach((f, p) => f(ctx, s, values, box(p)));
      const sink = s.row_k[0];
      const best = s.row.indexOf(Math.max(...s.row));
      return {
        state: jsonState(values, s),
        alt: `Attention of ${values.n} tokens at temperature ${values.temperature}: query ` +
          `${values.query} puts its largest one-hop weight (${s.row[best].toFixed(2)}) on token ${best}, ` +
          `and after ${hopsText(values.hops)} ${sink.toFixed(2)} of its weight is on token 0.`,
        note: `Query ${values.query}: largest one-hop weight ${s.row[best].toFixed(3)} on token ${best}; ` +
          `after ${hopsText(values.hops)}, weight ${sink.toFixed(3)} on the sink (token 0).`,
      };
    },
  });
}

export default { render };

// Coverage explorer (chapter 7): which key pairs (j, k) each sparsity scheme lets one query of
// 2-simplicial attention see, at what cost, and how much of the dense attention it keeps.
// Reproduces simplex_lib.widgets.coverage_explorer.coverage in the browser.
import {
  argsortDesc, colourbar, f64, fit, frame, heatmap, mount, panelGrid, pending, softmax, text,
} from "./common.js";

export const SCHEMES = ["window", "topk_per_key", "topk_shared"];
const TITLES = {
  window: "sliding windows",
  topk_per_key: "top-k, one indexer per key set",
  topk_shared: "top-k, shared selection",
};

/** Indexer scores of query i over keys j <= i (relu or softmax rule, DSA-style heads). */
function indexerScores(p, set, i, rule) {
  const { HI, DI } = p;
  const qi = f64(p[`qi${set}`]);
  const ki = f64(p[`ki${set}`]);
  const wi = f64(p.wi);
  const s = 1 / Math.sqrt(DI);
  const scores = new Float64Array(i + 1);
  const logits = new Float64Array(i + 1);
  for (let h = 0; h < HI; h++) {
    for (let j = 0; j <= i; j++) {
      let dot = 0;
      for (let l = 0; l < DI; l++) dot += qi[(i * HI + h) * DI + l] * ki[j * DI + l];
      logits[j] = dot * s;
    }
    const per = rule === "relu" ? logits.map((v) => Math.max(0, v)) : softmax(logits);
    const w = wi[i * HI + h];
    for (let j = 0; j <= i; j++) scores[j] += per[j] * w;
  }
  return scores;
}

/** The previous layer's causal softmax weights of query i (tied query and key). */
function previousLayer(p, i) {
  const qp = f64(p.q_prev);
  const d = p.head_dim;
  const logits = new Float64Array(i + 1);
  for (let j = 0; j <= i; j++) {
    let dot = 0;
    for (let l = 0; l < d; l++) dot += qp[i * d + l] * qp[j * d + l];
    logits[j] = dot / Math.sqrt(d);
  }
  return softmax(logits);
}

/** The k best keys (ties: the earlier key), in increasing order. */
function topk(scores, k) {
  return argsortDesc(scores).slice(0, k).sort((a, b) => a - b);
}

let lastDense = null;
/** Dense causal 2-simplicial weights of query i over (j, k) <= i (the last one is cached). */
function denseWeights(p, i) {
  if (lastDense && lastDense.p === p && lastDense.i === i) return lastDense.dense;
  const d = p.head_dim;
  const m = i + 1;
  const q = f64(p.q);
  const k1 = f64(p.k1);
  const k2 = f64(p.k2);
  const logits = new Float64Array(m * m);
  const s = 1 / Math.sqrt(d);
  const qk = new Float64Array(d);
  for (let j = 0; j < m; j++) {
    for (let l = 0; l < d; l++) qk[l] = q[i * d + l] * k1[j * d + l];
    for (let kk = 0; kk < m; kk++) {
      let acc = 0;
      for (let l = 0; l < d; l++) acc += qk[l] * k2[kk * d + l];
      logits[j * m + kk] = acc * s;
    }
  }
  const dense = softmax(logits);
  lastDense = { p, i, dense };
  return dense;
}

export function coverageState(values, p) {
  const { n, w1, w2, k, rule, query: i } = values;
  const d = p.head_dim;
  const m = i + 1;
  const dense = denseWeights(p, i);
  const sel = {
    idx1: topk(indexerScores(p, 1, i, rule), k),
    idx2: topk(indexerScores(p, 2, i, rule), k),
    shared: topk(previousLayer(p, i), k),
  };
  // The pairs each scheme keeps, as lists of rows and columns (a window is a rectangle).
  const range = (lo, hi) => Array.from({ length: hi - lo + 1 }, (_, t) => lo + t);
  const kept = {
    window: [range(Math.max(0, i - w1 + 1), i), range(Math.max(0, i - w2 + 1), i)],
    topk_per_key: [sel.idx1, sel.idx2],
    topk_shared: [sel.shared, sel.shared],
  };
  const masks = {};
  const counts = {};
  const mass = {};
  for (const scheme of SCHEMES) {
    const mask = new Uint8Array(m * m);
    const [rows, cols] = kept[scheme];
    let total = 0;
    for (const j of rows) {
      for (const kk of cols) { mask[j * m + kk] = 1; total += dense[j * m + kk]; }
    }
    masks[scheme] = mask; counts[scheme] = rows.length * cols.length; mass[scheme] = total;
  }
  let overlap = 0;
  for (let t = 0; t < m * m; t++) overlap += masks.window[t] & masks.topk_shared[t];
  const perSet = 2 * p.HI * p.DI * (i + 1);
  return {
    n, m, i, dense, kept, counts, mass, overlap, selections: sel,
    flops: Object.fromEntries(SCHEMES.map((sc) => [sc, 4 * d * counts[sc]])),
    indexer_flops: { window: 0, topk_per_key: 2 * perSet, topk_shared: 0 },
    token: p.tokens[i],
  };
}

function drawDense(ctx, s, box) {
  const side = Math.max(60, Math.min(box.w - 130, box.h - 84));
  const x = box.x + 52;
  const y = box.y + 40;
  let vmax = 0;
  for (const v of s.dense) if (v > vmax) vmax = v;
  const norm = (v) => Math.sqrt(v / vmax);
  heatmap(ctx, { x, y, w: side, h: side }, s.m, s.m, (r, c) => s.dense[r * s.m + c], {
    norm, xlabel: "second key l", ylabel: "first key j",
    title: `dense weights, query ${s.i} (${JSON.stringify(s.token)})`,
  });
  const ticks = [0, vmax / 16, vmax / 4, vmax].map((v) => Number(v.toPrecision(1)));
  colourbar(ctx, { x: x + side + 12, y, w: 12, h: side }, {
    norm, ticks, label: "probability", format: (v) => (v === 0 ? "0" : v.toExponential(0)),
  });
}

function drawScheme(ctx, s, box, scheme) {
  const side = Math.max(60, Math.min(box.w - 70, box.h - 84));
  const x = box.x + 52;
  const y = box.y + 40;
  const cell = side / s.m;
  ctx.fillStyle = "#e0e0e0";  // every causal pair, skipped unless drawn black below
  ctx.fillRect(x, y, side, side);
  ctx.fillStyle = "#111111";
  const [rows, cols] = s.kept[scheme];
  const at = (t) => Math.round(t * cell);  // whole pixels: no seams between neighbouring cells
  const fill = (j0, j1, k0, k1) => ctx.fillRect(x + at(k0), y + at(j0),
    Math.max(1, at(k1) - at(k0)), Math.max(1, at(j1) - at(j0)));
  if (scheme === "window") {  // a rectangle at the diagonal
    fill(rows[0], rows[rows.length - 1] + 1, cols[0], cols[cols.length - 1] + 1);
  } else {
    for (const j of rows) for (const kk of cols) fill(j, j + 1, kk, kk + 1);
  }
  frame(ctx, { x, y, w: side, h: side }, s.m, s.m, { xlabel: "second key l", ylabel: "first key j" });
  text(ctx, fit(ctx, TITLES[scheme], box.w - 10, 13), x + side / 2, box.y + 14, { size: 13, weight: "bold" });
  text(ctx, `${s.counts[scheme]} pairs, ${(100 * s.mass[scheme]).toFixed(1)}% of the mass`,
    x + side / 2, box.y + 31, { size: 13 });
}

function jsonState(values, s) {
  return {
    values, counts: s.counts, flops: s.flops, indexer_flops: s.indexer_flops, mass: s.mass,
    overlap: s.overlap, selections: s.selections,
  };
}

/** The numbers the page shows for these settings (null while the inputs are missing). */
export function stateOf(values, spec, data) {
  return data.text ? jsonState(values, coverageState(values, data.text)) : null;
}

export function render({ model, el }) {
  return mount({
    model, el, name: "coverage",
    draw(canvas, width) {
      const values = model.get("values");
      const payload = model.get("data").text;
      if (!payload) {
        return pending(canvas, width, values, "Preparing the text…");
      }
      const s = coverageState(values, payload);
      const { ctx, box } = panelGrid(canvas, width, 4, { height: 330, head: 26 });
      text(ctx, fit(ctx, `n = ${values.n} tokens, windows ${values.w1} × ${values.w2}, ` +
        `k = ${values.k} (${values.rule} indexer); black = pair seen, grey = skipped`, width - 8, 13),
      width / 2, 17, { size: 13 });
      const panels = [(c, b) => drawDense(c, s, b), ...SCHEMES.map((sc) => (c, b) => drawScheme(c, s, b, sc))];
      panels.forEach((f, p) => f(ctx, box(p)));
      const pct = (sc) => `${(100 * s.mass[sc]).toFixed(1)}%`;
      return {
        state: jsonState(values, s),
        alt: `Query ${s.i} of ${values.n} tokens: dense 2-simplicial weights over its ${s.m * s.m} causal ` +
          `pairs, and the pairs each scheme keeps: windows ${s.counts.window} pairs (${pct("window")} ` +
          `of the mass), per-key-set top-k ${s.counts.topk_per_key} (${pct("topk_per_key")}), shared ` +
          `top-k ${s.counts.topk_shared} (${pct("topk_shared")}).`,
        note: `The window and the shared selection have ` +
          `${s.overlap} pairs in common; the per-key-set indexers cost ` +
          `${s.indexer_flops.topk_per_key.toLocaleString("en")} FLOPs to choose their keys.`,
      };
    },
  });
}

export default { render };

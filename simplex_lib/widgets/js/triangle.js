// Triangle explorer (chapter 3): one query of causal 2-simplicial attention, its (j, l) weight
// slice, its strongest key pairs and its output next to dot-product attention's. Reproduces
// simplex_lib.widgets.triangle_explorer.triangle_state in the browser.
import {
  argsortDesc, bars, circle, colourbar, columns, f64, fit, heatmap, mount, niceTicks, PALETTE,
  pending, setupCanvas, softmax, text,
} from "./common.js";

const TOP = 5;  // key pairs listed

/** The query's weights over visible pairs (j, l), its output and dot-product attention's
 * (over the same first window w1). The state keeps the library's names: k1/v1 for k, v and
 * k2/v2 for k', v'; `triangles` lists the strongest key pairs as (i, j, l, weight). */
export function triangleState(values, payload, maxSeq) {
  const L = values.seq_len;
  const d = values.head_dim;
  const i = values.query;
  const w1 = values.w1 >= maxSeq ? null : values.w1;
  const w2 = values.w2 >= maxSeq ? null : values.w2;
  const [q, k1, k2, v1, v2] = ["q", "k1", "k2", "v1", "v2"].map((name) => f64(payload[name]));
  const scale = 1 / (Math.sqrt(d) * values.temperature);
  const ok1 = (j) => j <= i && (w1 === null || j > i - w1);
  const ok2 = (k) => k <= i && (w2 === null || k > i - w2);
  const cells = [];
  const logits = [];
  for (let j = 0; j < L; j++) {
    if (!ok1(j)) continue;
    for (let k = 0; k < L; k++) {
      if (!ok2(k)) continue;
      let s = 0;
      for (let l = 0; l < d; l++) s += q[i * d + l] * k1[j * d + l] * k2[k * d + l];
      cells.push(j * L + k);
      logits.push(s * scale);
    }
  }
  const slice = new Float64Array(L * L);
  const visible = new Uint8Array(L * L);
  const p = softmax(logits);
  cells.forEach((c, t) => { slice[c] = p[t]; visible[c] = 1; });
  const output = new Float64Array(d);
  cells.forEach((c, t) => {
    const j = Math.floor(c / L);
    const k = c % L;
    for (let l = 0; l < d; l++) {
      const a = v1[j * d + l];
      const b = v2[k * d + l];
      output[l] += p[t] * (values.reducer === "and" ? a * b : a + b);
    }
  });
  const lo = w1 === null ? 0 : Math.max(0, i - w1 + 1);  // dot-product attention over window w1
  const dl = [];
  for (let j = lo; j <= i; j++) {
    let s = 0;
    for (let l = 0; l < d; l++) s += q[i * d + l] * k1[j * d + l];
    dl.push(s * scale);
  }
  const pd = softmax(dl);
  const dotOutput = new Float64Array(d);
  for (let j = lo; j <= i; j++) for (let l = 0; l < d; l++) dotOutput[l] += pd[j - lo] * v1[j * d + l];
  const order = argsortDesc(slice).slice(0, Math.min(TOP, cells.length));
  const triangles = order.map((c) => [i, Math.floor(c / L), c % L, slice[c]]);
  return { slice, visible, output, dotOutput, triangles, w1, w2, L, d, i, scale };
}

const norm = (v) => Math.sqrt(Math.max(0, v));  // fixed 0..1 scale, square-root shading

function drawSlice(ctx, s, box) {
  const side = Math.max(60, Math.min(box.w - 150, box.h - 80));
  const x = box.x + 52;
  const y = box.y + 34;
  const win = (w) => (w === null ? "all" : String(w));
  heatmap(ctx, { x, y, w: side, h: side }, s.L, s.L,
    (r, c) => (s.visible[r * s.L + c] ? s.slice[r * s.L + c] : null), {
      norm, xlabel: "second key l (token)", ylabel: "first key j (token)",
      title: `weights P[${s.i}, j, l]; w1 = ${win(s.w1)}, w2 = ${win(s.w2)}`,
    });
  colourbar(ctx, { x: x + side + 12, y, w: 12, h: side }, {
    norm, ticks: [0, 0.01, 0.05, 0.25, 0.5, 1], label: "weight (grey: masked)",
  });
}

function drawTriangles(ctx, s, box) {
  const r = Math.max(30, Math.min(box.w, box.h - 60) / 2 - 28);
  const cx = box.x + box.w / 2;
  const cy = box.y + 30 + (box.h - 60) / 2;
  const pts = circle(s.L, cx, cy, r);
  const count = s.triangles.length;
  text(ctx, fit(ctx, `${count === 1 ? "the strongest key pair" : `${count} strongest key pairs`} of token ${s.i}`, box.w - 8, 13), cx, box.y + 16,
    { size: 13, weight: "bold" });
  const wmax = Math.max(...s.triangles.map((t) => t[3]), 1e-300);
  const edges = new Map();
  for (const [i, j, k, w] of s.triangles) {
    ctx.fillStyle = `rgba(214,39,40,${(0.6 * w) / wmax})`;
    ctx.beginPath();
    ctx.moveTo(...pts[i]); ctx.lineTo(...pts[j]); ctx.lineTo(...pts[k]); ctx.closePath();
    ctx.fill();
    for (const [a, b] of [[i, j], [i, k], [j, k]]) {
      if (a === b) continue;
      const key = `${Math.min(a, b)}-${Math.max(a, b)}`;
      edges.set(key, (edges.get(key) || 0) + w);
    }
  }
  for (const [key, w] of edges) {
    const [a, b] = key.split("-").map(Number);
    ctx.strokeStyle = "rgba(214,39,40,0.85)";
    ctx.lineWidth = 1 + (5 * w) / wmax;
    ctx.beginPath(); ctx.moveTo(...pts[a]); ctx.lineTo(...pts[b]); ctx.stroke();
  }
  for (let t = 0; t < s.L; t++) {
    const [x, y] = pts[t];
    ctx.fillStyle = t === s.i ? PALETTE.accent3 : "#dddddd";
    ctx.strokeStyle = "#000"; ctx.lineWidth = 1;
    ctx.beginPath(); ctx.arc(x, y, 11, 0, 2 * Math.PI); ctx.fill(); ctx.stroke();
    text(ctx, String(t), x, y + 0.5, { size: 12, baseline: "middle" });
  }
  const [, j, k, w] = s.triangles[0];
  text(ctx, fit(ctx, `strongest: (i, j, l) = (${s.i}, ${j}, ${k}), weight ${w.toFixed(3)}`, box.w - 8, 12), cx,
    box.y + box.h - 6, { size: 12 });
}

function drawOutputs(ctx, s, values, box) {
  const all = [...s.output, ...s.dotOutput];
  const m = Math.max(0.1, ...all.map(Math.abs)) * 1.1;
  const ticks = niceTicks(-m, m, 4);
  bars(ctx, { x: box.x + 64, y: box.y + 52, w: box.w - 84, h: box.h - 100 }, [
    { values: s.output, colour: PALETTE.simplicial,
      label: values.reducer === "and" ? "2-simplicial, AND (v_j ∘ v′_l)" : "2-simplicial, OR (v_j + v′_l)" },
    { values: s.dotOutput, colour: PALETTE.dot, label: "dot-product (q, k, v), window w1" },
  ], {
    lo: -m, hi: m, yticks: ticks, xlabel: "output feature m",
    ylabel: "output o_i[m]", title: `output of query ${s.i}`,
  });
}

function jsonState(values, s) {
  return {
    values, slice: Array.from(s.slice), visible: Array.from(s.visible), triangles: s.triangles,
    output: Array.from(s.output), dot_output: Array.from(s.dotOutput), scale: s.scale,
  };
}

/** The numbers the page shows for these settings (null while the inputs are missing). */
export function stateOf(values, spec, data) {
  const payload = data[`${values.seed}/${values.seq_len}/${values.head_dim}`];
  return payload ? jsonState(values, triangleState(values, payload, spec.max_seq)) : null;
}

export function render({ model, el }) {
  return mount({
    model, el, name: "triangle",
    draw(canvas, width) {
      const values = model.get("values");
      const spec = model.get("spec");
      const key = `${values.seed}/${values.seq_len}/${values.head_dim}`;
      const payload = model.get("data")[key];
      if (!payload) {
        return pending(canvas, width, values, "Computing the tokens for this setting…");
      }
      const s = triangleState(values, payload, spec.max_seq);
      const cols = columns(width, 2, 320);
      const pw = width / cols;
      const ph = 360;
      const rows = cols === 2 ? 2 : 3;
      const oh = 290;  // the output bars
      const ctx = setupCanvas(canvas, width, ph * (rows - 1) + oh);
      drawSlice(ctx, s, { x: 0, y: 0, w: pw, h: ph });
      drawTriangles(ctx, s, { x: cols === 2 ? pw : 0, y: cols === 2 ? 0 : ph, w: pw, h: ph });
      drawOutputs(ctx, s, values, { x: 0, y: (rows - 1) * ph, w: width, h: oh });
      const [, j, k, w] = s.triangles[0];
      const cos = (() => {
        let ab = 0; let aa = 0; let bb = 0;
        for (let l = 0; l < s.d; l++) {
          ab += s.output[l] * s.dotOutput[l]; aa += s.output[l] ** 2; bb += s.dotOutput[l] ** 2;
        }
        return ab / Math.sqrt(aa * bb || 1);
      })();
      const visible = s.visible.reduce((a, b) => a + b, 0);
      return {
        state: jsonState(values, s),
        alt: `Weights of query ${s.i} over ${visible} visible key pairs: the strongest pair ` +
          `(${s.i}, ${j}, ${k}) has weight ${w.toFixed(2)}. Bar chart of the 2-simplicial and ` +
          `dot-product outputs, cosine similarity ${cos.toFixed(2)}.`,
        note: `${visible} visible key pairs; strongest (i, j, l) = (${s.i}, ${j}, ${k}), weight ` +
          `${w.toFixed(3)}; cosine of the two outputs ${cos.toFixed(2)}.`,
      };
    },
  });
}

export default { render };

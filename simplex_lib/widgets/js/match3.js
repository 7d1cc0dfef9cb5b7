// Match3 explorer (chapter 5): the Theorem 5.1 head on one input, one query at a time.
// Reproduces simplex_lib.widgets.match3_explorer.explorer_state in the browser: the head's
// logits are c cos(2 pi (x_i + x_j1 + x_j2) / M), the blank pair's logit is c.
import {
  colourbar, heatmap, mount, PALETTE, panelGrid, pending, RDBU, text, VIRIDIS,
} from "./common.js";

const ATTENDED_SHARE = 0.01;
const PSI_TOLERANCE = 1e-9;

export const cLowerBound = (n, M) => (2 * Math.log(n)) / (1 - Math.cos((2 * Math.PI) / M));
export const defaultC = (n, M) => (2 * Math.log(n) + Math.log(3)) / (1 - Math.cos((2 * Math.PI) / M));

/** 3^-1 mod M (M not divisible by 3): the value of the adversarial all-equal input. */
export function inverseOf3(M) {
  for (let v = 1; v < M; v++) if ((3 * v) % M === 1 % M) return v;
  return 0;
}

export function explorerState(values, x) {
  const { M, i } = values;
  const n = x.length;
  const c = values.c_factor * defaultC(n, M);
  const th = x.map((t) => (2 * Math.PI * t) / M);
  const logits = new Float64Array(n * n);
  let m = c;  // the blank pair's logit is c (q . k_blank)
  for (let a = 0; a < n; a++) {
    for (let b = 0; b < n; b++) {
      const v = c * Math.cos(th[i] + th[a] + th[b]);
      logits[a * n + b] = v;
      if (v > m) m = v;
    }
  }
  const w = logits.map((v) => Math.exp(v - m));
  const wb = Math.exp(c - m);
  const regular = w.reduce((s, v) => s + v, 0);
  const denom = regular + wb;
  const weights = w.map((v) => v / denom);
  const z = regular / denom;
  const matches = [];
  for (let a = 0; a < n; a++) for (let b = 0; b < n; b++) if ((x[i] + x[a] + x[b]) % M === 0) matches.push([a, b]);
  const attended = Array.from(weights.keys()).filter((t) => weights[t] >= ATTENDED_SHARE)
    .sort((s, t) => weights[t] - weights[s] || s - t).map((t) => [Math.floor(t / n), t % n]);
  const prediction = z >= 0.5 - PSI_TOLERANCE ? 1 : 0;
  const label = matches.length > 0 ? 1 : 0;
  return {
    x, n, i, M, c, c_star: n > 1 ? cLowerBound(n, M) : 0, scores: logits.map((v) => v / c),
    weights, blank_weight: wb / denom, z, prediction, label, correct: prediction === label,
    matches, attended,
  };
}

/** The input tokens: adversarial (computed here) or random (from data); x null if missing. */
export function inputOf(values, data) {
  let note = "";
  if (values.kind === "adversarial") {
    if (values.M % 3 !== 0) return { x: new Array(values.n).fill(inverseOf3(values.M)), note };
    note = "The adversarial input needs 3 ∤ M; showing the random input.";
  }
  const payload = data[`random/${values.seed}/${values.n}/${values.M}`];
  return { x: payload ? payload.x : null, note };
}

function jsonState(values, s) {
  return {
    values, x: s.x, c: s.c, c_star: s.c_star, scores: Array.from(s.scores),
    weights: Array.from(s.weights), blank_weight: s.blank_weight, z: s.z,
    prediction: s.prediction, label: s.label, correct: s.correct, matches: s.matches,
    attended: s.attended,
  };
}

/** The numbers the page shows for these settings (null while the inputs are missing). */
export function stateOf(values, spec, data) {
  const { x } = inputOf(values, data);
  return x ? jsonState(values, explorerState(values, x)) : null;
}

function drawPanel(ctx, s, box, which) {
  const side = Math.max(60, Math.min(box.w - 150, box.h - 80));
  const x = box.x + 56;
  const y = box.y + 34;
  const n = s.n;
  if (which === "scores") {
    const norm = (v) => (v + 1) / 2;  // fixed: logit / c lies in [-1, 1]
    heatmap(ctx, { x, y, w: side, h: side }, n, n, (r, c) => s.scores[r * n + c], {
      stops: RDBU, norm, xlabel: "second key l", ylabel: "first key j",
      title: `scores of query i = ${s.i} (x_i = ${s.x[s.i]}, M = ${s.M})`,
    });
    colourbar(ctx, { x: x + side + 12, y, w: 12, h: side }, {
      stops: RDBU, norm, ticks: [-1, -0.5, 0, 0.5, 1], label: "logit / c",
    });
  } else {
    const norm = (v) => Math.sqrt(Math.max(0, v));  // fixed 0..1, square-root shading
    const { cw, ch } = heatmap(ctx, { x, y, w: side, h: side }, n, n, (r, c) => s.weights[r * n + c], {
      stops: VIRIDIS, norm, xlabel: "second key l", ylabel: "first key j",
      title: `weights; blank pair ${s.blank_weight.toFixed(2)}, z = ${s.z.toFixed(2)}`,
    });
    ctx.strokeStyle = PALETTE.accent;
    ctx.lineWidth = 2;
    for (const [a, b] of s.matches) ctx.strokeRect(x + b * cw + 1.5, y + a * ch + 1.5, cw - 3, ch - 3);
    colourbar(ctx, { x: x + side + 12, y, w: 12, h: side }, {
      norm, ticks: [0, 0.01, 0.05, 0.25, 0.5, 1], label: "weight (green: match)",
    });
  }
}

export function render({ model, el }) {
  return mount({
    model, el, name: "match3",
    draw(canvas, width) {
      const values = model.get("values");
      const chosen = inputOf(values, model.get("data"));
      const { x } = chosen;
      if (!x) {
        return pending(canvas, width, values, "Drawing this input…");
      }
      const s = explorerState(values, x);
      const { ctx, box } = panelGrid(canvas, width, 2, { height: 350, head: 48 });
      const verdict = s.correct ? "correct" : "WRONG";
      text(ctx, `c = ${s.c.toPrecision(3)} (tight bound c* = ${s.c_star.toPrecision(3)}): predicted ` +
        `${s.prediction}, true label ${s.label} (${verdict})`, width / 2, 18,
      { size: 14, weight: "bold", colour: s.correct ? PALETTE.ink : PALETTE.simplicial });
      text(ctx, `input x = [${s.x.join(", ")}]`, width / 2, 38, { size: 13 });
      ["scores", "weights"].forEach((which, p) => {
        drawPanel(ctx, s, box(p), which);
      });
      const pairs = s.attended.slice(0, 8).map(([a, b]) => `(${a}, ${b})`).join(" ");
      return {
        state: jsonState(values, s),
        alt: `Scores and attention weights of query ${s.i} over all ${s.n * s.n} key pairs; ` +
          `${s.matches.length} matching pairs; the blank pair holds ${s.blank_weight.toFixed(2)}, ` +
          `z = ${s.z.toFixed(2)}, prediction ${s.prediction}, true label ${s.label} (${verdict}).`,
        note: `${chosen.note ? `${chosen.note} ` : ""}z = ${s.z.toFixed(4)}; attended pairs ` +
          `(j, l): ${pairs || "none above 1%"}`,
      };
    },
  });
}

export default { render };

// Line charts as inline SVG: no library, no build step.
"use strict";
const SVG = "http://www.w3.org/2000/svg";

function el(name, attrs, parent) {
  const node = document.createElementNS(SVG, name);
  for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, v);
  if (parent) parent.appendChild(node);
  return node;
}

function niceTicks(lo, hi, n) {
  if (hi === lo) { hi = lo + 1; }
  const step = Math.pow(10, Math.floor(Math.log10((hi - lo) / n)));
  const mult = [1, 2, 5, 10].find(m => (hi - lo) / (step * m) <= n) || 10;
  const s = step * mult, ticks = [];
  for (let t = Math.ceil(lo / s) * s; t <= hi + 1e-12; t += s) ticks.push(+t.toPrecision(6));
  return ticks;
}

// series: [{name, color, points: [[x, y], ...]}]
function lineChart(id, title, xLabel, series, width = 540, height = 260) {
  const wrap = document.createElement("div");
  wrap.className = "chart";
  wrap.innerHTML = `<h3>${title}</h3>`;
  const pad = {l: 48, r: 12, t: 8, b: 34};
  const svg = el("svg", {id, width, height, viewBox: `0 0 ${width} ${height}`, role: "img",
                         "aria-label": title}, null);
  wrap.appendChild(svg);
  const pts = series.flatMap(s => s.points).filter(p => Number.isFinite(p[1]));
  if (!pts.length) {
    el("text", {x: width / 2, y: height / 2, "text-anchor": "middle", fill: "#77809a"}, svg)
      .textContent = "no data yet";
    return wrap;
  }
  const xs = pts.map(p => p[0]), ys = pts.map(p => p[1]);
  const x0 = Math.min(...xs), x1 = Math.max(...xs) === x0 ? x0 + 1 : Math.max(...xs);
  let y0 = Math.min(...ys), y1 = Math.max(...ys);
  if (y0 === y1) { y0 -= 0.5; y1 += 0.5; }
  const X = x => pad.l + (x - x0) / (x1 - x0) * (width - pad.l - pad.r);
  const Y = y => height - pad.b - (y - y0) / (y1 - y0) * (height - pad.t - pad.b);
  for (const t of niceTicks(y0, y1, 5)) {
    el("line", {x1: pad.l, x2: width - pad.r, y1: Y(t), y2: Y(t), stroke: "#e7e9ef"}, svg);
    el("text", {x: pad.l - 6, y: Y(t) + 4, "text-anchor": "end", "font-size": 11, fill: "#5b6478"}, svg)
      .textContent = t;
  }
  for (const t of niceTicks(x0, x1, 6)) {
    el("text", {x: X(t), y: height - pad.b + 16, "text-anchor": "middle", "font-size": 11,
                fill: "#5b6478"}, svg).textContent = t;
  }
  el("text", {x: (width + pad.l) / 2, y: height - 4, "text-anchor": "middle", "font-size": 11,
              fill: "#5b6478"}, svg).textContent = xLabel;
  series.forEach((s, i) => {
    const good = s.points.filter(p => Number.isFinite(p[1]));
    const d = good.map((p, j) => `${j ? "L" : "M"}${X(p[0]).toFixed(1)},${Y(p[1]).toFixed(1)}`).join("");
    el("path", {d, fill: "none", stroke: s.color, "stroke-width": 2, class: "series",
                "data-series": s.name, "data-points": good.length}, svg);
    if (good.length < 30) good.forEach(p => el("circle", {cx: X(p[0]), cy: Y(p[1]), r: 3, fill: s.color}, svg));
    el("text", {x: width - pad.r - 4, y: pad.t + 12 + i * 14, "text-anchor": "end", "font-size": 11,
                fill: s.color}, svg).textContent = s.name;
  });
  return wrap;
}

// Line charts drawn by uPlot (vendored in vendor/, no build step, no CDN).
"use strict";
let CHARTS = {};  // the open page's charts by id: destroyed before it renders again

function clearCharts() {
  Object.values(CHARTS).forEach(chart => chart.destroy());
  CHARTS = {};
}

// series: [{name, color, points: [[x, y], ...]}], each on x values of its own (uPlot.join
// aligns them, leaving gaps that the line spans).
function lineChart(id, title, xLabel, series, width = 540, height = 260) {
  const wrap = document.createElement("div");
  wrap.className = "chart";
  wrap.id = id;
  wrap.innerHTML = `<h3>${esc(title)}</h3>`;
  const drawn = series.map(s => ({...s, points: s.points.filter(p => p.every(Number.isFinite))
    .sort((a, b) => a[0] - b[0])})).filter(s => s.points.length);
  if (!drawn.length) {
    wrap.insertAdjacentHTML("beforeend", '<p class="muted">no data yet</p>');
    return wrap;
  }
  const data = uPlot.join(drawn.map(s => [s.points.map(p => p[0]), s.points.map(p => p[1])]));
  CHARTS[id] = new uPlot({
    width, height,
    scales: {x: {time: false}},
    axes: [{label: xLabel}, {}],
    legend: {live: false},  // the names only: values under the cursor read as "--" at rest
    series: [{label: xLabel}, ...drawn.map(s => ({label: s.name, stroke: s.color, width: 2,
      spanGaps: true, points: {show: s.points.length < 30}}))],
  }, data, wrap);
  return wrap;
}

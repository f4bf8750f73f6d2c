// One job: what it runs (base model, data, hyperparameters), where it stands (progress
// with ETA, or why it waits), its curves and report, its live log, and Cancel.
"use strict";

const TERMINAL = ["succeeded", "failed", "cancelled"];
const COLORS = ["#1d5fd1", "#d1471d", "#1d9a5f", "#8a3fd1", "#c99a06", "#0a8fa3"];

function clock(seconds) {
  if (seconds == null || !isFinite(seconds) || seconds < 0) return "?";
  const s = Math.round(seconds);
  return `${Math.floor(s / 3600)}:${String(Math.floor(s % 3600 / 60)).padStart(2, "0")}:${String(s % 60).padStart(2, "0")}`;
}

const secondsBetween = (a, b) => (new Date(b) - new Date(a)) / 1000;

function progressHtml(job) {
  const p = job.progress || {};
  if (job.state === "pending") {
    return `<p id="waiting">waiting: ${esc(job.reason || job.reason_code)}${job.queue_position ? ` · position ${job.queue_position}` : ""}
      ${job.estimated_start ? ` · estimated start ${when(job.estimated_start)}` : ""}</p>`;
  }
  const [done, total] = p.total !== undefined ? [p.done, p.total] : [p.step, p.total_steps];
  if (done == null) return "";
  const share = TERMINAL.includes(job.state) && job.state === "succeeded" ? 1 : (total ? Math.min(1, done / total) : 0);
  // The job's own ETA (a time-smoothed rate), counted from when it was reported.
  const eta = p.eta_s != null && p.at ? p.eta_s - secondsBetween(p.at, new Date().toISOString()) : null;
  const what = p.total !== undefined ? `${done}/${total} inputs` :
    `step ${done}${total ? "/" + total : ""} · epoch ${esc(p.epoch)}${p.epochs ? "/" + p.epochs : ""}`;
  return `<div id="progress"><progress max="1" value="${share}"></progress> ${Math.round(share * 100)}% · ${what}
    ${TERMINAL.includes(job.state) ? "" : ` · ETA ${clock(eta == null ? null : Math.max(0, eta))}`}</div>`;
}

function detailsHtml(job) {
  const spec = job.spec || {};
  const used = (job.metrics || {}).hyperparameters_used || spec.hyperparameters || {};
  const data = [spec.train_dataset && `train ${spec.train_dataset}`,
    spec.validation_dataset && `validation ${spec.validation_dataset}`,
    spec.dataset && `input ${spec.dataset}`].filter(Boolean).join(" · ");
  const ran = job.started_at ? secondsBetween(job.started_at, job.finished_at || new Date().toISOString()) : null;
  const hyper = Object.entries(used).filter(([k]) => k !== "auto")
    .map(([k, v]) => `<tr><th>${esc(k)}</th><td>${esc(typeof v === "object" ? JSON.stringify(v) : v)}</td></tr>`).join("");
  return `<table class="details" id="details">
    <tr><th>base model</th><td>${esc(spec.base_model || spec.model || "")}</td></tr>
    <tr><th>data</th><td>${esc(data)}</td></tr>
    <tr><th>submitted</th><td>${when(job.created_at)}</td></tr>
    <tr><th>duration</th><td id="duration">${ran == null ? "not started" : clock(ran)}</td></tr>
    ${job.model_name ? `<tr><th>model</th><td>${esc(job.model_name)}</td></tr>` : ""}
    </table>${hyper ? `<details open><summary>Hyperparameters</summary><table class="details" id="hyperparameters">${hyper}</table></details>` : ""}`;
}

// Held-out loss after each epoch (of a job with validation data), on the step axis of
// the training loss: the report's history has each evaluation's step; while the job
// runs, an epoch ends after its share of the steps.
function heldOutLoss(job, progress, evals) {
  const history = ((job.metrics || {}).report || {}).history;
  if (Array.isArray(history) && history.some(h => typeof h.step === "number")) {
    return history.map(h => [h.step, h.loss]).filter(p => Number.isFinite(p[1]));
  }
  const last = progress[progress.length - 1];
  if (!last || !last.total_steps || !last.epochs) return [];
  return evals.map(e => [Math.round(e.epoch * last.total_steps / last.epochs), e.loss])
    .filter(p => Number.isFinite(p[1]));
}

// A finished chat fine-tune that stored its model: the playground can ask it.
const hasChatModel = job => job.task === "causal-lm" && job.state === "succeeded" &&
  Boolean(job.model_name) && (job.metrics || {}).model_version != null;

function renderJob(job, events, logLines) {
  clearCharts();
  const progress = events.filter(e => e.kind === "progress").map(e => e.data).filter(p => p.step !== undefined);
  const evals = events.filter(e => e.kind === "evaluation").map(e => e.data);
  const states = events.filter(e => e.kind === "state");
  const metricNames = [...new Set(evals.flatMap(e => Object.keys(e)))]
    .filter(k => k !== "epoch" && evals.some(e => typeof e[k] === "number") && !/loss|runtime|per_s/.test(k));
  const heldOut = heldOutLoss(job, progress, evals);
  const canCancel = ["member", "admin"].includes(TEAM.role) && !TERMINAL.includes(job.state);
  main.innerHTML = `<div class="card"><h2>${esc(job.id)} <span class="state ${esc(job.state)}" id="job-state">${esc(job.state)}</span>
    ${canCancel ? '<button id="cancel">Cancel job</button>' : ""}</h2>
    <p>${esc(job.type)} ${esc(job.task)} · worker ${esc(job.worker)} · attempt ${esc(job.attempt)}/${esc(job.max_attempts)}
    ${job.error ? `<br><span class="error">${esc(job.error)}</span>` : ""}</p>
    ${progressHtml(job)}${detailsHtml(job)}</div>
    <div class="charts" id="charts"></div>
    <div class="card" id="report"><h2>Evaluation report</h2>${reportHtml(job)}</div>
    ${hasChatModel(job) ? '<div class="card" id="playground"></div>' : ""}
    <div class="card"><h2>Log</h2><pre id="log">${logLines.map(l =>
      `${esc(new Date(l.at).toLocaleTimeString())} ${esc(l.level.padEnd(7))} ${esc(l.message)}`).join("\n")}</pre></div>
    <div class="card"><h2>History</h2><table>${states.map(e => `<tr><td>${when(e.at)}</td>
    <td>${esc(e.old_state || "-")} → ${esc(e.new_state)}</td><td>${esc(e.reason)}</td></tr>`).join("")}</table></div>`;
  const log = document.getElementById("log");
  log.scrollTop = log.scrollHeight;
  if (canCancel) document.getElementById("cancel").onclick = () => cancelJob(job.id);
  const download = document.getElementById("download-output");
  if (download) download.onclick = ev => { ev.preventDefault(); downloadOutput(job.id); };
  if (job.type !== "finetune") return;
  const charts = document.getElementById("charts");
  charts.appendChild(lineChart("loss-chart", heldOut.length ? "Loss by step" : "Training loss by step", "step",
    [{name: "training loss", color: COLORS[0], points: progress.map(p => [p.step, p.loss])},
     {name: "held-out loss", color: COLORS[1], points: heldOut}]));
  charts.appendChild(lineChart("throughput-chart", "Tokens per second by step", "step",
    [{name: "tokens/s", color: COLORS[2], points: progress.map(p => [p.step, p.tokens_per_s])}]));
  charts.appendChild(lineChart("metrics-chart", "Evaluation metrics by epoch", "epoch",
    metricNames.map((k, i) => ({name: k, color: COLORS[(i + 1) % COLORS.length], points: evals.map(e => [e.epoch, e[k]])}))));
}

async function cancelJob(id) {
  if (!confirm(`Cancel ${id}? A running job stops at its next step, after a checkpoint.`)) return;
  const button = document.getElementById("cancel");
  button.disabled = true;
  try {
    await api(`/v1/jobs/${encodeURIComponent(id)}/cancel`, {method: "POST"});
  } catch (err) {
    button.insertAdjacentHTML("afterend", ` <span class="error">${esc(err.message)}</span>`);
  }
}

async function newLogLines(id, after) {
  const page = await api(`/v1/jobs/${encodeURIComponent(id)}/logs?after=${after}&limit=1000`);
  return [page.data.flatMap(batch => batch.lines), page.next_after];
}

async function jobPage(id) {
  const job = await api(`/v1/jobs/${encodeURIComponent(id)}`);
  const events = await allEvents(id);
  const [lines, logAfter] = await newLogLines(id, 0);
  renderJob(job, events, lines);
  await mountPlayground(job);
  // Live while it runs, in the background: the page is ready now.
  let stopped = false;
  live = {stop: () => { stopped = true; }};
  follow(id, job, events, lines, logAfter, () => stopped).catch(err => {
    if (!stopped) main.insertAdjacentHTML("afterbegin", `<p class="error">${esc(err.message)}</p>`);
  });
}

// New events and log lines every 2 s (fetch can send the key; EventSource cannot send
// headers), until the job ends or the page is left.
async function follow(id, job, events, lines, logAfter, stopped) {
  while (!stopped() && !TERMINAL.includes(job.state)) {
    await new Promise(r => setTimeout(r, 2000));
    if (stopped()) return;
    const after = events.length ? events[events.length - 1].id : 0;
    const page = await api(`/v1/jobs/${encodeURIComponent(id)}/events?after=${after}&limit=1000`);
    const [more, next] = await newLogLines(id, logAfter);
    job = await api(`/v1/jobs/${encodeURIComponent(id)}`);
    events = events.concat(page.data);
    lines = lines.concat(more).slice(-2000);
    logAfter = next;
    if (stopped()) return;
    renderJob(job, events, lines);
    await mountPlayground(job);
  }
}

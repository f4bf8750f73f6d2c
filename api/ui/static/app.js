// The tunepool dashboard: hash routes over the /v1 API, the team key from localStorage.
"use strict";
const KEY = "tunepool.apiKey";
const main = document.getElementById("main");
const esc = s => String(s ?? "").replace(/[&<>"']/g, c => ({"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;"}[c]));
const num = (v, d = 4) => typeof v === "number" ? v.toFixed(d) : esc(v);
const when = iso => iso ? new Date(iso).toLocaleString() : "";
let live = null;  // the EventSource-like poller of the open job page

// A key may arrive once in the fragment (#key=...): stored, then removed from the address.
(function takeKeyFromFragment() {
  const m = location.hash.match(/[#&?]key=([^&]+)/);
  if (m) {
    localStorage.setItem(KEY, decodeURIComponent(m[1]));
    location.hash = location.hash.replace(/[?&]?key=[^&]+/, "").replace(/^#$/, "") || "#/jobs";
  }
})();

async function api(path) {
  const resp = await fetch(path, {headers: {Authorization: `Bearer ${localStorage.getItem(KEY)}`}});
  const body = await resp.json().catch(() => ({}));
  if (resp.status === 401) { localStorage.removeItem(KEY); throw new Error("the key was refused"); }
  if (!resp.ok) throw new Error(body.error ? body.error.message : `HTTP ${resp.status}`);
  return body;
}

function login(message) {
  main.replaceChildren(document.getElementById("login").content.cloneNode(true));
  document.getElementById("login-error").textContent = message || "";
  document.getElementById("login-form").onsubmit = ev => {
    ev.preventDefault();
    localStorage.setItem(KEY, document.getElementById("key").value.trim());
    route();
  };
}

document.getElementById("logout").onclick = () => { localStorage.removeItem(KEY); route(); };

async function route() {
  if (live) { live.stop(); live = null; }
  if (!localStorage.getItem(KEY)) { document.getElementById("logout").hidden = true; return login(); }
  document.getElementById("logout").hidden = false;
  const [_, page, id] = (location.hash || "#/jobs").slice(1).split("/");
  try {
    const team = await api("/v1/teams/me");
    document.getElementById("team").textContent = `team ${team.name}`;
    if (page === "jobs" && id) await jobPage(id);
    else if (page === "pool") await poolPage();
    else if (page === "models") await modelsPage();
    else await jobsPage();
    document.body.dataset.ready = "1";
  } catch (err) {
    if (!localStorage.getItem(KEY)) return login(err.message);
    main.innerHTML = `<p class="error">${esc(err.message)}</p>`;
  }
}

// Training reports steps; batch inference reports inputs done of a total.
const stepOf = p => (p.total !== undefined ? `${p.done}/${p.total}` : p.step);

async function jobsPage() {
  const page = await api("/v1/jobs?limit=100");
  const rows = page.data.map(j => `<tr>
    <td><a href="#/jobs/${esc(j.id)}">${esc(j.id)}</a></td><td>${esc(j.type)}</td>
    <td><span class="state ${esc(j.state)}">${esc(j.state)}</span></td>
    <td>${j.state === "pending" ? esc(j.reason || j.reason_code) + (j.queue_position ? ` (position ${j.queue_position})` : "") : ""}</td>
    <td>${esc(j.worker)}</td><td class="num">${esc(stepOf(j.progress || {}))}</td>
    <td>${esc(j.model_name)}</td><td>${when(j.created_at)}</td></tr>`).join("");
  main.innerHTML = `<div class="card"><h2>Jobs</h2><table id="jobs"><tr><th>Job</th><th>Type</th>
    <th>State</th><th>Why it waits</th><th>Worker</th><th>Step</th><th>Model</th><th>Submitted</th></tr>
    ${rows || '<tr><td colspan="8" class="muted">no jobs yet</td></tr>'}</table></div>`;
}

async function allEvents(id) {
  const events = [];
  let after = 0;
  for (;;) {
    const page = await api(`/v1/jobs/${encodeURIComponent(id)}/events?after=${after}&limit=1000`);
    events.push(...page.data);
    if (page.data.length < 1000) return events;
    after = page.next_after;
  }
}

function reportTable(title, rows, f1) {
  const avg = ["micro avg", "macro avg", "weighted avg"];
  const labels = Object.keys(rows).filter(k => typeof rows[k] === "object" && !avg.includes(k)).sort()
    .concat(avg.filter(a => a in rows));
  return `<h3>${esc(title)}</h3><table class="report"><tr><th></th><th>precision</th><th>recall</th>
    <th>f1</th><th>support</th></tr>${labels.map(l => `<tr><th>${esc(l)}</th>
    <td class="num">${num(rows[l].precision)}</td><td class="num">${num(rows[l].recall)}</td>
    <td class="num">${num(rows[l][f1])}</td><td class="num">${esc(rows[l].support)}</td></tr>`).join("")}</table>`;
}

function renderJob(job, events) {
  const progress = events.filter(e => e.kind === "progress").map(e => e.data);
  const evals = events.filter(e => e.kind === "evaluation").map(e => e.data);
  const states = events.filter(e => e.kind === "state");
  const metricNames = [...new Set(evals.flatMap(e => Object.keys(e)))]
    .filter(k => k !== "epoch" && evals.some(e => typeof e[k] === "number") && !/loss|runtime|per_s/.test(k));
  const colors = ["#1d5fd1", "#d1471d", "#1d9a5f", "#8a3fd1", "#c99a06", "#0a8fa3"];
  const report = ((job.metrics || {}).report || {});
  const body = report.report || report;
  const entity = ((body.entity || {}).default);
  let reportHtml = '<p class="muted">no evaluation report yet</p>';
  if (entity || body.token) {
    reportHtml = (entity ? reportTable("Entity level (seqeval)", entity, "f1-score") : "") +
      (body.token ? reportTable("Token level", body.token, "f1") : "") +
      (report.best_epoch != null ? `<p>best epoch ${esc(report.best_epoch)} by ${esc(report.metric_for_best || "f1")}</p>` : "");
  }
  main.innerHTML = `<div class="card"><h2>${esc(job.id)} <span class="state ${esc(job.state)}">${esc(job.state)}</span></h2>
    <p>${esc(job.type)} ${esc(job.task)} · model ${esc(job.model_name)} · worker ${esc(job.worker)} ·
    attempt ${esc(job.attempt)}/${esc(job.max_attempts)} ${job.state === "pending" ? "· waiting: " + esc(job.reason) : ""}
    ${job.error ? `<br><span class="error">${esc(job.error)}</span>` : ""}</p></div>
    <div class="charts" id="charts"></div>
    <div class="card" id="report"><h2>Evaluation report</h2>${reportHtml}</div>
    <div class="card"><h2>History</h2><table>${states.map(e => `<tr><td>${when(e.at)}</td>
    <td>${esc(e.old_state || "-")} → ${esc(e.new_state)}</td><td>${esc(e.reason)}</td></tr>`).join("")}</table></div>`;
  const charts = document.getElementById("charts");
  charts.appendChild(lineChart("loss-chart", "Training loss by step", "step",
    [{name: "loss", color: colors[0], points: progress.map(p => [p.step, p.loss])}]));
  charts.appendChild(lineChart("throughput-chart", "Tokens per second by step", "step",
    [{name: "tokens/s", color: colors[2], points: progress.map(p => [p.step, p.tokens_per_s])}]));
  charts.appendChild(lineChart("metrics-chart", "Evaluation metrics by epoch", "epoch",
    metricNames.map((k, i) => ({name: k, color: colors[(i + 1) % colors.length], points: evals.map(e => [e.epoch, e[k]])}))));
}

async function jobPage(id) {
  let job = await api(`/v1/jobs/${encodeURIComponent(id)}`);
  let events = await allEvents(id);
  renderJob(job, events);
  if (["succeeded", "failed", "cancelled"].includes(job.state)) return;
  // Live: poll new events (fetch can send the key; EventSource cannot send headers).
  let stopped = false;
  live = {stop: () => { stopped = true; }};
  while (!stopped) {
    await new Promise(r => setTimeout(r, 2000));
    if (stopped) return;
    const after = events.length ? events[events.length - 1].id : 0;
    const page = await api(`/v1/jobs/${encodeURIComponent(id)}/events?after=${after}&limit=1000`);
    job = await api(`/v1/jobs/${encodeURIComponent(id)}`);
    events = events.concat(page.data);
    if (!stopped) renderJob(job, events);
    if (["succeeded", "failed", "cancelled"].includes(job.state)) return;
  }
}

async function poolPage() {
  const pool = await api("/v1/pool");
  const rows = pool.workers.map(w => `<tr><td>${esc(w.name)}</td><td>${esc(w.hostname)}</td>
    <td><span class="state ${w.state === "alive" ? "succeeded" : "failed"}">${esc(w.state)}</span></td>
    <td class="num">${w.free_slots}/${w.slots}</td>
    <td>${(w.gpus || []).map(g => esc(`${g.index}: ${g.name}`)).join("<br>") || '<span class="muted">CPU slots</span>'}</td>
    <td>${w.jobs.map(j => `${j.job ? `<a href="#/jobs/${esc(j.job)}">${esc(j.job)}</a>` : "(another team)"}
      ${esc(j.team)} ×${j.slots} ${esc(j.state)}${j.borrowed ? " (borrowed)" : ""}`).join("<br>")}</td>
    <td class="num">${w.heartbeat_age_s}s</td></tr>`).join("");
  main.innerHTML = `<div class="card"><h2>Pool</h2><p>${pool.capacity.free_slots} of ${pool.capacity.slots}
    slots free · ${pool.pending_jobs} jobs pending</p><table id="pool"><tr><th>Worker</th><th>Host</th>
    <th>State</th><th>Free</th><th>GPUs</th><th>Running</th><th>Heartbeat</th></tr>${rows}</table></div>`;
}

async function modelsPage() {
  const page = await api("/v1/models");
  // The team's registry; GET /v1/models also lists the platform's base models (kind "base").
  const rows = page.data.filter(m => m.kind !== "base").map(m => `<tr><td>${esc(m.name)}</td><td>${esc(m.task)}</td>
    <td class="num">${m.latest_version}</td><td class="num">${m.versions}</td>
    <td>${Object.entries(m.aliases).map(([a, v]) => `${esc(a)} → ${v}`).join(", ")}</td></tr>`).join("");
  main.innerHTML = `<div class="card"><h2>Models</h2><table id="models"><tr><th>Name</th><th>Task</th>
    <th>Latest</th><th>Versions</th><th>Aliases</th></tr>
    ${rows || '<tr><td colspan="5" class="muted">no models yet</td></tr>'}</table></div>`;
}

window.addEventListener("hashchange", route);
route();

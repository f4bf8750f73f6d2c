// The tunepool dashboard: hash routes over the /v1 API, the team key from localStorage.
"use strict";
const KEY = "tunepool.apiKey";
const main = document.getElementById("main");
const esc = s => String(s ?? "").replace(/[&<>"']/g, c => ({"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;"}[c]));
const num = (v, d = 4) => typeof v === "number" ? v.toFixed(d) : esc(v);
const when = iso => iso ? new Date(iso).toLocaleString() : "";
let live = null;  // the poller of the open job page (jobpage.js)
let TEAM = {};  // /v1/teams/me: the key's team and role

// A key may arrive in the fragment (#key=..., also on a link followed within the page):
// stored, then removed from the address.
function takeKeyFromFragment() {
  const m = location.hash.match(/[#&?]key=([^&]+)/);
  if (m) {
    localStorage.setItem(KEY, decodeURIComponent(m[1]));
    history.replaceState(null, "", location.hash.replace(/[?&]?key=[^&]+/, "").replace(/^#$/, "") || "#/jobs");
  }
}

async function api(path, options = {}) {
  const resp = await fetch(path, {...options, headers: {Authorization: `Bearer ${localStorage.getItem(KEY)}`}});
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
  takeKeyFromFragment();
  delete document.body.dataset.ready;
  if (live) { live.stop(); live = null; }
  clearCharts();
  if (!localStorage.getItem(KEY)) { document.getElementById("logout").hidden = true; return login(); }
  document.getElementById("logout").hidden = false;
  const [_, page, id] = (location.hash || "#/jobs").slice(1).split("/");
  try {
    TEAM = await api("/v1/teams/me");
    document.getElementById("team").textContent = `team ${TEAM.name} (${TEAM.role})`;
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

// Evaluation reports by task, as the engines write them into a job's metrics.report:
// NER per entity type (seqeval) and per token label; classification per class with its
// confusion matrix; masked-LM and chat loss and perplexity, chat sample answers;
// batch inference what it predicted.
"use strict";

const AVERAGES = ["micro avg", "macro avg", "weighted avg"];

function reportTable(title, rows, f1, id) {
  const labels = Object.keys(rows).filter(k => typeof rows[k] === "object" && !AVERAGES.includes(k)).sort()
    .concat(AVERAGES.filter(a => a in rows));
  return `<h3>${esc(title)}</h3><table class="report"${id ? ` id="${id}"` : ""}><tr><th></th><th>precision</th>
    <th>recall</th><th>f1</th><th>support</th></tr>${labels.map(l => `<tr><th>${esc(l)}</th>
    <td class="num">${num(rows[l].precision)}</td><td class="num">${num(rows[l].recall)}</td>
    <td class="num">${num(rows[l][f1])}</td><td class="num">${esc(rows[l].support)}</td></tr>`).join("")}</table>`;
}

function confusionMatrix(cm) {
  const labels = cm.labels || [], rows = cm.rows_true_columns_predicted || [];
  const most = Math.max(1, ...rows.flat());
  return `<h3>Confusion matrix <span class="muted">(rows: true label, columns: predicted)</span></h3>
    <table class="confusion" id="confusion-matrix"><tr><th></th>${labels.map(l => `<th>${esc(l)}</th>`).join("")}</tr>
    ${rows.map((row, i) => `<tr><th>${esc(labels[i])}</th>${row.map((n, j) =>
      `<td class="num${i === j ? " diagonal" : ""}" style="--share:${(n / most).toFixed(3)}">${n}</td>`).join("")}</tr>`).join("")}
    </table>`;
}

function scoreList(metrics, names) {
  const shown = names.filter(k => typeof metrics[k] === "number");
  return shown.length ? `<table class="report scores">${shown.map(k =>
    `<tr><th>${esc(k)}</th><td class="num">${num(metrics[k])}</td></tr>`).join("")}</table>` : "";
}

function samples(list) {
  if (!list || !list.length) return "";
  return `<h3>Sample generations</h3><table class="samples" id="samples"><tr><th>prompt</th><th>expected</th>
    <th>answer</th></tr>${list.map(s => `<tr><td>${esc(s.prompt)}</td><td>${esc(s.expected)}</td>
    <td>${esc(s.answer)}</td></tr>`).join("")}</table>`;
}

function bestLine(report) {
  return report.best_epoch != null
    ? `<p>best epoch ${esc(report.best_epoch)} by ${esc(report.metric_for_best || "f1")}</p>` : "";
}

// The report card's body for a job of any type and task.
function reportHtml(job) {
  const metrics = job.metrics || {};
  if (job.type === "inference") {
    if (job.state !== "succeeded") return '<p class="muted">predictions come when the job succeeds</p>';
    return `${scoreList(metrics, ["inputs", "entities", "inputs_per_s", "seconds"])}
      <p><a href="#" id="download-output" data-job="${esc(job.id)}">Download the predictions (JSONL)</a></p>`;
  }
  const report = metrics.report || {};
  const body = report.report || {};
  const task = report.task || job.task;
  if (task === "token-classification" && (body.entity || body.token)) {
    const entity = (body.entity || {}).default;
    return (entity ? reportTable("Entity level (seqeval), per entity type", entity, "f1-score", "entity-report") : "") +
      (body.token ? reportTable("Token level", body.token, "f1", "token-report") : "") + bestLine(report);
  }
  if (task === "sequence-classification" && body.classes) {
    return reportTable("Per class", {...body.classes, "macro avg": body["macro avg"]}, "f1", "class-report") +
      `<p>accuracy ${num(body.accuracy)} over ${esc(body.examples)} examples</p>` +
      (body.confusion_matrix ? confusionMatrix(body.confusion_matrix) : "") + bestLine(report);
  }
  if (task === "masked-lm" || task === "causal-lm") {
    const scores = scoreList(report.metrics || metrics, ["loss", "perplexity", "exact_match", "accuracy"]);
    if (scores) return `<div id="lm-report">${scores}</div>${samples(report.samples)}${bestLine(report)}`;
  }
  return '<p class="muted">no evaluation report yet</p>';
}

// The output is behind the team key: fetched with it, then saved from a blob.
async function downloadOutput(jobId) {
  const resp = await fetch(`/v1/jobs/${encodeURIComponent(jobId)}/output`,
    {headers: {Authorization: `Bearer ${localStorage.getItem(KEY)}`}});
  if (!resp.ok) throw new Error(`download failed: HTTP ${resp.status}`);
  const link = document.createElement("a");
  link.href = URL.createObjectURL(await resp.blob());
  link.download = `${jobId}-predictions.jsonl`;
  link.click();
  URL.revokeObjectURL(link.href);
}

// The playground of a finished chat fine-tune: one prompt, sent through the API's
// OpenAI-compatible POST /v1/chat/completions to the base model and to the fine-tuned
// one at once, their answers streamed side by side.
"use strict";

const SIDES = [["base", "Base model"], ["tuned", "Fine-tuned"]];

// Where a finished causal-LM job has a model: the version it stored names its base.
async function mountPlayground(job) {
  const card = document.getElementById("playground");
  if (!card) return;
  try {
    const version = await api(`/v1/models/${encodeURIComponent(job.model_name)}/versions/${job.metrics.model_version}`);
    renderPlayground(card, {base: version.base_model, tuned: version.ref});
  } catch (err) {
    card.innerHTML = `<h2>Playground</h2><p class="error">${esc(err.message)}</p>`;
  }
}

function renderPlayground(card, models) {
  const member = ["member", "admin"].includes(TEAM.role);
  card.innerHTML = `<h2>Playground</h2>
    <p class="muted">One prompt to both models through <code>POST /v1/chat/completions</code>, greedy
    (temperature 0), so that the answers differ only by what the fine-tune learned.</p>
    <form id="playground-form"><textarea id="prompt" rows="3" required placeholder="A message, as a user would write it"></textarea>
    <p><label>max tokens <input id="max-tokens" type="number" min="1" max="4096" value="64"></label>
    <button type="submit" id="send"${member ? "" : " disabled"}>Send to both</button>
    ${member ? "" : '<span class="muted">sending prompts takes a member key</span>'}</p></form>
    <div class="side-by-side">${SIDES.map(([side, title]) => `<div class="answer" id="answer-${side}">
      <h3>${title}: <code class="model">${esc(models[side])}</code></h3>
      <pre class="text"></pre><p class="error"></p><p class="muted usage"></p></div>`).join("")}</div>`;
  document.getElementById("playground-form").onsubmit = async ev => {
    ev.preventDefault();
    const button = document.getElementById("send");
    const prompt = document.getElementById("prompt").value;
    const maxTokens = Number(document.getElementById("max-tokens").value) || 64;
    button.disabled = true;
    await Promise.all(SIDES.map(([side]) =>
      ask(models[side], prompt, maxTokens, document.getElementById(`answer-${side}`))));
    button.disabled = false;
  };
}

// One answer streamed into its panel. A refusal comes as an HTTP status before the
// stream; a failure later (a serving worker lost) as an error event inside it.
async function ask(model, prompt, maxTokens, panel) {
  const [text, error, usage] = ["pre.text", "p.error", "p.usage"].map(s => panel.querySelector(s));
  text.textContent = error.textContent = usage.textContent = "";
  panel.dataset.state = "streaming";
  try {
    const resp = await fetch("/v1/chat/completions", {
      method: "POST",
      headers: {Authorization: `Bearer ${localStorage.getItem(KEY)}`, "Content-Type": "application/json"},
      body: JSON.stringify({model, messages: [{role: "user", content: prompt}], max_tokens: maxTokens,
        temperature: 0, stream: true, stream_options: {include_usage: true}}),
    });
    if (!resp.ok) {
      const body = await resp.json().catch(() => ({}));
      throw new Error(`HTTP ${resp.status}: ${body.error ? body.error.message : resp.statusText}`);
    }
    let finish = null;
    for await (const data of serverEvents(resp.body)) {
      if (data.error) throw new Error(data.error.message);
      const choice = data.choices[0];
      if (choice) {
        text.textContent += choice.delta.content || "";
        finish = choice.finish_reason || finish;
      }
      if (data.usage) {
        usage.textContent = `${data.usage.completion_tokens} tokens · finish reason ${finish}`;
      }
    }
    panel.dataset.state = "done";
  } catch (err) {
    error.textContent = err.message;
    panel.dataset.state = "error";
  }
}

// The JSON payloads of a server-sent event stream (the API writes one `data:` line per
// event), until OpenAI's `[DONE]`. A stream cut before it is an error, not an answer.
async function* serverEvents(body) {
  const reader = body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  for (;;) {
    const {value, done} = await reader.read();
    if (done) throw new Error("the answer stopped before its end");
    const events = (buffer + value).split("\n\n");
    buffer = events.pop();
    for (const line of events.flatMap(e => e.split("\n")).filter(l => l.startsWith("data: "))) {
      if (line === "data: [DONE]") return;
      yield JSON.parse(line.slice(6));
    }
  }
}

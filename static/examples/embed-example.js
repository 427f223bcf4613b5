// Northwind's page code: pick the task to show (from ?task=&token=, the form, or a demo render),
// give it to the <latentcast-preview> element and the iframe, and show the events they report.
// (The component talks to the server embed.js came from; on a real third-party page, the script
// tag's address names the Latentcast server.)

const params = new URLSearchParams(location.search);
const component = document.getElementById("component");
const frame = document.getElementById("frame");
const activity = document.getElementById("activity");
const componentStatus = document.getElementById("component-status");
const iframeStatus = document.getElementById("iframe-status");
const pageBar = document.getElementById("page-bar");
const picker = document.getElementById("task-picker");
let events = 0;

function log(text) {
  events += 1;
  document.getElementById("event-count").textContent = `${events} event${events === 1 ? "" : "s"}`;
  const item = document.createElement("li");
  item.textContent = `${new Date().toLocaleTimeString()}  ${text}`;
  activity.append(item);
  activity.scrollTop = activity.scrollHeight;
}

function setStatus(element, text, state) {
  element.textContent = text;
  element.dataset.state = state;
}

function embed(task, token) {
  if (!task) return;
  picker.elements.task.value = task;
  picker.elements.token.value = token ?? "";
  if (token) component.setAttribute("token", token);
  else component.removeAttribute("token");
  component.setAttribute("task", task);
  const query = token ? `?token=${encodeURIComponent(token)}` : "";
  frame.src = `/embed/${encodeURIComponent(task)}${query}`;
  setStatus(componentStatus, "connecting", "waiting");
  setStatus(iframeStatus, "connecting", "waiting");
  log(`embedding task ${task}`);
}

// -- the component's DOM events ------------------------------------------------------------------

let lastLoggedStep = -1;
component.addEventListener("progress", (event) => {
  const { status, step, steps, percent, position } = event.detail;
  pageBar.style.width = `${percent ?? 0}%`;
  if (status === "queued") setStatus(componentStatus, `queued #${position ?? "?"}`, "waiting");
  else if (steps) setStatus(componentStatus, `${step}/${steps}`, "running");
  if (steps && (step === steps || step - lastLoggedStep >= 5)) {
    lastLoggedStep = step;
    log(`progress: step ${step}/${steps}`);
  }
});
component.addEventListener("status", (event) => log(`status: ${event.detail.status}`));
component.addEventListener("done", (event) => {
  const { outputs, seed } = event.detail;
  setStatus(componentStatus, "done", "done");
  pageBar.style.width = "100%";
  log(`done: ${outputs.length} image(s), seed ${seed}`);
  document.getElementById("component-caption").textContent = `Finished: ${outputs.map((o) => o.name).join(", ")} (seed ${seed}).`;
});
component.addEventListener("error", (event) => {
  setStatus(componentStatus, event.detail.code, "error");
  log(`error: ${event.detail.code} ${event.detail.message ?? ""}`);
});

// -- the iframe's messages -------------------------------------------------------------------------

window.addEventListener("message", (event) => {
  if (event.source !== frame.contentWindow || event.data?.source !== "latentcast") return;
  const { type, detail } = event.data;
  if (type === "progress" && detail.steps) setStatus(iframeStatus, `${detail.step}/${detail.steps}`, "running");
  else if (type === "done") setStatus(iframeStatus, "done", "done");
  else if (type === "error") setStatus(iframeStatus, detail.code, "error");
});

// -- picking a task --------------------------------------------------------------------------------

picker.addEventListener("submit", (event) => {
  event.preventDefault();
  const task = picker.elements.task.value.trim();
  const token = picker.elements.token.value.trim();
  if (!task) return;
  history.replaceState(null, "", `?${new URLSearchParams({ task, ...(token ? { token } : {}) })}`);
  embed(task, token);
});

document.getElementById("demo").addEventListener("click", async (event) => {
  const button = event.currentTarget;
  button.disabled = true;
  try {
    const response = await fetch("/v1/tasks", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({
        prompt: "Spring collection hero banner, pastel flowers, soft morning light",
        width: 768,
        height: 512,
        num_inference_steps: 30,
      }),
    });
    const task = await response.json();
    if (!response.ok) throw new Error(task.error?.message ?? response.statusText);
    history.replaceState(null, "", `?${new URLSearchParams({ task: task.id, token: task.token })}`);
    embed(task.id, task.token);
  } catch (error) {
    log(`could not start a demo render: ${error.message}`);
  } finally {
    button.disabled = false;
  }
});

// -- Northwind's own chart ---------------------------------------------------------------------------

function sparkline() {
  const canvas = document.getElementById("sparkline");
  const context = canvas.getContext("2d");
  const values = [12, 18, 15, 22, 19, 26, 16];
  const { width, height } = canvas;
  context.clearRect(0, 0, width, height);
  context.strokeStyle = "#0f766e";
  context.lineWidth = 2;
  context.beginPath();
  values.forEach((value, index) => {
    const x = 8 + (index * (width - 16)) / (values.length - 1);
    const y = height - 8 - ((value - 10) / 18) * (height - 16);
    if (index === 0) context.moveTo(x, y);
    else context.lineTo(x, y);
  });
  context.stroke();
}

sparkline();
embed(params.get("task"), params.get("token"));

// The dashboard: every task on the server, live. Initial state from GET /v1/tasks, then every
// task's events from `subscribe_all` (with preview frames for the running tasks' thumbnails); and
// every worker, from their heartbeats (workers-panel.js).
// Events that arrive while the lists load are held and applied after, so nothing is missed; after
// a reconnect the lists are loaded again (subscribe_all has no `since`).

import { Api, ApiError } from "./api.js";
import { DELIVERIES_REFRESH_MS, deliveryItem } from "./deliveries.js";
import { $, ago, h, reconcile } from "./dom.js";
import { PreviewSurface } from "./preview.js";
import { LatentcastSocket } from "./protocol.js";
import {
  ACTIVE_STATUSES,
  TaskState,
  fileUrl,
  formatEta,
  formatRate,
  formatSeconds,
  markInputKind,
  pluralize,
  taskPagePath,
  tokenOf,
} from "./task-state.js";
import { WorkersPanel } from "./workers-panel.js";

const KEY_STORAGE = "latentcast.apiKey";
const RECENT_LIMIT = 24;
const LOAD_LIMIT = 100;
const THROUGHPUT_WINDOW = 600; // seconds
const KEEP_FINISHED = 300; // finished tasks kept in memory (the newest)
const THUMBNAIL_SIDE = 256; // px: a thumbnail (at most 128 CSS px) on a 2x screen

const ui = {
  connection: $("#connection"),
  error: $("#board-error"),
  keyForm: $("#key-form"),
  keyInput: $("#api-key"),
  running: $("#running"),
  runningEmpty: $("#running-empty"),
  runningCount: $("#running-count"),
  queue: $("#queue"),
  queueEmpty: $("#queue-empty"),
  queueCount: $("#queue-count"),
  recent: $("#recent"),
  recentEmpty: $("#recent-empty"),
  recentCount: $("#recent-count"),
  webhooks: $("#webhooks"),
  webhooksEmpty: $("#webhooks-empty"),
  webhooksCount: $("#webhooks-count"),
};

const tasks = new Map(); // id -> TaskState (with .prompt)
const workers = new WorkersPanel({
  body: $("#worker-rows"),
  empty: $("#workers-empty"),
  count: $("#workers-count"),
  onRefused: (message) => refused(message),
  taskLabel: (id) => tasks.get(id)?.prompt || "",
  taskHref: (id) => taskPage(id),
});
const cards = new Map(); // id -> {element, surface, ...} for running tasks
const fetching = new Set();
let api;
let socket;
let held = null; // events that arrived while the lists were loading
let loadGeneration = 0;
let dirty = false;

// -- connection ------------------------------------------------------------------------------

const CONNECTION_TEXT = { connecting: "Connecting…", open: "Live", reconnecting: "Reconnecting…", idle: "", closed: "Offline" };
// The server's refusals that only another API key can change (the socket's error codes).
const NEEDS_KEY = new Set(["unauthorized", "forbidden"]);

function connect(apiKey) {
  socket?.close();
  for (const views of [cards, queueRows, recentCards]) {
    for (const view of views.values()) view.element.remove();
    views.clear();
  }
  tasks.clear();
  api = new Api("", { apiKey });
  socket = new LatentcastSocket(api.base, { apiKey });
  socket.addEventListener("state", (event) => {
    ui.connection.dataset.state = event.detail.state;
    ui.connection.textContent = CONNECTION_TEXT[event.detail.state] ?? "";
  });
  const failed = (error) => (NEEDS_KEY.has(error.code) ? refused(error.message) : showError(error.message));
  socket.addEventListener("server-error", (event) => failed(event.detail));
  held = [];
  socket.subscribeAll({
    previews: "binary",
    onSubscribed: () => load(),
    onEvent: (event, image) => {
      workers.observe(event);
      if (held) held.push([event, image]);
      else apply(event, image);
    },
    onError: failed,
  });
  workers.start(api);
}

/** The server will show nothing to this key (or to no key): stop the socket, and say what to do. */
function refused(message) {
  socket.close(); // its retries would be refused alike
  workers.stop();
  ui.connection.dataset.state = "refused";
  ui.connection.textContent = "No access";
  showError(api.apiKey ? `This API key was refused: ${message}` : "This server needs an API key: enter one above.");
  ui.keyInput.setAttribute("aria-invalid", "true");
}

async function load() {
  const generation = ++loadGeneration;
  held ??= [];
  try {
    const lists = await Promise.all([
      api.listTasks({ limit: LOAD_LIMIT }),
      api.listTasks({ status: "queued", limit: 200 }),
      ...[...ACTIVE_STATUSES].map((status) => api.listTasks({ status, limit: 50 })),
    ]);
    if (generation !== loadGeneration) return;
    for (const { data } of lists) for (const detail of data) merge(detail);
    hideError();
  } catch (error) {
    if (generation !== loadGeneration) return;
    if (error instanceof ApiError && (error.status === 401 || error.status === 403)) refused(error.message);
    else showError(`Could not load the tasks: ${error.message}`);
  }
  const pending = held ?? [];
  held = null;
  for (const [event, image] of pending) apply(event, image);
  schedule();
}

function showError(message) {
  ui.error.textContent = message;
  ui.error.hidden = false;
}

function hideError() {
  ui.error.hidden = true;
  ui.keyInput.removeAttribute("aria-invalid");
}

// -- state -----------------------------------------------------------------------------------

/** A task detail from the API: newer than what we have (or new) replaces it, else adds its params. */
function merge(detail) {
  const known = tasks.get(detail.id);
  if (!known || detail.last_seq > known.lastSeq) {
    const state = TaskState.fromDetail(detail);
    if (known?.prompt && !state.prompt) state.prompt = known.prompt;
    state.token = tokenOf(detail);
    tasks.set(detail.id, state);
  } else {
    known.token ??= tokenOf(detail);
    known.prompt = detail.params?.prompt ?? known.prompt;
    known.width ??= detail.params?.width;
    known.height ??= detail.params?.height;
    known.steps ??= detail.params?.num_inference_steps;
    known.input ??= detail.input ?? null;
    known.startTime = Math.min(known.startTime ?? detail.created_at, detail.created_at);
  }
  schedule();
}

function taskPage(id) {
  return taskPagePath(id, tasks.get(id)?.token);
}

function apply(event, image) {
  let state = tasks.get(event.id);
  if (!state) {
    state = new TaskState(event.id);
    state.lastSeq = event.seq - 1; // joined mid-stream: the detail fills in the rest
    state.prompt = "";
    tasks.set(event.id, state);
    fetchDetail(event.id);
  }
  if (!state.apply(event)) return;
  if (image) cardFor(state)?.surface.showBlob(image, event.message.preview);
  schedule();
}

async function fetchDetail(id) {
  if (fetching.has(id)) return;
  fetching.add(id);
  try {
    merge(await api.getTask(id));
  } catch {
    // the row still shows what the events told
  } finally {
    fetching.delete(id);
  }
}

// -- rendering ---------------------------------------------------------------------------------

function schedule() {
  if (dirty) return;
  dirty = true;
  requestAnimationFrame(() => {
    dirty = false;
    render();
  });
}

function describeSize(state) {
  const parts = [];
  if (state.width && state.height) parts.push(`${state.width}×${state.height}`);
  if (state.steps) parts.push(`${state.steps} steps`);
  return parts.join(" · ");
}

function promptText(state) {
  return state.prompt || `Task ${state.id}`;
}

function cardFor(state) {
  if (!ACTIVE_STATUSES.has(state.status)) return null;
  let card = cards.get(state.id);
  if (card) return card;
  const canvas = h("canvas", { width: 96, height: 96, role: "img", "aria-label": "Live preview" });
  const fill = h("span");
  const bar = h("div", { class: "mini-bar", role: "progressbar", "aria-label": "Progress", "aria-valuemin": 0, "aria-valuemax": 100 }, fill);
  const prompt = h("p", { class: "run-prompt" });
  const kind = h("span", { class: "kind-tag", hidden: true });
  const meta = h("p", { class: "run-meta" });
  const stats = h("p", { class: "run-stats" });
  const cancel = h("button", { type: "button", class: "small danger", "aria-label": `Cancel task ${state.id}` }, "Cancel");
  cancel.addEventListener("click", () => cancelTask(state.id, cancel));
  const element = h(
    "article",
    { class: "run-card", dataset: { id: state.id } },
    h("div", { class: "thumb" }, canvas),
    h("div", { class: "run-body" }, kind, prompt, meta, bar, stats, h("div", { class: "run-actions" }, cancel,
      h("a", { class: "button small ghost", href: `/t/${encodeURIComponent(state.id)}`, "aria-label": `Open task ${state.id}` }, "Open"))),
  );
  const surface = new PreviewSurface(canvas, { maxSide: THUMBNAIL_SIDE });
  card = { element, surface, fill, bar, kind, prompt, meta, stats, cancel };
  cards.set(state.id, card);
  return card;
}

function updateCard(card, state) {
  markInputKind(card.kind, state.input);
  card.prompt.textContent = promptText(state);
  card.prompt.title = promptText(state);
  card.meta.textContent = [state.statusLabel, describeSize(state), state.worker].filter(Boolean).join(" · ");
  const percent = Math.round(state.percent ?? 0);
  card.fill.style.width = `${percent}%`;
  card.bar.setAttribute("aria-valuenow", String(percent));
  card.stats.textContent = state.steps
    ? `step ${state.step}/${state.steps} · ${formatRate(state.itPerS)} · ETA ${formatEta(state.etaSeconds)}`
    : "starting…";
}

function createQueueRow(state) {
  const position = h("span", { class: "position", title: "Position in the queue" });
  const kind = h("span", { class: "kind-tag", hidden: true });
  const prompt = h("p", { class: "row-prompt" });
  const meta = h("p", { class: "row-meta" });
  const cancel = h("button", { type: "button", class: "small ghost", "aria-label": `Cancel queued task ${state.id}` }, "Cancel");
  cancel.addEventListener("click", () => cancelTask(state.id, cancel));
  const element = h("li", { class: "queue-row", dataset: { id: state.id } }, position, h("div", { class: "run-body" }, kind, prompt, meta), cancel);
  return { element, position, kind, prompt, meta };
}

function updateQueueRow(row, state, now) {
  row.position.textContent = state.position ? `#${state.position}` : "…";
  markInputKind(row.kind, state.input);
  row.prompt.textContent = promptText(state);
  row.prompt.title = promptText(state);
  const waiting = state.startTime ? `waiting ${ago(state.startTime, now).replace(" ago", "")}` : "";
  row.meta.textContent = [describeSize(state), waiting].filter(Boolean).join(" · ");
}

function createRecentCard(state) {
  const thumb = h("div", { class: "recent-thumb" });
  const badge = h("span", { class: "badge" });
  const kind = h("span", { class: "kind-tag", hidden: true });
  const prompt = h("p", { class: "row-prompt" });
  const meta = h("p", { class: "row-meta" });
  const element = h(
    "a",
    { class: "recent-card", href: `/t/${encodeURIComponent(state.id)}`, dataset: { id: state.id } },
    thumb,
    h("div", { class: "recent-body" }, h("span", { class: "tags" }, badge, kind), prompt, meta),
  );
  return { element, thumb, badge, kind, prompt, meta, shown: null };
}

function updateRecentCard(card, state, now) {
  const output = state.outputs[0];
  const shown = output ? `${output.name} ${state.token ?? ""}` : state.status;
  if (card.shown !== shown) {
    card.shown = shown;
    card.thumb.replaceChildren(
      output
        ? h("img", { src: fileUrl(api.base, state.id, output, state.token), alt: `Result of: ${promptText(state)}`, loading: "lazy", decoding: "async" })
        : state.status === "cancelled" ? "Cancelled" : "Failed",
    );
  }
  card.element.dataset.status = state.status;
  card.badge.dataset.status = state.status;
  card.badge.textContent = state.statusLabel;
  markInputKind(card.kind, state.input);
  card.prompt.textContent = promptText(state);
  card.prompt.title = promptText(state);
  card.meta.textContent = [
    output ? `seed ${output.seed}` : state.error?.message ?? state.cancelReason ?? "",
    state.endTime ? ago(state.endTime, now) : "",
  ].filter(Boolean).join(" · ");
}

const queueRows = new Map();
const recentCards = new Map();

function render() {
  const now = Date.now() / 1000;
  const all = [...tasks.values()];
  const queued = all
    .filter((t) => t.status === "queued")
    .sort((a, b) => (a.position ?? Infinity) - (b.position ?? Infinity) || (a.startTime ?? 0) - (b.startTime ?? 0));
  const running = all.filter((t) => ACTIVE_STATUSES.has(t.status)).sort((a, b) => (a.startTime ?? 0) - (b.startTime ?? 0));
  const finished = all.filter((t) => t.final).sort((a, b) => (b.endTime ?? 0) - (a.endTime ?? 0));
  for (const old of finished.splice(KEEP_FINISHED)) tasks.delete(old.id); // a dashboard left open for days

  // counters
  $("#count-queued").textContent = String(queued.length);
  $("#count-running").textContent = String(running.length);
  $("#count-completed").textContent = String(finished.filter((t) => t.status === "completed").length);
  $("#count-failed").textContent = String(finished.filter((t) => t.status !== "completed").length);
  const windowed = finished.filter((t) => t.status === "completed" && t.endTime && now - t.endTime <= THROUGHPUT_WINDOW);
  const images = windowed.reduce((sum, t) => sum + (t.outputs.length || 1), 0);
  $("#throughput").textContent = (images / (THROUGHPUT_WINDOW / 60)).toFixed(images ? 1 : 0);
  const rates = running.map((t) => t.itPerS).filter((r) => r);
  $("#speed").textContent = rates.length ? formatRate(rates.reduce((a, b) => a + b, 0)) : "–";
  const durations = finished
    .filter((t) => t.status === "completed" && t.endTime && t.startTime)
    .slice(0, 20)
    .map((t) => t.endTime - t.startTime);
  $("#avg-time").textContent = durations.length
    ? `avg time ${formatSeconds(durations.reduce((a, b) => a + b, 0) / durations.length)}`
    : "avg time –";

  reconcile(ui.running, running, cards, { key: (t) => t.id, create: cardFor, update: updateCard });
  ui.runningEmpty.hidden = running.length > 0;
  ui.runningCount.textContent = running.length ? pluralize(running.length, "task") : "";

  reconcile(ui.queue, queued, queueRows, { key: (t) => t.id, create: createQueueRow, update: (row, t) => updateQueueRow(row, t, now) });
  ui.queueEmpty.hidden = queued.length > 0;
  ui.queueCount.textContent = queued.length ? pluralize(queued.length, "task") : "";

  const recent = finished.slice(0, RECENT_LIMIT);
  workers.render(now);

  reconcile(ui.recent, recent, recentCards, { key: (t) => t.id, create: createRecentCard, update: (card, t) => updateRecentCard(card, t, now) });
  ui.recentEmpty.hidden = recent.length > 0;
  ui.recentCount.textContent = finished.length ? `${recent.length} of ${finished.length}` : "";
}

async function cancelTask(id, button) {
  button.disabled = true;
  try {
    await api.cancelTask(id);
  } catch (error) {
    if (!(error instanceof ApiError && error.status === 409)) {
      button.disabled = false;
      showError(`Could not cancel ${id}: ${error.message}`);
    }
  }
}

// -- webhooks ----------------------------------------------------------------------------------

const WEBHOOKS_SHOWN = 20;

/** The newest deliveries of every task the key sees, read again every few seconds: an attempt is
 * no event, so nothing pushes it. */
async function refreshWebhooks() {
  try {
    const { data } = await api.recentDeliveries({ limit: WEBHOOKS_SHOWN });
    const now = Date.now() / 1000;
    const pending = data.filter((delivery) => delivery.state === "pending").length;
    const taskName = (delivery) => tasks.get(delivery.task_id)?.prompt || `Task ${delivery.task_id}`;
    ui.webhooks.replaceChildren(...data.map((delivery) => deliveryItem(delivery, now, { task: taskName(delivery) })));
    ui.webhooksEmpty.hidden = data.length > 0;
    ui.webhooksCount.textContent = pending ? `${pending} pending` : "";
  } catch {
    // a key that is missing or wrong is said above the lists already
  } finally {
    setTimeout(refreshWebhooks, DELIVERIES_REFRESH_MS);
  }
}

// -- start -------------------------------------------------------------------------------------

ui.keyForm.addEventListener("submit", (event) => {
  event.preventDefault();
  const key = ui.keyInput.value.trim();
  if (key) sessionStorage.setItem(KEY_STORAGE, key);
  else sessionStorage.removeItem(KEY_STORAGE);
  hideError();
  connect(key || null);
});

setInterval(schedule, 1000); // "waiting 12 s", "3 min ago"
const savedKey = sessionStorage.getItem(KEY_STORAGE);
if (savedKey) ui.keyInput.value = savedKey;
connect(savedKey);
refreshWebhooks();

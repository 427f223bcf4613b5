// The live-preview page: `/` to create a task, `/t/{id}?token=` to follow or replay one.

import { Api, ApiError } from "./api.js";
import { DELIVERIES_REFRESH_MS, deliveryItem } from "./deliveries.js";
import { $, h } from "./dom.js";
import { HistoryPanel, historyPageSize } from "./history.js";
import { MaskEditor } from "./mask-editor.js";
import { PreviewSurface } from "./preview.js";
import { LatentcastSocket } from "./protocol.js";
import {
  INPUT_KIND_LABELS,
  TaskState,
  fileUrl,
  formatEta,
  formatRate,
  formatSeconds,
  imageSteps,
  inputKind,
  inputUrl,
  taskPagePath,
} from "./task-state.js";

const KEY_STORAGE = "latentcast.apiKey"; // shared with the dashboard; kept for this tab only
const api = new Api("", { apiKey: sessionStorage.getItem(KEY_STORAGE) });
const socket = new LatentcastSocket(api.base); // follows tasks by their token: no key needed
const surface = new PreviewSurface($("#preview"), { onPaint: () => (ui.placeholder.hidden = true) });
const form = $("#task-form");
const SETTINGS_KEY = "latentcast.form";

const ui = {
  connection: $("#connection"),
  status: $("#status"),
  prompt: $("#task-prompt"),
  canvasWrap: $("#canvas-wrap"),
  placeholder: $("#placeholder"),
  progress: $("#progress"),
  fill: $("#progress-fill"),
  step: $("#stat-step"),
  speed: $("#stat-speed"),
  eta: $("#stat-eta"),
  queue: $("#stat-queue"),
  cancel: $("#cancel"),
  share: $("#share"),
  shareLink: $("#share-link"),
  copy: $("#copy-link"),
  gallery: $("#gallery"),
  galleryEmpty: $("#gallery-empty"),
  timeline: $("#timeline"),
  timelineEmpty: $("#timeline-empty"),
  logDetails: $("#log-details"),
  log: $("#log"),
  deliveriesBlock: $("#deliveries-block"),
  deliveries: $("#deliveries"),
  formError: $("#form-error"),
  submit: $("#submit"),
  stage: $("#stage"),
  apiKey: $("#api_key"),
  imageInput: $("#image"),
  dropZone: $("#drop-zone"),
  removeImage: $("#remove-image"),
  imageSettings: $("#image-settings"),
  strength: $("#strength"),
  strengthValue: $("#strength-value"),
  strengthHint: $("#strength-hint"),
  inputEditor: $("#input-editor"),
  inputSize: $("#input-size"),
  brush: $("#brush"),
  brushValue: $("#brush-value"),
  clearMask: $("#clear-mask"),
};

const historyPanel = new HistoryPanel({
  api,
  list: $("#history"),
  empty: $("#history-empty"),
  more: $("#history-more"),
  error: $("#history-error"),
  pageSize: historyPageSize(location.search),
  onOpen: (id, token) => {
    openTask(id, token, { push: true });
    revealStage();
  },
  onDeleted: (id) => {
    if (current?.id !== id) return;
    history.pushState(null, "", "/");
    resetStage();
  },
});

/** The task on screen: {id, token, state, subscription}. */
let current = null;

// -- the connection indicator -------------------------------------------------------------------

const CONNECTION_TEXT = { connecting: "Connecting…", open: "Live", reconnecting: "Reconnecting…", idle: "", closed: "Offline" };
socket.addEventListener("state", (event) => {
  ui.connection.dataset.state = event.detail.state;
  ui.connection.textContent = CONNECTION_TEXT[event.detail.state] ?? "";
});

// -- the form ------------------------------------------------------------------------------------

const sizeSelect = $("#size");
const widthInput = $("#width");
const heightInput = $("#height");
const stepsInput = $("#num_inference_steps");
const guidanceInput = $("#guidance_scale");

function syncSizePreset() {
  const value = `${widthInput.value}x${heightInput.value}`;
  const preset = [...sizeSelect.options].find((option) => option.value === value);
  sizeSelect.value = preset ? value : "custom";
}

function syncOutputs() {
  $("#steps-value").textContent = stepsInput.value;
  $("#guidance-value").textContent = Number(guidanceInput.value).toFixed(1);
  const strength = Number(ui.strength.value);
  ui.strengthValue.textContent = strength.toFixed(2);
  const steps = Number(stepsInput.value);
  ui.strengthHint.textContent = `Runs the last ${imageSteps(strength, steps)} of ${steps} steps: low keeps the picture, 1 draws anew.`;
}

sizeSelect.addEventListener("change", () => {
  if (sizeSelect.value === "custom") {
    widthInput.focus();
    return;
  }
  const [width, height] = sizeSelect.value.split("x");
  widthInput.value = width;
  heightInput.value = height;
});
widthInput.addEventListener("input", syncSizePreset);
heightInput.addEventListener("input", syncSizePreset);
stepsInput.addEventListener("input", syncOutputs);
ui.strength.addEventListener("input", syncOutputs);
guidanceInput.addEventListener("input", syncOutputs);
$("#random-seed").addEventListener("click", () => {
  $("#seed").value = String(crypto.getRandomValues(new Uint32Array(1))[0]);
});
$("#prompt").addEventListener("keydown", (event) => {
  if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) form.requestSubmit();
});

const FIELDS = ["prompt", "negative_prompt", "width", "height", "num_inference_steps", "guidance_scale", "seed", "num_images", "output_format", "preview_every", "model", "strength", "mask_blur"];
const NUMBERS = new Set(["width", "height", "num_inference_steps", "guidance_scale", "seed", "num_images", "preview_every", "strength", "mask_blur"]);
const IMAGE_FIELDS = new Set(["strength", "mask_blur"]); // sent only with a picture (the server refuses them alone); mask_blur only with a mask

/** The form's parameters; the picture and its mask go separately (`withPictures`). */
function readForm() {
  const params = {};
  for (const name of FIELDS) {
    if (IMAGE_FIELDS.has(name) && !editor.hasPicture) continue;
    const value = form.elements[name].value.trim();
    if (value === "" && name !== "prompt") continue;
    params[name] = NUMBERS.has(name) ? Number(value) : name === "prompt" ? form.elements[name].value : value;
  }
  return params;
}

function fillForm(params) {
  for (const name of FIELDS) {
    const element = form.elements[name];
    if (!element || params[name] === undefined || params[name] === null) continue;
    if (element.tagName === "SELECT" && ![...element.options].some((option) => option.value === String(params[name]))) continue;
    element.value = String(params[name]);
  }
  syncSizePreset();
  syncOutputs();
}

function clearFieldErrors() {
  ui.formError.hidden = true;
  ui.formError.textContent = "";
  for (const element of form.querySelectorAll("[aria-invalid]")) {
    element.removeAttribute("aria-invalid");
    element.removeAttribute("aria-describedby");
  }
  for (const note of form.querySelectorAll(".field-error")) note.remove();
}

function showError(error) {
  const fields = error instanceof ApiError ? error.fields : [];
  // a field with no control of its own (the painted mask) is told in the form's message
  const unplaced = fields.filter((field) => !form.elements[field.field]).map((field) => field.message);
  for (const field of fields) {
    const element = form.elements[field.field];
    if (!element || element.getAttribute("aria-invalid")) continue;
    const note = h("p", { class: "field-error", id: `${field.field}-error` }, field.message);
    element.setAttribute("aria-invalid", "true");
    element.setAttribute("aria-describedby", note.id);
    element.closest(".field")?.append(note);
  }
  const needsKey = error instanceof ApiError && error.status === 401;
  if (needsKey) {
    ui.apiKey.closest("details").open = true;
    ui.apiKey.setAttribute("aria-invalid", "true");
    ui.apiKey.focus();
  }
  ui.formError.textContent = unplaced.length
    ? unplaced.join(" ")
    : fields.length
    ? "Please fix the highlighted fields."
    : needsKey
      ? "This server needs a valid API key: enter it under Advanced."
      : error.message;
  ui.formError.hidden = false;
  const first = fields.find((field) => form.elements[field.field]);
  if (first) form.elements[first.field].focus?.();
}

form.addEventListener("submit", async (event) => {
  event.preventDefault();
  clearFieldErrors();
  if (!form.reportValidity()) return;
  const params = readForm();
  localStorage.setItem(SETTINGS_KEY, JSON.stringify(params));
  useKeyFromForm();
  ui.submit.disabled = true;
  ui.submit.textContent = "Submitting…";
  try {
    const task = await api.createTask(await withPictures(params));
    openTask(task.id, task.token, { detail: task, push: true });
    historyPanel.refresh();
    if (matchMedia("(max-width: 759px)").matches) revealStage();
  } catch (error) {
    showError(error);
  } finally {
    ui.submit.disabled = false;
    ui.submit.textContent = "Generate";
  }
});

/** `params` with the picture (uploaded first, named by its id) and the painted mask (a data URL
 * the picture's size), when there is a picture. */
async function withPictures(params) {
  if (!editor.hasPicture) return params;
  let upload;
  try {
    upload = await api.upload(editor.picture, editor.picture.name ?? "image.png"); // a File has a name
  } catch (error) {
    // the upload names its one field `file`: on this form, that is the image
    for (const field of error.fields ?? []) if (field.field === "file") field.field = "image";
    throw error;
  }
  const mask = await editor.maskDataUrl();
  const { mask_blur: maskBlur, ...rest } = params; // a blur without a mask is refused
  return { ...rest, image: upload.id, ...(mask ? { mask, mask_blur: maskBlur } : {}) };
}

/** The key typed under Advanced, from now on (kept for this tab); the history lists its tasks. */
function useKeyFromForm() {
  const key = ui.apiKey.value.trim() || null;
  if (key === api.apiKey) return;
  api.apiKey = key;
  if (key) sessionStorage.setItem(KEY_STORAGE, key);
  else sessionStorage.removeItem(KEY_STORAGE);
  historyPanel.reload();
}

ui.apiKey.addEventListener("change", useKeyFromForm);

/** Brings the stage into view (it is below the form on a phone, above the history). */
function revealStage() {
  const behavior = matchMedia("(prefers-reduced-motion: reduce)").matches ? "auto" : "smooth";
  ui.stage.scrollIntoView({ behavior, block: "start" });
}

async function loadModels() {
  try {
    const { data } = await api.models();
    const select = $("#model");
    for (const model of data) select.append(h("option", { value: model.id }, model.id));
    // A builtin model says what it knows, so that nobody takes a small model for a broken one.
    const served = data[0];
    if (served?.description) {
      const note = $("#model-note");
      note.textContent = `${served.id} ${served.description}. \`latentcast serve --model PATH\` serves real SD3 weights.`;
      note.hidden = false;
    }
  } catch {
    // the server default still works
  }
}

for (const example of document.querySelectorAll("#examples .example")) {
  example.addEventListener("click", () => {
    const prompt = $("#prompt");
    prompt.value = example.dataset.prompt;
    prompt.focus();
  });
}

// -- the picture an image task starts from ------------------------------------------------------

const editor = new MaskEditor($("#input-image"), $("#mask"), { onChange: showPicture });

/** The form and the stage as the picture is: its settings, the editor under the preview. */
function showPicture() {
  const has = editor.hasPicture;
  ui.imageSettings.hidden = !has;
  ui.inputEditor.hidden = !has;
  ui.removeImage.hidden = !has;
  ui.dropZone.dataset.state = has ? "chosen" : "empty";
  $("#pick-image").textContent = has ? "Pick another" : "Pick an image";
  ui.inputSize.textContent = has ? `${editor.canvas.width}×${editor.canvas.height}` : "";
  ui.clearMask.disabled = !editor.painted;
}

async function usePicture(blob) {
  clearFieldErrors();
  try {
    await editor.load(blob);
  } catch {
    showError(new ApiError(400, { error: { fields: [{ field: "image", message: "image: this browser cannot read that file as a picture" }] } }));
    return;
  }
  if (matchMedia("(max-width: 759px)").matches) ui.inputEditor.scrollIntoView({ block: "nearest" });
}

ui.imageInput.addEventListener("change", () => {
  const [file] = ui.imageInput.files;
  if (file) usePicture(file);
});
ui.removeImage.addEventListener("click", () => {
  ui.imageInput.value = "";
  editor.remove();
});
for (const zone of [ui.dropZone, ui.inputEditor]) {
  zone.addEventListener("dragover", (event) => {
    if (![...event.dataTransfer.types].includes("Files")) return;
    event.preventDefault(); // allows the drop
    event.dataTransfer.dropEffect = "copy";
    zone.dataset.dragging = "true";
  });
  zone.addEventListener("dragleave", () => delete zone.dataset.dragging);
  zone.addEventListener("drop", (event) => {
    event.preventDefault();
    delete zone.dataset.dragging;
    const [file] = event.dataTransfer.files;
    if (!file) return;
    ui.imageInput.value = ""; // the dropped file is the picture now, not one picked before
    usePicture(file);
  });
}
for (const tool of document.querySelectorAll("input[name=mask_tool]")) {
  tool.addEventListener("change", () => (editor.tool = tool.value));
}
ui.brush.addEventListener("input", () => {
  editor.brush = Number(ui.brush.value);
  ui.brushValue.textContent = `${ui.brush.value} px`;
});
ui.clearMask.addEventListener("click", () => editor.clear());

/** The form ready to run a task again: its picture and mask in the editor, or none. */
async function prefillPicture(input, token) {
  ui.imageInput.value = "";
  if (!input) {
    editor.remove();
    return;
  }
  const read = async (url) => {
    const response = await fetch(inputUrl(url, token), { cache: "force-cache" });
    if (!response.ok) throw new Error(`the input answered ${response.status}`);
    return response.blob();
  };
  try {
    await editor.load(await read(input.image));
    if (input.mask) await editor.loadMask(await read(input.mask));
  } catch {
    editor.remove(); // the task still shows; only running it again starts without its picture
  }
}

// -- one task on screen --------------------------------------------------------------------------

function openTask(id, token, { detail = null, push = false } = {}) {
  current?.subscription.close();
  const state = new TaskState(id);
  current = { id, token, state, subscription: null, drawnFinal: false, endSeen: false, deliveries: [] };
  if (push) history.pushState({ id, token }, "", taskPagePath(id, token));

  ui.timeline.replaceChildren();
  ui.timelineEmpty.hidden = false;
  ui.gallery.replaceChildren(ui.galleryEmpty);
  ui.galleryEmpty.hidden = false;
  ui.logDetails.hidden = true;
  ui.log.textContent = "";
  ui.deliveriesBlock.hidden = true;
  ui.deliveries.replaceChildren();
  ui.shareLink.value = new URL(taskPagePath(id, token), location.origin).href;
  ui.share.hidden = false;
  ui.placeholder.textContent = "Waiting for the first preview…";
  ui.placeholder.hidden = false;
  ui.cancel.disabled = false;
  showDetail(detail);
  render();

  const task = current;
  task.subscription = socket.subscribe(id, {
    token,
    previews: "binary",
    onEvent: (event, image) => onEvent(task, event, image),
    onError: (error) => onSocketError(task, error),
  });
  refreshDeliveries(task);
  if (!detail) {
    api.getTask(id, token).then(
      (fetched) => current === task && showDetail(fetched, { prefill: true }),
      (error) => current === task && !task.state.lastSeq && onSocketError(task, { code: error.type, message: error.message }),
    );
  }
}

function showDetail(detail, { prefill = false } = {}) {
  const params = detail?.params;
  const width = params?.width ?? Number(widthInput.value);
  const height = params?.height ?? Number(heightInput.value);
  setAspect(width, height);
  if (!current.state.lastSeq) surface.reset(width, height);
  if (params) {
    ui.prompt.textContent = params.prompt;
    ui.prompt.hidden = false;
    if (prefill) {
      fillForm({ ...params, seed: params.seed ?? "" }); // no seed asked: random again
      prefillPicture(detail.input, current.token);
    }
  }
  if (detail) {
    current.state.input = detail.input ?? null;
    renderGallery(current);
  }
}

/** The task's webhook deliveries, read again every few seconds while one may still change: the
 * task runs on, or a delivery is pending. (They are no events: nothing pushes them.) */
async function refreshDeliveries(task) {
  if (task !== current) return;
  try {
    task.deliveries = (await api.taskDeliveries(task.id, task.token)).data;
  } catch {
    // the task's own errors show in the stage; a list that cannot be read stays as it was
  }
  if (task !== current) return;
  renderDeliveries(task);
  if (!task.state.final || task.deliveries.some((delivery) => delivery.state === "pending")) {
    setTimeout(() => refreshDeliveries(task), DELIVERIES_REFRESH_MS);
  }
}

function renderDeliveries(task) {
  const now = Date.now() / 1000;
  ui.deliveriesBlock.hidden = task.deliveries.length === 0;
  ui.deliveries.replaceChildren(...task.deliveries.map((delivery) => deliveryItem(delivery, now)));
}

function setAspect(width, height) {
  ui.canvasWrap.style.setProperty("--aspect", `${width} / ${height}`);
}

function onEvent(task, event, image) {
  if (task !== current || !task.state.apply(event)) return;
  const { state } = task;
  if (event.type === "task_start") setAspect(state.width, state.height);
  if (image && !task.drawnFinal) surface.showBlob(image, event.message.preview);
  if (event.type === "task_postprocess_end") showResults(task);
  if (state.final && !task.endSeen) {
    task.endSeen = true;
    historyPanel.taskEnded(task.id);
  }
  render(event.type !== "task_progress");
}

function onSocketError(task, error) {
  if (task !== current) return;
  const messages = {
    not_found: "This task does not exist on this server.",
    forbidden: "This link's token does not match the task.",
  };
  const text = messages[error.code] ?? error.message ?? "The server refused to follow this task.";
  ui.status.dataset.status = "failed";
  ui.status.textContent = "Unavailable";
  ui.placeholder.textContent = text;
  ui.placeholder.hidden = false;
  ui.cancel.disabled = true;
}

function render(lifecycle = true) {
  const { state } = current ?? { state: null };
  if (!state) return;
  const running = state.status === "running";
  ui.status.dataset.status = state.status;
  ui.status.textContent = state.status === "queued" && state.position ? `Queued · #${state.position}` : state.statusLabel;

  const percent = Math.max(0, Math.min(100, state.percent ?? 0));
  ui.fill.style.width = `${percent}%`;
  ui.progress.setAttribute("aria-valuenow", String(Math.round(percent)));
  ui.progress.setAttribute("aria-valuetext", state.steps ? `step ${state.step} of ${state.steps}` : state.statusLabel);
  ui.progress.dataset.status = state.status;
  ui.step.textContent = state.steps ? `${state.step}/${state.steps}` : "–";
  ui.speed.textContent = formatRate(state.itPerS);
  ui.eta.textContent = running ? formatEta(state.etaSeconds) : state.final && state.endTime ? `took ${formatSeconds(state.endTime - state.startTime)}` : "–";
  ui.queue.textContent = state.status === "queued" && state.position ? `${state.position} of ${state.queueLength ?? state.position}` : "–";
  ui.cancel.disabled = state.final;
  document.title = running ? `${Math.round(percent)}% · Latentcast` : `${state.statusLabel} · Latentcast`;
  if (lifecycle) renderTimeline(state);
}

function renderTimeline(state) {
  ui.timelineEmpty.hidden = state.timeline.length > 0;
  ui.timeline.replaceChildren(
    ...state.timeline.map((entry) =>
      h(
        "li",
        { class: "tl-item", dataset: { kind: entry.kind, type: entry.type } },
        h("span", { class: "tl-time" }, `+${formatSeconds(state.offset(entry.time))}`),
        h("span", { class: "tl-title" }, entry.title),
        entry.detail ? h("span", { class: "tl-detail" }, entry.detail) : null,
      ),
    ),
  );
  if (state.log) {
    ui.log.textContent = state.log;
    ui.logDetails.hidden = false;
  }
}

function showResults(task) {
  const { state, id, token } = task;
  renderGallery(task);
  if (state.outputs.length) {
    task.drawnFinal = true;
    surface.showUrl(fileUrl(api.base, id, state.outputs[0], token));
  }
}

/** The task's input (its picture and mask, when it has them) beside its results. */
function renderGallery(task) {
  const { state } = task;
  ui.galleryEmpty.hidden = state.outputs.length > 0;
  ui.gallery.replaceChildren(ui.galleryEmpty, ...inputFigures(task), ...outputFigures(task));
}

function inputFigures({ state, token }) {
  const { input } = state;
  if (!input) return [];
  const kind = INPUT_KIND_LABELS[inputKind(input)];
  const figure = (url, label, caption) =>
    h(
      "figure",
      { class: "result input-figure", dataset: { input: label.toLowerCase() } },
      h("a", { href: inputUrl(url, token), target: "_blank", rel: "noopener", class: "result-image" },
        h("img", { src: inputUrl(url, token), alt: `${label} of the task`, width: state.width, height: state.height, decoding: "async" })),
      h("figcaption", {}, h("span", { class: "result-meta" }, h("strong", {}, label), caption)),
    );
  return [
    figure(input.image, "Input", ` · ${kind} · strength ${Number(input.strength).toFixed(2)}`),
    input.mask ? figure(input.mask, "Mask", " · white is repainted") : null,
  ].filter(Boolean);
}

function outputFigures({ state, id, token }) {
  const base = api.base;
  return state.outputs.map((output, index) => {
    const url = fileUrl(base, id, output, token);
    const label = `Image ${index + 1} of ${state.outputs.length}`;
    const extension = output.name.split(".").pop();
    return h(
      "figure",
      { class: "result" },
      h("a", { href: url, target: "_blank", rel: "noopener", class: "result-image" },
        h("img", { src: url, alt: `${label}, seed ${output.seed}`, width: output.width, height: output.height, loading: "lazy", decoding: "async" })),
      h(
        "figcaption",
        {},
        h("span", { class: "result-meta" }, h("strong", {}, `Seed ${output.seed}`), ` · ${output.width}×${output.height} · ${extension.toUpperCase()}`),
        h(
          "span",
          { class: "result-actions" },
          h("a", { href: url, download: `latentcast-${id}-${output.name}`, class: "button small", "aria-label": `Download ${label.toLowerCase()}` }, "Download"),
          h("button", { type: "button", class: "small ghost", onclick: () => reuseSeed(output.seed), "aria-label": `Use seed ${output.seed} in the form` }, "Use seed"),
        ),
      ),
    );
  });
}

function reuseSeed(seed) {
  $("#seed").value = String(seed);
  $("#seed").focus();
}

ui.cancel.addEventListener("click", async () => {
  const task = current;
  if (!task) return;
  ui.cancel.disabled = true;
  ui.cancel.textContent = "Cancelling…";
  try {
    await api.cancelTask(task.id, task.token);
  } catch (error) {
    if (!(error instanceof ApiError && error.status === 409)) {
      ui.cancel.disabled = false;
      ui.formError.textContent = `Could not cancel: ${error.message}`;
      ui.formError.hidden = false;
    }
  } finally {
    ui.cancel.textContent = "Cancel";
  }
});

ui.copy.addEventListener("click", async () => {
  ui.shareLink.select();
  try {
    await navigator.clipboard.writeText(ui.shareLink.value);
    ui.copy.textContent = "Copied";
  } catch {
    ui.copy.textContent = "Select & copy";
  }
  setTimeout(() => (ui.copy.textContent = "Copy"), 1600);
});

// -- the address bar -------------------------------------------------------------------------

function resetStage() {
  current?.subscription.close();
  current = null;
  ui.status.dataset.status = "idle";
  ui.status.textContent = "Ready";
  ui.prompt.hidden = true;
  ui.share.hidden = true;
  ui.cancel.disabled = true;
  ui.placeholder.textContent = "Your image appears here, step by step, as it forms.";
  ui.placeholder.hidden = false;
  ui.timeline.replaceChildren();
  ui.timelineEmpty.hidden = false;
  ui.gallery.replaceChildren(ui.galleryEmpty);
  ui.galleryEmpty.hidden = false;
  ui.deliveriesBlock.hidden = true;
  ui.deliveries.replaceChildren();
  ui.fill.style.width = "0%";
  for (const stat of [ui.step, ui.speed, ui.eta, ui.queue]) stat.textContent = "–";
  setAspect(Number(widthInput.value) || 1, Number(heightInput.value) || 1);
  surface.reset(Number(widthInput.value) || 512, Number(heightInput.value) || 512);
  document.title = "Latentcast — live preview";
}

function route() {
  const match = location.pathname.match(/^\/t\/([^/]+)\/?$/);
  if (match) openTask(decodeURIComponent(match[1]), new URLSearchParams(location.search).get("token"));
  else resetStage();
}

window.addEventListener("popstate", route);

try {
  const saved = JSON.parse(localStorage.getItem(SETTINGS_KEY) ?? "null");
  if (saved && typeof saved === "object") fillForm({ ...saved, seed: saved.seed ?? "" });
} catch {
  localStorage.removeItem(SETTINGS_KEY);
}
ui.apiKey.value = api.apiKey ?? "";
syncSizePreset();
syncOutputs();
loadModels();
historyPanel.reload();
route();

// <latentcast-preview server="https://host" task="ID" token="TOKEN">: one task's live view for any page.
//
//   <script type="module" src="https://host/static/embed.js"></script>
//   <latentcast-preview task="9f2c4e1a0b3d5e7f" token="..."></latentcast-preview>
//
// - `server` defaults to the server this script was loaded from; `token` is the task's token (the
//   only credential an embed needs); `task` is the task id. Changing any of them follows the new task.
// - Shadow DOM: its styles neither leak out nor get in. It fills its container's width, and its
//   height when the container has one; otherwise it keeps the task's aspect ratio. Theme it with
//   CSS custom properties: --latentcast-accent, --latentcast-background, --latentcast-text,
//   --latentcast-radius; parts: frame, canvas, image, overlay, status, bar.
// - Events (CustomEvent on the element; all but `error` bubble): `progress` {id, status, step, steps, percent,
//   itPerS, etaSeconds, position}, `done` {id, outputs (with their file addresses), seed},
//   `error` {id, code, message} (no such task, a wrong token, a failed or cancelled task),
//   and `status` {id, status} whenever the lifecycle moves.
// - The same socket protocol module as the Latentcast pages: binary preview frames, reconnect with
//   `since` after a network drop, one shared socket for every embed of a server on the page.

import { LatentcastSocket, serverBase } from "./js/protocol.js";
import { PreviewSurface } from "./js/preview.js";
import { TaskState, fileUrl, formatEta, formatRate } from "./js/task-state.js";

const SCRIPT_SERVER = new URL("..", import.meta.url).href;

const STYLE = `
:host {
  --_accent: var(--latentcast-accent, #8b6cff);
  --_accent-2: var(--latentcast-accent-2, #22d3ee);
  --_bg: var(--latentcast-background, #0f121b);
  --_text: var(--latentcast-text, #eef1f8);
  --_radius: var(--latentcast-radius, 12px);
  display: block;
  position: relative;
  width: 100%;
  height: 100%;
  min-height: 64px;
  aspect-ratio: var(--_ratio, 1);
  container-type: inline-size;
  contain: content;
  overflow: hidden;
  border-radius: var(--_radius);
  background: var(--_bg);
  color: var(--_text);
  font: 13px/1.4 ui-sans-serif, system-ui, -apple-system, "Segoe UI", Roboto, sans-serif;
}
:host([hidden]) { display: none; }
.frame { position: absolute; inset: 0; }
canvas, img {
  position: absolute; inset: 0; width: 100%; height: 100%;
  object-fit: var(--latentcast-fit, contain); display: block;
}
img[hidden], .placeholder[hidden] { display: none; }
.frame::before {
  content: ""; position: absolute; inset: 0;
  background: repeating-conic-gradient(#ffffff0a 0% 25%, transparent 0% 50%) 0 0 / 20px 20px;
}
.placeholder {
  position: absolute; inset: 0; display: grid; place-items: center; padding: 12px;
  text-align: center; opacity: .75;
}
.overlay {
  position: absolute; left: 0; right: 0; bottom: 0; display: grid; gap: 6px;
  padding: 18px 12px 10px;
  background: linear-gradient(transparent, #000000b3);
  transition: opacity .4s ease;
}
:host([data-status="completed"]) .overlay { opacity: 0; }
:host([data-status="completed"]:hover) .overlay { opacity: 1; }
.row { display: flex; justify-content: space-between; gap: 10px; min-width: 0; }
.status { flex: none; font-weight: 650; white-space: nowrap; }
.meta {
  min-width: 0; font-variant-numeric: tabular-nums; opacity: .85; text-align: right;
  white-space: nowrap; overflow: hidden; text-overflow: ellipsis;
}
.meta span + span::before { content: " · "; }
.bar { height: 5px; border-radius: 99px; background: #ffffff2b; overflow: hidden; }
.fill {
  display: block; height: 100%; width: 0; border-radius: inherit;
  background: linear-gradient(90deg, var(--_accent), var(--_accent-2)); transition: width .2s linear;
}
:host([data-status="completed"]) .fill { background: #34d399; }
:host([data-status="cancelled"]) .fill, :host([data-status="failed"]) .fill { background: #fb7185; }
:host([data-status="queued"]) .fill {
  width: 100% !important; opacity: .35;
  background: repeating-linear-gradient(-45deg, var(--_accent) 0 8px, transparent 8px 16px);
  background-size: 200% 100%; animation: wait 1.4s linear infinite;
}
@keyframes wait { to { background-position: -45px 0; } }
@media (prefers-reduced-motion: reduce) { .fill { transition: none; animation: none !important; } }
@container (max-width: 340px) { .meta .rate { display: none; } }
@container (max-width: 240px) { .meta .eta { display: none; } }
@container (max-width: 150px) { .meta { display: none; } }
`;

let sharedSheet = null;

function styleSheet() {
  if (!sharedSheet) {
    sharedSheet = new CSSStyleSheet();
    sharedSheet.replaceSync(STYLE);
  }
  return sharedSheet;
}

function element(tag, attributes = {}) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) node.setAttribute(name, value);
  return node;
}

export class LatentcastPreview extends HTMLElement {
  static observedAttributes = ["server", "task", "token"];

  #ratio = new CSSStyleSheet();
  #nodes;
  #surface;
  #subscription = null;
  #state = null;
  #restart = null;
  #connected = false;

  constructor() {
    super();
    const root = this.attachShadow({ mode: "open" });
    root.adoptedStyleSheets = [styleSheet(), this.#ratio];
    const frame = element("div", { class: "frame", part: "frame" });
    const canvas = element("canvas", { part: "canvas", role: "img", "aria-label": "Live preview" });
    const image = element("img", { part: "image", alt: "", hidden: "" });
    const placeholder = element("div", { class: "placeholder" });
    const overlay = element("div", { class: "overlay", part: "overlay" });
    const row = element("div", { class: "row" });
    const status = element("span", { class: "status", part: "status", role: "status", "aria-live": "polite" });
    const meta = element("span", { class: "meta" });
    const bar = element("div", {
      class: "bar", part: "bar", role: "progressbar", "aria-label": "Progress",
      "aria-valuemin": "0", "aria-valuemax": "100", "aria-valuenow": "0",
    });
    const fill = element("span", { class: "fill" });
    bar.append(fill);
    row.append(status, meta);
    overlay.append(row, bar);
    frame.append(canvas, image, placeholder);
    root.append(frame, overlay);
    this.#nodes = { canvas, image, placeholder, status, meta, bar, fill };
    this.#surface = new PreviewSurface(canvas, { onPaint: () => (placeholder.hidden = true) });
  }

  /** The task's state (status, step, steps, outputs, ...), or null before it starts. */
  get state() {
    return this.#state;
  }

  get status() {
    return this.#state?.status ?? "idle";
  }

  get outputs() {
    return this.#outputs();
  }

  get server() {
    return serverBase(this.getAttribute("server") || SCRIPT_SERVER);
  }

  connectedCallback() {
    this.#connected = true;
    this.#start();
  }

  disconnectedCallback() {
    this.#connected = false;
    this.#stop();
  }

  attributeChangedCallback(name, previous, value) {
    // (attributes present at upgrade also land here, before connectedCallback starts the view)
    if (previous === value || !this.#connected) return;
    // several attributes often change together: follow the new task once
    clearTimeout(this.#restart);
    this.#restart = setTimeout(() => this.#start(), 0);
  }

  #stop() {
    clearTimeout(this.#restart);
    this.#subscription?.close();
    this.#subscription = null;
  }

  #start() {
    this.#stop();
    const id = this.getAttribute("task");
    const token = this.getAttribute("token");
    this.#state = null;
    this.#nodes.image.hidden = true;
    this.#nodes.image.removeAttribute("src");
    this.#surface.reset(512, 512);
    this.#setRatio(1, 1);
    if (!id) {
      this.#show("idle", "No task");
      return;
    }
    const state = new TaskState(id);
    this.#state = state;
    this.#show("connecting", "Connecting…");
    this.#nodes.placeholder.hidden = false;
    this.#nodes.placeholder.textContent = "Waiting for the first preview…";
    const socket = LatentcastSocket.shared(this.server, { taskId: id });
    this.#subscription = socket.subscribe(id, {
      token,
      previews: "binary",
      onEvent: (event, image) => this.#onEvent(state, event, image),
      onError: (error) => this.#onError(state, error),
    });
  }

  #onEvent(state, event, image) {
    if (state !== this.#state) return;
    const before = state.status;
    if (!state.apply(event)) return;
    if (event.type === "task_start" && state.width && state.height) this.#setRatio(state.width, state.height);
    if (image) this.#surface.showBlob(image, event.message.preview);
    this.#render(state);
    if (state.status !== before) this.#emit("status", { id: state.id, status: state.status });
    if (event.type === "task_progress" || event.type === "task_queue") {
      this.#emit("progress", {
        id: state.id, status: state.status, step: state.step, steps: state.steps, percent: state.percent,
        itPerS: state.itPerS, etaSeconds: state.etaSeconds, position: state.position,
      });
    }
    if (event.type === "task_postprocess_end") this.#done(state);
    else if (event.type === "task_cancel") {
      this.#emit("error", { id: state.id, code: "cancelled", message: state.cancelReason });
    } else if (state.status === "failed" && state.error) {
      this.#emit("error", { id: state.id, code: state.error.code ?? "failed", message: state.error.message });
    }
  }

  #onError(state, error) {
    if (state !== this.#state) return;
    const text = { not_found: "No such task", forbidden: "Wrong token for this task" }[error.code] ?? "Unavailable";
    this.#show("failed", text);
    this.#nodes.placeholder.textContent = error.message ?? text;
    this.#nodes.placeholder.hidden = false;
    this.#emit("error", { id: state.id, code: error.code, message: error.message });
  }

  #outputs() {
    const state = this.#state;
    if (!state) return [];
    const token = this.getAttribute("token");
    return state.outputs.map((output) => ({ ...output, url: fileUrl(this.server, state.id, output, token) }));
  }

  #done(state) {
    const outputs = this.#outputs();
    if (outputs.length) {
      const image = this.#nodes.image;
      image.alt = `Generated image, seed ${outputs[0].seed}`;
      image.addEventListener("load", () => {
        image.hidden = false;
        this.#nodes.placeholder.hidden = true;
      }, { once: true });
      image.src = outputs[0].url;
    }
    this.#emit("done", { id: state.id, outputs, seed: state.seed });
  }

  #render(state) {
    const percent = Math.max(0, Math.min(100, Math.round(state.percent ?? 0)));
    let meta = [];
    if (state.status === "running" && state.steps) {
      meta = [["step", `${state.step}/${state.steps}`], ["rate", formatRate(state.itPerS)], ["eta", `ETA ${formatEta(state.etaSeconds)}`]];
    } else if (state.status === "queued" && state.position) {
      meta = [["position", `#${state.position} of ${state.queueLength ?? state.position}`]];
    } else if (state.status === "completed" && state.seed !== null) meta = [["seed", `seed ${state.seed}`]];
    this.#show(state.status, state.statusLabel, meta);
    this.#nodes.fill.style.width = `${percent}%`;
    this.#nodes.bar.setAttribute("aria-valuenow", String(percent));
  }

  /** meta: [[class, text], ...], shown as far as the width allows */
  #show(status, label, meta = []) {
    this.dataset.status = status;
    this.#nodes.status.textContent = label;
    this.#nodes.meta.replaceChildren(
      ...meta.map(([name, text]) => {
        const span = element("span", { class: name });
        span.textContent = text;
        return span;
      }),
    );
  }

  #setRatio(width, height) {
    this.#ratio.replaceSync(`:host { --_ratio: ${Number(width)} / ${Number(height)}; }`);
  }

  #emit(type, detail) {
    // `error` does not bubble, like the error events of img and script (a page's window "error"
    // handler is for script errors); the others bubble so one listener can watch many embeds.
    this.dispatchEvent(new CustomEvent(type, { detail, bubbles: type !== "error" }));
  }
}

if (!customElements.get("latentcast-preview")) customElements.define("latentcast-preview", LatentcastPreview);

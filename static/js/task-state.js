// One task's state folded from its events (the same projection the server keeps), plus the
// readable timeline and the formatting every view shares.

export const STATUS_LABELS = {
  idle: "Ready",
  submitting: "Submitting",
  connecting: "Connecting",
  queued: "Queued",
  accepted: "Accepted",
  preprocessing: "Encoding prompt",
  running: "Generating",
  postprocessing: "Saving",
  completed: "Done",
  failed: "Failed",
  cancelled: "Cancelled",
};

export const FINAL_STATUSES = new Set(["completed", "failed", "cancelled"]);
export const ACTIVE_STATUSES = new Set(["accepted", "preprocessing", "running", "postprocessing"]);

const STATUS_AFTER = {
  task_queue: "queued",
  task_accept: "accepted",
  task_preprocess_start: "preprocessing",
  task_start: "running",
  task_postprocess_start: "postprocessing",
  task_postprocess_end: "completed",
  task_cancel: "cancelled",
};

// Log lines the timeline already tells (progress, start, end, cancel) stay in the log only.
const REDUNDANT_LINE = /^(Step \d+\/\d+$|Generating |Denoised in |Cancelled: )/;

export function formatSeconds(seconds) {
  if (seconds === null || seconds === undefined || !Number.isFinite(seconds)) return "–";
  if (seconds < 10) return `${seconds.toFixed(seconds < 1 ? 2 : 1)} s`;
  if (seconds < 60) return `${Math.round(seconds)} s`;
  if (seconds < 3600) return `${Math.floor(seconds / 60)} min ${Math.round(seconds % 60)} s`;
  return `${Math.floor(seconds / 3600)} h ${Math.round((seconds % 3600) / 60)} min`;
}

export function formatRate(itPerS) {
  if (!itPerS || !Number.isFinite(itPerS)) return "–";
  return itPerS >= 1 ? `${itPerS.toFixed(1)} it/s` : `${(1 / itPerS).toFixed(1)} s/it`;
}

export function formatEta(seconds) {
  if (seconds === null || seconds === undefined || !Number.isFinite(seconds)) return "–";
  return seconds <= 0 ? "now" : `~${formatSeconds(seconds)}`;
}

export function pluralize(count, word) {
  return `${count} ${word}${count === 1 ? "" : "s"}`;
}

/** A task's live page (the share link); with its token when known, which a server with keys asks for. */
export function taskPagePath(id, token) {
  return `/t/${encodeURIComponent(id)}${token ? `?token=${encodeURIComponent(token)}` : ""}`;
}

/** The task's token, from the page link of its API description: an <img> cannot send an API key,
 * so on a server with keys its file URLs carry the token instead. */
export function tokenOf(detail) {
  return detail.urls?.page ? new URL(detail.urls.page).searchParams.get("token") : null;
}

/** The address of an output file on `base` (a serverBase), readable with the task's token. */
export function fileUrl(base, taskId, output, token) {
  const url = `${base}/v1/files/${encodeURIComponent(taskId)}/${encodeURIComponent(output.name)}`;
  return token ? `${url}?token=${encodeURIComponent(token)}` : url;
}

/** An input picture's address (the task's `input.image` or `input.mask`), readable with the
 * task's token as its outputs are. */
export function inputUrl(url, token) {
  if (!url || !token) return url;
  const withToken = new URL(url, location.origin);
  withToken.searchParams.set("token", token);
  return withToken.href;
}

/** What a task starts from, for a label: null (text to image), "image" or "inpaint". */
export function inputKind(input) {
  if (!input?.image) return null;
  return input.mask ? "inpaint" : "image";
}

export const INPUT_KIND_LABELS = { image: "Image to image", inpaint: "Inpaint" };

/** Marks an image task in a list: `tag` (a span) names its kind, its strength in the tooltip;
 * hidden for a text-to-image task. */
export function markInputKind(tag, input) {
  const kind = inputKind(input);
  tag.hidden = kind === null;
  tag.dataset.kind = kind ?? "";
  tag.textContent = kind ? INPUT_KIND_LABELS[kind] : "";
  tag.title = kind ? `Starts from an input image, strength ${Number(input.strength).toFixed(2)}` : "";
}

/** How many of `steps` an image task runs at `strength` (the server's rule, docs/protocol.md): the
 * last ceil(strength x steps) of the schedule, at least one. */
export function imageSteps(strength, steps) {
  return Math.min(steps, Math.max(1, Math.ceil(strength * steps - 1e-9)));
}

export class TaskState {
  constructor(id) {
    this.id = id;
    this.status = "connecting";
    this.lastSeq = 0;
    this.position = null;
    this.queueLength = null;
    this.step = 0;
    this.steps = null;
    this.percent = 0;
    this.itPerS = null;
    this.etaSeconds = null;
    this.width = null;
    this.height = null;
    this.seed = null;
    this.images = null;
    this.worker = null;
    this.attempt = 0;
    this.outputs = [];
    this.input = null; // what an image task starts from (its detail's `input`), null for text to image
    this.error = null; // {code, message} of a fatal error
    this.cancelReason = null;
    this.log = "";
    this.startTime = null; // time of the first event
    this.updatedAt = null;
    this.endTime = null;
    this.timeline = []; // [{seq, type, time, title, detail, kind}]
  }

  /** A state seeded from the task detail (GET /v1/tasks/{id}); later events continue it. */
  static fromDetail(detail) {
    const state = new TaskState(detail.id);
    state.status = detail.status;
    state.lastSeq = detail.last_seq ?? 0;
    state.position = detail.position ?? null;
    state.seed = detail.seed ?? null;
    state.width = detail.params?.width ?? null;
    state.height = detail.params?.height ?? null;
    state.steps = detail.params?.num_inference_steps ?? null;
    state.images = detail.params?.num_images ?? null;
    state.prompt = detail.params?.prompt ?? "";
    state.input = detail.input ?? null;
    state.worker = detail.worker ?? null;
    state.attempt = detail.attempt ?? 0;
    state.outputs = detail.outputs ?? [];
    state.error = detail.error ?? null;
    state.startTime = detail.created_at ?? null;
    const times = Object.values(detail.times ?? {});
    state.updatedAt = times.length ? Math.max(...times) : state.startTime;
    if (FINAL_STATUSES.has(state.status)) {
      state.endTime = state.updatedAt;
      if (state.status === "completed") {
        state.step = state.steps ?? 0;
        state.percent = 100;
      }
    }
    return state;
  }

  get final() {
    return FINAL_STATUSES.has(this.status);
  }

  get statusLabel() {
    return STATUS_LABELS[this.status] ?? this.status;
  }

  /** Seconds since the first event, for the timeline. */
  offset(time) {
    return this.startTime === null ? 0 : Math.max(0, time - this.startTime);
  }

  /** Fold one event in; true when it was new (events at or below lastSeq are ignored). */
  apply(event) {
    if (event.seq <= this.lastSeq) return false;
    this.lastSeq = event.seq;
    if (this.startTime === null) this.startTime = event.time;
    this.updatedAt = event.time;
    const message = event.message ?? {};
    const status = STATUS_AFTER[event.type];
    if (status) this.status = status;
    let entry = null;
    switch (event.type) {
      case "task_queue": {
        this.position = message.position ?? null;
        this.queueLength = message.queue_length ?? null;
        const where = this.position ? `position ${this.position} of ${this.queueLength ?? this.position}` : "";
        const last = this.timeline[this.timeline.length - 1];
        if (last && last.type === "task_queue") {
          last.detail = where; // one line for the whole wait; it follows the position
          last.updates = (last.updates ?? 0) + 1;
        } else entry = { title: this.attempt > 0 ? "Queued again" : "Queued", detail: where };
        break;
      }
      case "task_accept":
        this.position = null;
        this.worker = message.worker ?? null;
        this.attempt = message.attempt ?? this.attempt + 1;
        entry = { title: "Accepted", detail: `by ${this.worker ?? "a worker"}${this.attempt > 1 ? `, attempt ${this.attempt}` : ""}` };
        break;
      case "task_preprocess_start":
        entry = { title: "Encoding prompt", detail: "" };
        break;
      case "task_preprocess_end":
        entry = { title: "Prompt encoded", detail: `in ${formatSeconds(message.seconds)}` };
        break;
      case "task_assign":
        entry = { title: "Assigned", detail: `device ${message.device ?? "?"}` };
        break;
      case "task_start":
        this.steps = message.steps ?? this.steps;
        this.seed = message.seed ?? this.seed;
        this.width = message.width ?? this.width;
        this.height = message.height ?? this.height;
        this.images = message.images ?? this.images;
        this.step = 0;
        this.percent = 0;
        entry = {
          title: "Denoising",
          detail: `${this.steps} steps · ${this.width}×${this.height} · seed ${this.seed}${this.images > 1 ? ` · ${this.images} images` : ""}`,
        };
        break;
      case "task_progress":
        this.step = message.step ?? this.step;
        this.steps = message.steps ?? this.steps;
        this.percent = message.percent ?? (this.steps ? (100 * this.step) / this.steps : 0);
        this.itPerS = message.it_per_s ?? this.itPerS;
        this.etaSeconds = message.eta_seconds ?? this.etaSeconds;
        break;
      case "task_output":
        if (typeof message === "string" && !REDUNDANT_LINE.test(message)) {
          entry = { title: message, detail: "", kind: "log" };
        }
        break;
      case "task_output_full":
        this.log = typeof message === "string" ? message : "";
        break;
      case "task_error_full":
        this.log = `${this.log}${this.log ? "\n" : ""}${typeof message === "string" ? message : ""}`;
        break;
      case "task_end":
        this.etaSeconds = 0;
        entry = { title: "Denoised", detail: `in ${formatSeconds(message.seconds)}` };
        break;
      case "task_postprocess_start":
        entry = { title: "Saving images", detail: "" };
        break;
      case "task_postprocess_end":
        this.outputs = Array.isArray(event.message) ? event.message : [];
        this.percent = 100;
        this.step = this.steps ?? this.step;
        this.etaSeconds = 0;
        this.endTime = event.time;
        entry = { title: "Done", detail: pluralize(this.outputs.length, "image"), kind: "done" };
        break;
      case "task_cancel":
        this.cancelReason = message.reason ?? "cancelled";
        this.endTime = event.time;
        entry = { title: "Cancelled", detail: this.cancelReason, kind: "cancel" };
        break;
      case "task_error":
        if (message.fatal === true) {
          this.status = "failed";
          this.error = { code: message.code, message: message.message };
          this.endTime = event.time;
          entry = { title: "Failed", detail: message.message ?? message.code ?? "", kind: "error" };
        } else {
          const text = typeof message === "string" ? message : message.message ?? message.code ?? "";
          entry = { title: "Warning", detail: text, kind: "warning" };
        }
        break;
      default:
        break;
    }
    if (entry) this.timeline.push({ seq: event.seq, type: event.type, time: event.time, kind: "step", ...entry });
    return true;
  }
}

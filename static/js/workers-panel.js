// The dashboard's workers: GET /v1/workers (each live worker's latest heartbeat: name, device,
// model, current task, when it beat) every few seconds. Between heartbeats the events say which
// worker took a task (`task_accept`) and when the task ended, so the task column changes at once;
// a heartbeat newer than that event has the last word. A worker whose heartbeats stop drops out of
// that list; it stays here, marked gone, for a minute, so a crash is seen rather than missed.

import { ago, h, reconcile } from "./dom.js";
import { endsStream } from "./protocol.js";

const POLL_MS = 2000; // the workers' default --heartbeat
const STALE_AFTER = 30; // seconds without a heartbeat: the default --visibility-timeout
const KEEP_GONE = 60; // seconds a vanished worker stays listed

export class WorkersPanel {
  #rows = new Map(); // name -> {element, cells...}
  #workers = new Map(); // name -> {beat, goneAt}
  #told = new Map(); // name -> {task, at}: what the events said since, `at` the event's time
  #timer = null;
  #api = null;
  #fetching = false;

  /** `onRefused(message)`: the server wants another API key; `taskLabel(id)`: a task's prompt, if known. */
  constructor({ body, empty, count, onRefused, taskLabel, taskHref }) {
    Object.assign(this, { body, empty, count, onRefused, taskLabel, taskHref });
  }

  start(api) {
    this.stop();
    this.#api = api;
    this.#workers.clear();
    this.#told.clear();
    this.#poll(0);
  }

  stop() {
    clearTimeout(this.#timer);
    this.#timer = null;
    this.#api = null;
  }

  /** Every event of the dashboard's stream: those that move a task onto or off a worker. */
  observe(event) {
    if (event.type === "task_accept" && event.message?.worker) {
      this.#told.set(event.message.worker, { task: event.id, at: event.time });
    } else if (endsStream(event)) {
      for (const [name, told] of this.#told) if (told.task === event.id) this.#told.set(name, { task: null, at: event.time });
      for (const [name, { beat }] of this.#workers) {
        if (beat.task === event.id && !this.#told.has(name)) this.#told.set(name, { task: null, at: event.time });
      }
    }
  }

  /** The worker's task: its heartbeat's, unless an event since has said otherwise. */
  #task(worker) {
    const told = this.#told.get(worker.beat.name);
    return told && told.at > (worker.beat.beat_at ?? 0) ? told.task : worker.beat.task;
  }

  #poll(delay) {
    clearTimeout(this.#timer);
    this.#timer = setTimeout(() => this.#load(), delay);
  }

  async #load() {
    const api = this.#api;
    if (!api || this.#fetching) return;
    this.#fetching = true;
    try {
      const { data } = await api.workers();
      if (api !== this.#api) return;
      const seen = new Set(data.map((beat) => beat.name));
      for (const beat of data) this.#workers.set(beat.name, { beat, goneAt: null });
      const now = Date.now() / 1000;
      for (const [name, worker] of this.#workers) {
        if (seen.has(name)) continue;
        worker.goneAt ??= now;
        if (now - worker.goneAt > KEEP_GONE) this.#workers.delete(name);
      }
      this.render();
    } catch (error) {
      if (api === this.#api && (error.status === 401 || error.status === 403)) {
        this.onRefused(error.message);
        return;
      }
      // a dropped connection: the next poll tries again
    } finally {
      this.#fetching = false;
    }
    if (api === this.#api) this.#poll(POLL_MS);
  }

  render(now = Date.now() / 1000) {
    const workers = [...this.#workers.values()].sort((a, b) => a.beat.name.localeCompare(b.beat.name));
    reconcile(this.body, workers, this.#rows, {
      key: (worker) => worker.beat.name,
      create: (worker) => this.#createRow(worker),
      update: (row, worker) => this.#updateRow(row, worker, now),
    });
    this.empty.hidden = workers.length > 0;
    const live = workers.filter((worker) => this.#state(worker, now) !== "gone").length;
    this.count.textContent = workers.length ? `${live} live` : "";
  }

  #createRow(worker) {
    const cells = {
      name: h("th", { scope: "row" }),
      device: h("td"),
      model: h("td"),
      task: h("td", { class: "worker-task" }),
      heartbeat: h("td"),
      state: h("span", { class: "badge" }),
    };
    const element = h(
      "tr",
      { dataset: { name: worker.beat.name } },
      cells.name,
      cells.device,
      cells.model,
      cells.task,
      cells.heartbeat,
      h("td", {}, cells.state),
    );
    return { element, cells, shownTask: undefined };
  }

  #updateRow(row, worker, now) {
    const { beat } = worker;
    const { cells } = row;
    cells.name.textContent = beat.name;
    cells.name.title = beat.host && beat.pid ? `${beat.host}, process ${beat.pid}` : "";
    cells.device.textContent = beat.device ?? "";
    cells.model.textContent = beat.model ?? "";
    const task = worker.goneAt ? null : this.#task(worker);
    const label = task ? this.taskLabel(task) : "";
    if (row.shownTask !== `${task} ${label}`) {
      row.shownTask = `${task} ${label}`;
      cells.task.replaceChildren(task ? h("a", { href: this.taskHref(task), title: task }, label || task) : h("span", { class: "muted" }, "—"));
    }
    cells.heartbeat.textContent = beat.beat_at ? ago(beat.beat_at, now) : "—";
    const state = this.#state(worker, now);
    row.element.dataset.state = state;
    cells.state.dataset.state = state;
    cells.state.textContent = state;
  }

  /** "working" (running a task), "idle" (ready), "loading" (its model), "stale" (late heartbeat), "gone". */
  #state(worker, now) {
    const { beat } = worker;
    if (worker.goneAt) return "gone";
    if (beat.beat_at && now - beat.beat_at > STALE_AFTER) return "stale";
    if (!beat.ready) return "loading";
    return this.#task(worker) ? "working" : "idle";
  }
}

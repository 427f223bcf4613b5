// The live page's history: the caller's recent tasks, newest first, from GET /v1/tasks (a key
// that is not an admin lists only its own; an open server lists every task), a page at a time
// with `next_cursor`. The page asks for a fresh first page when a task it follows starts or ends,
// so a new task appears at the top without a reload. A finished task can be deleted
// (DELETE /v1/tasks/{id}), after a confirmation in place.

import { ApiError } from "./api.js";
import { ago, h, reconcile } from "./dom.js";
import { FINAL_STATUSES, STATUS_LABELS, fileUrl, markInputKind, taskPagePath, tokenOf } from "./task-state.js";

export const DEFAULT_PAGE_SIZE = 12;
const MAX_PAGE_SIZE = 200; // the most GET /v1/tasks gives at once

/** The page size asked for in the address (`?history=N`, 1 to 200), else the default. */
export function historyPageSize(search) {
  const asked = new URLSearchParams(search).get("history");
  const size = /^\d+$/.test(asked ?? "") ? Number(asked) : NaN;
  return size >= 1 && size <= MAX_PAGE_SIZE ? size : DEFAULT_PAGE_SIZE;
}

/** Server order: newest first, ties by id (the order of `next_cursor`). */
function newer(a, b) {
  return a.created_at !== b.created_at ? a.created_at > b.created_at : a.id > b.id;
}

const EMPTY_TEXT = "Your tasks are listed here, newest first, once you have run one.";

export class HistoryPanel {
  #entries = []; // task descriptions from the API, newest first
  #views = new Map(); // id -> the entry's elements
  #cursor = null; // where the next page starts; null when every older task is listed
  #queue = Promise.resolve(); // list requests, one at a time: each works on what the last left

  /**
   * `list`, `empty`, `more`, `error`: the panel's elements. `onOpen(id, token)`: show that task on
   * the page; `onDeleted(id)`: a task is gone from the server.
   */
  constructor({ api, list, empty, more, error, pageSize = DEFAULT_PAGE_SIZE, onOpen, onDeleted }) {
    Object.assign(this, { api, list, empty, more, error, pageSize, onOpen, onDeleted });
    more.addEventListener("click", () => this.loadMore());
  }

  /** Start again from the newest tasks (another API key sees other tasks). */
  reload() {
    return this.#enqueue(async () => {
      this.#entries = [];
      this.#cursor = null;
      await this.#loadFirstPage();
    });
  }

  /** The newest tasks again, on top of those listed (the older pages stay). */
  refresh() {
    return this.#enqueue(() => this.#loadFirstPage());
  }

  async loadMore() {
    let added = [];
    await this.#enqueue(async () => {
      if (!this.#cursor) return;
      this.more.disabled = true;
      this.more.textContent = "Loading…";
      try {
        const page = await this.api.listTasks({ limit: this.pageSize, cursor: this.#cursor });
        const listed = new Set(this.#entries.map((task) => task.id));
        added = page.data.filter((task) => !listed.has(task.id));
        this.#entries.push(...added);
        this.#cursor = page.next_cursor;
      } finally {
        this.more.disabled = false;
        this.more.textContent = "Load more";
      }
    });
    // the last page hides the button that had the focus: it goes on to the first task loaded
    if (this.more.hidden && added.length) this.#views.get(added[0].id)?.link.focus();
  }

  /** A task the page follows ended: listed as ended already, or the first page is read again. */
  taskEnded(id) {
    const listed = this.#entries.find((task) => task.id === id);
    if (!listed || !FINAL_STATUSES.has(listed.status)) this.refresh();
  }

  #enqueue(load) {
    this.#queue = this.#queue.then(async () => {
      this.empty.textContent = EMPTY_TEXT;
      try {
        await load();
        this.#showError("");
      } catch (error) {
        this.#failed(error);
      }
      this.#render();
    });
    return this.#queue;
  }

  /** Merges the newest page into the list. Listed tasks as new as the page's oldest that it lacks
   * were deleted meanwhile; older ones stay, with the cursor after them. A page that shares no
   * task with the list may have left a gap before it: the list starts again from it. */
  async #loadFirstPage() {
    const page = await this.api.listTasks({ limit: this.pageSize });
    const fresh = page.data;
    const ids = new Set(fresh.map((task) => task.id));
    const oldest = fresh.at(-1);
    if (!page.next_cursor || !this.#entries.some((task) => ids.has(task.id))) {
      this.#entries = fresh;
      this.#cursor = page.next_cursor;
      return;
    }
    this.#entries = [...fresh, ...this.#entries.filter((task) => !ids.has(task.id) && newer(oldest, task))];
  }

  #failed(error) {
    const refused = error instanceof ApiError && (error.status === 401 || error.status === 403);
    if (!refused) {
      this.#showError(`Could not list your tasks: ${error.message}`);
      return;
    }
    // a visitor of a server with keys: not an error of theirs until they give a key
    this.#entries = [];
    this.#cursor = null;
    this.empty.textContent = this.api.apiKey
      ? `This API key was refused: ${error.message}`
      : "This server needs an API key to list your tasks: enter it under Advanced.";
  }

  #showError(text) {
    this.error.textContent = text;
    this.error.hidden = !text;
  }

  #render() {
    const now = Date.now() / 1000;
    reconcile(this.list, this.#entries, this.#views, {
      key: (task) => task.id,
      create: (task) => this.#createEntry(task),
      update: (view, task) => this.#updateEntry(view, task, now),
    });
    this.empty.hidden = this.#entries.length > 0;
    this.more.hidden = !this.#cursor;
  }

  #createEntry(task) {
    const view = {
      task,
      thumb: h("span", { class: "history-thumb" }),
      badge: h("span", { class: "badge" }),
      kind: h("span", { class: "kind-tag", hidden: true }),
      prompt: h("span", { class: "row-prompt", id: `history-prompt-${task.id}` }),
      meta: h("span", { class: "row-meta" }),
      shown: null,
    };
    view.link = h(
      "a",
      { class: "history-link", onclick: (event) => this.#open(event, view) },
      view.thumb,
      h("span", { class: "history-body" }, h("span", { class: "tags" }, view.badge, view.kind), view.prompt, view.meta),
    );
    // Each button is named by its own text and described by the entry's prompt (which task it acts on).
    const about = { type: "button", "aria-describedby": view.prompt.id };
    view.remove = h("button", { ...about, class: "small ghost", onclick: () => this.#confirm(view, true) }, "Delete");
    view.yes = h("button", { ...about, class: "small danger", onclick: () => this.#delete(view) }, "Yes, delete");
    view.keep = h("button", { ...about, class: "small ghost", onclick: () => this.#confirm(view, false) }, "Keep");
    view.question = h("span", { class: "history-question", id: `history-ask-${task.id}` }, "Delete this task and its images?");
    view.confirmation = h(
      "span",
      { class: "history-confirm", role: "group", "aria-labelledby": view.question.id, hidden: true },
      view.question,
      view.yes,
      view.keep,
    );
    view.element = h(
      "li",
      { class: "history-item", dataset: { id: task.id } },
      view.link,
      h("span", { class: "history-actions" }, view.remove, view.confirmation),
    );
    return view;
  }

  #updateEntry(view, task, now) {
    view.task = task;
    const token = tokenOf(task);
    const prompt = task.params?.prompt ?? "";
    const output = task.outputs?.[0];
    view.link.href = taskPagePath(task.id, token);
    const shown = output ? `${output.name} ${token}` : "";
    if (view.shown !== shown) {
      view.shown = shown;
      // The image says nothing the link's text does not (alt=""): the prompt names the entry.
      view.thumb.replaceChildren(
        output
          ? h("img", { src: fileUrl(this.api.base, task.id, output, token), alt: "", width: output.width, height: output.height, loading: "lazy", decoding: "async" })
          : "",
      );
    }
    view.element.dataset.status = task.status;
    view.badge.dataset.status = task.status;
    view.badge.textContent = STATUS_LABELS[task.status] ?? task.status;
    markInputKind(view.kind, task.input);
    view.prompt.textContent = prompt;
    view.prompt.title = prompt;
    const seed = output?.seed ?? task.seed;
    const created = h("time", { datetime: new Date(task.created_at * 1000).toISOString(), title: new Date(task.created_at * 1000).toLocaleString() }, ago(task.created_at, now));
    view.meta.replaceChildren(
      [`${task.params.width}×${task.params.height}`, seed === null || seed === undefined ? null : `seed ${seed}`].filter(Boolean).join(" · ") + " · ",
      created,
    );
    const final = FINAL_STATUSES.has(task.status);
    view.remove.hidden = !final || !view.confirmation.hidden;
  }

  #open(event, view) {
    if (event.button !== 0 || event.metaKey || event.ctrlKey || event.shiftKey || event.altKey) return; // a new tab or window: the browser's
    event.preventDefault();
    this.onOpen(view.task.id, tokenOf(view.task));
  }

  /** Asks (`asking`) or stops asking whether to delete; the focus goes to the safe answer. */
  #confirm(view, asking) {
    const wasAsking = !view.confirmation.hidden;
    view.confirmation.hidden = !asking;
    view.remove.hidden = asking;
    view.element.toggleAttribute("data-confirming", asking);
    if (asking) view.keep.focus();
    else if (wasAsking && view.element.contains(document.activeElement)) view.remove.focus();
  }

  async #delete(view) {
    const { task } = view;
    view.yes.disabled = view.keep.disabled = true;
    try {
      await this.api.deleteTask(task.id);
    } catch (error) {
      const gone = error instanceof ApiError && error.status === 404; // deleted elsewhere meanwhile
      if (!gone) {
        view.yes.disabled = view.keep.disabled = false;
        this.#confirm(view, false);
        this.#showError(`Could not delete “${task.params?.prompt ?? task.id}”: ${error.message}`);
        return;
      }
    }
    const next = view.element.nextElementSibling ?? view.element.previousElementSibling;
    // in the queue: a first page read before the deletion must not bring the task back after it
    await this.#enqueue(async () => {
      this.#entries = this.#entries.filter((entry) => entry.id !== task.id);
    });
    next?.querySelector(".history-link")?.focus();
    this.onDeleted(task.id);
  }
}

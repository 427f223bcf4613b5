// The Latentcast socket protocol for browsers (docs/protocol.md), shared by the live page, the
// dashboard and the <latentcast-preview> embed.
//
// - decodeFrame: a WebSocket message as {event, image}. JSON text frames are events or control
//   messages; a binary frame is a 4-byte big-endian length N, N bytes of the JSON envelope, then the
//   preview image bytes (returned as a Blob typed from message.preview.format).
// - LatentcastSocket: one socket carrying any number of subscriptions. It reconnects by itself
//   (backoff with jitter) and resubscribes every unfinished task with `since` = the last seq it
//   delivered, so a network drop loses nothing and repeats nothing. `subscribe_all` has no `since`:
//   its `onSubscribed` runs after every (re)subscription so a dashboard can reload its state.

export const TERMINAL_TYPES = new Set(["task_postprocess_end", "task_cancel"]);

/** True for the one event that ends a task's stream. */
export function isTerminal(event) {
  if (TERMINAL_TYPES.has(event.type)) return true;
  const message = event.message;
  return event.type === "task_error" && message !== null && typeof message === "object" && message.fatal === true;
}

const utf8 = new TextDecoder();

/** One WebSocket message (string or ArrayBuffer) as {event, image}; image is a Blob or null. */
export function decodeFrame(data) {
  if (typeof data === "string") return { event: JSON.parse(data), image: null };
  const bytes = data instanceof ArrayBuffer ? new Uint8Array(data) : new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  if (bytes.byteLength < 4) throw new Error("binary frame shorter than its length prefix");
  const length = new DataView(bytes.buffer, bytes.byteOffset, 4).getUint32(0, false);
  if (4 + length > bytes.byteLength) throw new Error("binary frame shorter than its header");
  const event = JSON.parse(utf8.decode(bytes.subarray(4, 4 + length)));
  const format = event.message?.preview?.format ?? "webp";
  const image = new Blob([bytes.subarray(4 + length)], { type: `image/${format}` });
  return { event, image };
}

/** A server address ("https://host/prefix/", "" = this page's origin) without the trailing slash. */
export function serverBase(server) {
  const base = new URL(server || globalThis.location.origin, globalThis.location.href);
  return (base.origin + base.pathname).replace(/\/+$/, "");
}

/** The socket address for a server address. */
export function socketUrl(server) {
  const url = new URL(`${serverBase(server)}/v1/ws`);
  url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
  return url.href;
}

// Errors after which resubscribing cannot help: the subscription ends.
const FINAL_ERRORS = new Set(["not_found", "forbidden", "invalid_id", "invalid_since", "invalid_previews", "unknown_type"]);

class Subscription {
  constructor(socket, key, message, handlers) {
    this.socket = socket;
    this.key = key; // the task id, or "*" for subscribe_all
    this.message = message;
    this.handlers = handlers;
    this.lastSeq = message.since ?? 0; // the seq of the newest event delivered (one task)
    this.seen = new Map(); // task id -> newest seq delivered (subscribe_all)
    this.done = false;
  }

  /** What to send to (re)subscribe: since = what was already delivered. */
  request() {
    return this.key === "*" ? this.message : { ...this.message, since: this.lastSeq };
  }

  deliver(event, image) {
    if (this.done) return;
    if (this.key === "*") {
      if (event.seq <= (this.seen.get(event.id) ?? 0)) return;
      this.seen.set(event.id, event.seq);
      if (isTerminal(event)) this.seen.delete(event.id);
      if (this.seen.size > 10000) this.seen.clear();
      this.handlers.onEvent?.(event, image);
      return;
    }
    if (event.seq <= this.lastSeq) return; // already delivered before a reconnect
    this.lastSeq = event.seq;
    const terminal = isTerminal(event);
    if (terminal) this.#finish(); // the server ends the subscription after it, too
    this.handlers.onEvent?.(event, image);
  }

  subscribed(message) {
    this.handlers.onSubscribed?.(message);
  }

  failed(message) {
    if (FINAL_ERRORS.has(message.code)) this.#finish();
    this.handlers.onError?.(message);
  }

  /** Stop receiving this task's events. */
  close() {
    if (this.done) return;
    this.#finish();
    this.socket.send({ type: "unsubscribe", id: this.key });
  }

  #finish() {
    this.done = true;
    this.socket.forget(this);
  }
}

export class LatentcastSocket extends EventTarget {
  static #shared = new Map();

  /**
   * A socket shared by the whole page for one server (and API key): embeds on a page share it.
   * The server keeps one subscription per task and socket, so a second follower of the same task
   * (`taskId`) gets another socket of the pool.
   */
  static shared(server, { taskId = null, ...options } = {}) {
    const key = `${socketUrl(server)} ${options.apiKey ?? ""}`;
    const pool = (LatentcastSocket.#shared.get(key) ?? []).filter((socket) => !socket.closed);
    let socket = pool.find((candidate) => taskId === null || !candidate.follows(taskId));
    if (!socket) {
      socket = new LatentcastSocket(server, { ...options, idleClose: true });
      pool.push(socket);
    }
    LatentcastSocket.#shared.set(key, pool);
    return socket;
  }

  #url;
  #apiKey;
  #ws = null;
  #subscriptions = new Map();
  #attempt = 0;
  #timer = null;
  #idleTimer = null;
  #state = "idle";
  #idleClose;
  #minDelay;
  #maxDelay;

  constructor(server, { apiKey = null, idleClose = false, minDelay = 250, maxDelay = 8000 } = {}) {
    super();
    this.#url = socketUrl(server);
    this.#apiKey = apiKey || null;
    this.#idleClose = idleClose;
    this.#minDelay = minDelay;
    this.#maxDelay = maxDelay;
    this.closed = false;
    this.reconnects = 0;
    this.onOnline = () => {
      if (this.#state === "reconnecting") this.#reconnectNow();
    };
    globalThis.addEventListener?.("online", this.onOnline);
  }

  /** "idle" | "connecting" | "open" | "reconnecting" | "closed" */
  get state() {
    return this.#state;
  }

  get url() {
    return this.#url;
  }

  /** True while this socket carries an unfinished subscription to that task. */
  follows(taskId) {
    return this.#subscriptions.has(taskId);
  }

  /** Follow one task from `since`; handlers: onEvent(event, imageBlob|null), onError(msg), onSubscribed(msg). */
  subscribe(id, { token = null, since = 0, previews = "binary", ...handlers } = {}) {
    const message = { type: "subscribe", id, since, previews };
    if (token) message.token = token;
    return this.#add(new Subscription(this, id, message, handlers));
  }

  /** Every task's events from now on (dashboards). onSubscribed runs after each (re)subscription. */
  subscribeAll({ previews = "none", ...handlers } = {}) {
    return this.#add(new Subscription(this, "*", { type: "subscribe_all", previews }, handlers));
  }

  /** Close for good (no reconnect). */
  close() {
    this.closed = true;
    clearTimeout(this.#timer);
    clearTimeout(this.#idleTimer);
    globalThis.removeEventListener?.("online", this.onOnline);
    for (const subscription of this.#subscriptions.values()) subscription.done = true;
    this.#subscriptions.clear();
    if (this.#ws) this.#ws.close(1000, "closed by the page");
    this.#ws = null;
    this.#setState("closed");
  }

  send(message) {
    if (this.#apiKey) message = { ...message, api_key: this.#apiKey };
    if (this.#ws && this.#ws.readyState === WebSocket.OPEN) this.#ws.send(JSON.stringify(message));
    // otherwise it goes out with every other subscription once the socket opens
  }

  forget(subscription) {
    if (this.#subscriptions.get(subscription.key) === subscription) this.#subscriptions.delete(subscription.key);
    if (this.#idleClose && this.#subscriptions.size === 0) {
      clearTimeout(this.#idleTimer);
      this.#idleTimer = setTimeout(() => {
        if (this.#subscriptions.size === 0) this.close();
      }, 5000);
    }
  }

  #add(subscription) {
    if (this.closed) throw new Error("this socket is closed");
    clearTimeout(this.#idleTimer);
    const previous = this.#subscriptions.get(subscription.key);
    if (previous) previous.done = true; // the server replaces it too
    this.#subscriptions.set(subscription.key, subscription);
    if (this.#ws && this.#ws.readyState === WebSocket.OPEN) this.send(subscription.request());
    else if (!this.#ws) this.#connect();
    return subscription;
  }

  #setState(state) {
    if (state === this.#state) return;
    this.#state = state;
    this.dispatchEvent(new CustomEvent("state", { detail: { state, attempt: this.#attempt } }));
  }

  #connect() {
    clearTimeout(this.#timer);
    this.#timer = null;
    if (this.closed) return;
    this.#setState(this.#attempt === 0 ? "connecting" : "reconnecting");
    const ws = new WebSocket(this.#url);
    ws.binaryType = "arraybuffer";
    this.#ws = ws;
    ws.addEventListener("open", () => {
      if (this.#ws !== ws) return;
      if (this.#attempt > 0) this.reconnects += 1;
      this.#attempt = 0;
      this.#setState("open");
      for (const subscription of this.#subscriptions.values()) this.send(subscription.request());
    });
    ws.addEventListener("message", (message) => {
      if (this.#ws === ws) this.#receive(message.data);
    });
    ws.addEventListener("close", (close) => {
      if (this.#ws !== ws) return;
      this.#ws = null;
      if (this.closed) return;
      this.dispatchEvent(new CustomEvent("drop", { detail: { code: close.code, reason: close.reason } }));
      if (this.#subscriptions.size === 0) {
        this.#attempt = 0;
        this.#setState("idle");
        return;
      }
      this.#attempt += 1;
      const delay = Math.min(this.#maxDelay, this.#minDelay * 2 ** (this.#attempt - 1));
      this.#setState("reconnecting");
      this.#timer = setTimeout(() => this.#connect(), delay * (0.5 + Math.random() / 2));
    });
  }

  #reconnectNow() {
    if (this.#timer !== null) this.#connect();
  }

  #receive(data) {
    let decoded;
    try {
      decoded = decodeFrame(data);
    } catch (error) {
      this.dispatchEvent(new CustomEvent("protocol-error", { detail: { error } }));
      return;
    }
    const { event, image } = decoded;
    if (event.seq === undefined) {
      this.#control(event);
      return;
    }
    this.#subscriptions.get(event.id)?.deliver(event, image);
    this.#subscriptions.get("*")?.deliver(event, image);
  }

  #control(message) {
    const subscription = typeof message.id === "string" ? this.#subscriptions.get(message.id) : undefined;
    if (message.type === "subscribed") subscription?.subscribed(message);
    else if (message.type === "error") {
      if (subscription) subscription.failed(message);
      else if (message.code !== "not_subscribed") this.dispatchEvent(new CustomEvent("server-error", { detail: message }));
    }
  }
}

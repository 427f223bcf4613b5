// The Latentcast socket protocol for browsers (docs/protocol.md), shared by the live page, the
// dashboard and the <latentcast-preview> embed.
//
// The first half mirrors the Python module latentcast.wire (latentcast/wire.py), name for name:
// TERMINAL_TYPES and isTerminal (the one rule for the event that ends a stream), decodeFrame and
// FrameError (a text frame is JSON; a binary frame is a 4-byte big-endian length N, N bytes of the
// JSON envelope, then the preview image bytes, returned as a Blob typed from message.preview.format),
// previewImageSize (preview_image_size: the size a preview is shown at), and Cursor and Gap (each
// seq delivered once, in order). tests/protocol/test_mirror.py runs the same recorded frames
// through both and requires the same results: change one, change the other.
//
// LatentcastSocket: one socket carrying any number of subscriptions. It reconnects by itself
// (backoff with jitter) and resubscribes every unfinished task with `since` = the last seq it
// delivered, so a network drop loses nothing and repeats nothing. `subscribe_all` has no `since`:
// its `onSubscribed` runs after every (re)subscription so a dashboard can reload its state.

export const TERMINAL_TYPES = new Set(["task_postprocess_end", "task_cancel"]);

/** True for the one event that ends a task's stream: done, cancelled, or a fatal error. */
export function isTerminal(type, message) {
  if (TERMINAL_TYPES.has(type)) return true;
  return type === "task_error" && isObject(message) && message.fatal === true;
}

/** A JSON object: what Python's `isinstance(x, dict)` says of a parsed value. */
function isObject(value) {
  return value !== null && typeof value === "object" && !Array.isArray(value);
}

/** isTerminal of a decoded envelope. */
export function endsStream(envelope) {
  return isTerminal(envelope.type, envelope.message);
}

/**
 * The size to show a preview at, from its description (message.preview): [image_width, image_height],
 * or its own [width, height] when those are absent (a preview as large as its image); null when
 * neither is a pair of whole numbers from 1. A latent2rgb preview travels at latent size (an eighth
 * of the image a side): the pages scale it smoothly to this size.
 */
export function previewImageSize(preview) {
  if (!isObject(preview)) return null;
  for (const [widthKey, heightKey] of [["image_width", "image_height"], ["width", "height"]]) {
    const width = preview[widthKey];
    const height = preview[heightKey];
    if (isWhole(width) && isWhole(height)) return [width, height];
  }
  return null;
}

/** A whole number from 1 that JSON.parse keeps exactly. */
function isWhole(value) {
  return Number.isInteger(value) && value >= 1 && value <= Number.MAX_SAFE_INTEGER;
}

/** A frame that is not a valid protocol message. */
export class FrameError extends Error {
  name = "FrameError";
}

// Strict, as the Python side's orjson is: bytes that are not UTF-8 are refused, not replaced.
const utf8 = new TextDecoder("utf-8", { fatal: true });

/**
 * One WebSocket message (string or ArrayBuffer/view) as {envelope, image}; image is a Blob or null.
 * Throws FrameError for anything malformed: every message is a JSON object with a string `type`; an
 * event (one with `seq`) also has a string `id` and a whole `seq` of at least 1.
 */
export function decodeFrame(data) {
  let text = data;
  let image = null;
  if (typeof data !== "string") {
    const bytes = data instanceof ArrayBuffer ? new Uint8Array(data) : new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
    if (bytes.byteLength < 4) throw new FrameError("binary frame shorter than its length prefix");
    const length = new DataView(bytes.buffer, bytes.byteOffset, 4).getUint32(0, false);
    if (4 + length > bytes.byteLength) {
      throw new FrameError(`binary frame declares a ${length}-byte envelope but has ${bytes.byteLength - 4} bytes`);
    }
    try {
      text = utf8.decode(bytes.subarray(4, 4 + length));
    } catch (error) {
      throw new FrameError(`frame is not valid JSON: ${error.message}`);
    }
    image = bytes.subarray(4 + length);
  }
  let envelope;
  try {
    envelope = JSON.parse(text);
  } catch (error) {
    throw new FrameError(`frame is not valid JSON: ${error.message}`);
  }
  checked(envelope);
  if (image !== null) image = new Blob([image], { type: `image/${envelope.message?.preview?.format ?? "webp"}` });
  return { envelope, image };
}

function checked(message) {
  if (!isObject(message)) throw new FrameError("frame is not a JSON object");
  if (typeof message.type !== "string") throw new FrameError("frame has no string 'type'");
  if (!("seq" in message)) return;
  const seq = message.seq;
  if (!isWhole(seq)) {
    throw new FrameError(`event 'seq' must be a whole number from 1, not ${JSON.stringify(seq)}`);
  }
  if (typeof message.id !== "string") throw new FrameError("event has no string 'id'");
}

/** An event arrived beyond the next expected seq: the caller must resubscribe. */
export class Gap extends Error {
  name = "Gap";

  constructor(expected, got) {
    super(`expected seq ${expected}, got ${got}`);
    this.expected = expected;
    this.got = got;
  }
}

/** The last seq delivered to one subscriber of one task: each event passes once, in order. */
export class Cursor {
  constructor(last = 0) {
    this.last = last;
    this.done = false;
  }

  /** Whether `envelope` is the next one to deliver; throws Gap when some are missing. */
  admit(envelope) {
    if (this.done || envelope.seq <= this.last) return false;
    if (envelope.seq !== this.last + 1) throw new Gap(this.last + 1, envelope.seq);
    this.last = envelope.seq;
    this.done = endsStream(envelope);
    return true;
  }
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
    this.cursor = new Cursor(message.since ?? 0); // what was delivered (one task)
    this.resubscribing = false; // after a Gap: nothing is delivered until the server confirms
    this.seen = new Map(); // task id -> newest seq delivered (subscribe_all)
    this.done = false;
  }

  /** What to send to (re)subscribe: since = what was already delivered. */
  request() {
    return this.key === "*" ? this.message : { ...this.message, since: this.cursor.last };
  }

  deliver(event, image) {
    if (this.done) return;
    if (this.key === "*") {
      if (event.seq <= (this.seen.get(event.id) ?? 0)) return;
      this.seen.set(event.id, event.seq);
      if (endsStream(event)) this.seen.delete(event.id);
      if (this.seen.size > 10000) this.seen.clear();
      this.handlers.onEvent?.(event, image);
      return;
    }
    if (this.resubscribing) return;
    let next;
    try {
      next = this.cursor.admit(event); // false: already delivered before a reconnect
    } catch (error) {
      if (!(error instanceof Gap)) throw error;
      this.resubscribing = true; // the server replays from cursor.last
      this.socket.send(this.request());
      return;
    }
    if (!next) return;
    if (this.cursor.done) this.#finish(); // the server ends the subscription after it, too
    this.handlers.onEvent?.(event, image);
  }

  subscribed(message) {
    this.resubscribing = false;
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
    const { envelope, image } = decoded;
    if (envelope.seq === undefined) {
      this.#control(envelope);
      return;
    }
    this.#subscriptions.get(envelope.id)?.deliver(envelope, image);
    this.#subscriptions.get("*")?.deliver(envelope, image);
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

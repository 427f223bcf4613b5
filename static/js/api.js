// The HTTP side of the API (docs/protocol.md "HTTP"): create, read, list, cancel and delete tasks;
// read their webhook deliveries; upload the pictures image tasks start from.

import { serverBase } from "./protocol.js";

export class ApiError extends Error {
  constructor(status, body) {
    const error = body?.error ?? {};
    super(error.message ?? `the server answered ${status}`);
    this.status = status;
    this.type = error.type ?? "http_error";
    this.fields = error.fields ?? [];
  }
}

export class Api {
  /** `apiKey` goes out as `Authorization: Bearer`; task tokens as `X-Task-Token`. */
  constructor(server = "", { apiKey = null } = {}) {
    this.base = serverBase(server);
    this.apiKey = apiKey || null;
  }

  async request(method, path, { body, token } = {}) {
    const headers = { Accept: "application/json" };
    const form = body instanceof FormData; // the browser writes its multipart Content-Type
    if (body !== undefined && !form) headers["Content-Type"] = "application/json";
    if (this.apiKey) headers.Authorization = `Bearer ${this.apiKey}`;
    if (token) headers["X-Task-Token"] = token;
    let response;
    try {
      response = await fetch(`${this.base}${path}`, {
        method,
        headers,
        body: body === undefined || form ? body : JSON.stringify(body),
        cache: "no-store",
      });
    } catch (error) {
      throw new ApiError(0, { error: { type: "network", message: `cannot reach the server (${error.message})` } });
    }
    const data = await response.json().catch(() => null);
    if (!response.ok) throw new ApiError(response.status, data);
    return data;
  }

  createTask(params) {
    return this.request("POST", "/v1/tasks", { body: params });
  }

  /** A picture kept for a task to name by the id answered (`POST /v1/uploads`). */
  upload(blob, filename = "image") {
    const body = new FormData();
    body.append("file", blob, filename);
    return this.request("POST", "/v1/uploads", { body });
  }

  getTask(id, token) {
    return this.request("GET", `/v1/tasks/${encodeURIComponent(id)}`, { token });
  }

  cancelTask(id, token) {
    return this.request("POST", `/v1/tasks/${encodeURIComponent(id)}/cancel`, { token });
  }

  /** An ended task goes with its events and files (the key must be its creator's, or an admin's). */
  deleteTask(id) {
    return this.request("DELETE", `/v1/tasks/${encodeURIComponent(id)}`);
  }

  listTasks({ status, limit = 50, cursor } = {}) {
    const query = new URLSearchParams({ limit: String(limit) });
    if (status) query.set("status", status);
    if (cursor) query.set("cursor", cursor);
    return this.request("GET", `/v1/tasks?${query}`);
  }

  taskDeliveries(id, token) {
    return this.request("GET", `/v1/tasks/${encodeURIComponent(id)}/deliveries`, { token });
  }

  recentDeliveries({ limit = 20 } = {}) {
    return this.request("GET", `/v1/deliveries?limit=${limit}`);
  }

  models() {
    return this.request("GET", "/v1/models");
  }

  workers() {
    return this.request("GET", "/v1/workers");
  }
}

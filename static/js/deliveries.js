// A task's webhook deliveries as the pages show them (docs/webhooks.md): one list item each, with
// its event, its state, and how its attempts went. Shared by the task page and the dashboard.

import { ago, h } from "./dom.js";

const STATE_LABELS = { pending: "Pending", delivered: "Delivered", failed: "Given up" };
// How the pages ask again while a delivery may still change.
export const DELIVERIES_REFRESH_MS = 2000;

/** "attempt 2 · HTTP 503 · next in 4 s", "attempt 1 · HTTP 200 · 3 s ago", ... */
export function describeDelivery(delivery, now = Date.now() / 1000) {
  const parts = [];
  if (delivery.attempts) parts.push(`attempt ${delivery.attempts}`);
  if (delivery.last_status_code !== null) parts.push(`HTTP ${delivery.last_status_code}`);
  if (delivery.last_error) parts.push(delivery.last_error);
  if (delivery.state === "pending") {
    const next = delivery.next_attempt_at;
    parts.push(next === null ? "waits for the one before" : next <= now ? "sending" : `next in ${Math.ceil(next - now)} s`);
  } else {
    parts.push(ago(delivery.delivered_at ?? delivery.failed_at, now));
  }
  return parts.join(" · ");
}

/** One delivery as a list item. `task`: a name of its task to show first, linked to its page
 * (the dashboard, which lists the deliveries of every task). */
export function deliveryItem(delivery, now, { task = null } = {}) {
  const event = `${delivery.event} · seq ${delivery.seq}`;
  const link = task !== null;
  const title = link ? `${task} · ${event}` : event;
  return h(
    "li",
    { class: "delivery", dataset: { id: delivery.id, state: delivery.state } },
    h("span", { class: "badge", dataset: { status: delivery.state } }, STATE_LABELS[delivery.state] ?? delivery.state),
    link ? h("a", { class: "delivery-event", href: `/t/${encodeURIComponent(delivery.task_id)}` }, title)
      : h("span", { class: "delivery-event" }, title),
    h("span", { class: "delivery-detail" }, describeDelivery(delivery, now)),
  );
}

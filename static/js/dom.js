// A tiny element builder: text always goes in as text (never HTML), so task data cannot inject markup.

export function h(tag, attributes = {}, ...children) {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (value === null || value === undefined || value === false) continue;
    if (name === "class") element.className = value;
    else if (name === "dataset") Object.assign(element.dataset, value);
    else if (name.startsWith("on") && typeof value === "function") element.addEventListener(name.slice(2), value);
    else if (value === true) element.setAttribute(name, "");
    else element.setAttribute(name, String(value));
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    element.append(child instanceof Node ? child : String(child));
  }
  return element;
}

export function $(selector, root = document) {
  const element = root.querySelector(selector);
  if (!element) throw new Error(`missing element ${selector}`);
  return element;
}

/** Relative time for lists: "12 s ago", "3 min ago", "yesterday"-free and locale-neutral. */
export function ago(time, now = Date.now() / 1000) {
  const seconds = Math.max(0, now - time);
  if (seconds < 5) return "just now";
  if (seconds < 60) return `${Math.round(seconds)} s ago`;
  if (seconds < 3600) return `${Math.round(seconds / 60)} min ago`;
  if (seconds < 86400) return `${Math.round(seconds / 3600)} h ago`;
  return new Date(time * 1000).toLocaleDateString();
}

/**
 * Keep `container`'s children in step with `items`, one element per key, reusing elements so
 * that what is inside them (canvases, loaded images, focus, hover) survives every update.
 * `views` (a Map key -> {element, ...}) remembers them between calls.
 */
export function reconcile(container, items, views, { key, create, update }) {
  const keep = new Set();
  items.forEach((item, index) => {
    const id = key(item);
    keep.add(id);
    let view = views.get(id);
    if (!view) {
      view = create(item);
      views.set(id, view);
    }
    update(view, item);
    if (container.children[index] !== view.element) container.insertBefore(view.element, container.children[index] ?? null);
  });
  for (const [id, view] of views) {
    if (!keep.has(id)) {
      view.element.remove();
      views.delete(id);
    }
  }
}

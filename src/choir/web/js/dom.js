// Building DOM without HTML strings: every piece of text goes in through textContent.

/**
 * h("button", {class: "primary", type: "button", onclick: fn, "aria-label": "Send"}, "Send")
 * Attributes starting with "on" become listeners; `dataset` takes an object; children may be
 * nodes, strings (inserted as text) or arrays of those; null/false children are skipped.
 */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (name.startsWith("on") && typeof value === "function") {
      el.addEventListener(name.slice(2), value);
    } else if (name === "dataset") {
      Object.assign(el.dataset, value);
    } else if (name === "class") {
      el.className = value;
    } else if (name in el && typeof value !== "string") {
      el[name] = value; // properties such as value, checked, disabled
    } else {
      el.setAttribute(name, value === true ? "" : String(value));
    }
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    if (Array.isArray(child)) append(el, child);
    else el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

export function clear(el) {
  while (el.firstChild) el.firstChild.remove();
  return el;
}

/** Replace an element's children. */
export function fill(el, ...children) {
  clear(el);
  append(el, children);
  return el;
}

/** A small spinner with a text alternative, for anything slow. */
export function spinner(label = "Loading") {
  return h("span", { class: "spinner", role: "status" }, h("span", { class: "visually-hidden" }, label));
}

/** "5Hx3…9Qa" for an address; short enough to scan, long enough to tell people apart. */
export function shortAddress(address) {
  if (typeof address !== "string" || address.length <= 12) return String(address);
  return `${address.slice(0, 4)}…${address.slice(-4)}`;
}

export function formatTime(iso) {
  const at = new Date(iso);
  if (Number.isNaN(at.getTime())) return "";
  const sameDay = at.toDateString() === new Date().toDateString();
  return sameDay
    ? at.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" })
    : at.toLocaleString([], { dateStyle: "medium", timeStyle: "short" });
}

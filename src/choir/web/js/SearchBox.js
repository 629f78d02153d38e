// The search box in the top bar: results as you type (debounced), the query's words marked in each
// result, its thread and author shown; a result opens the message in its thread. "/" focuses it from
// anywhere but a text field; Escape closes it; arrow keys move through the results.

import { api } from "./api.js";
import { clear, h } from "./dom.js";
import { describeError } from "./notify.js";
import { label, learn } from "./names.js";
import { threadHash } from "./router.js";

const DEBOUNCE_MS = 250;
const EXCERPT_CHARS = 160;

export class SearchBox {
  constructor(root) {
    this.root = root;
    this.input = h("input", {
      id: "search",
      type: "search",
      autocomplete: "off",
      placeholder: "Search messages  /",
      "aria-label": "Search messages",
      "aria-controls": "search-results",
      "aria-expanded": "false",
      role: "combobox",
    });
    this.list = h("ul", { id: "search-results", class: "search-results", role: "listbox", hidden: true });
    this.status = h("p", { class: "search-status muted small", role: "status" });
    root.append(this.input, this.list, this.status);
    this.timer = null;
    this.asked = 0; // the latest query sent: older answers arriving late are dropped
    this.input.addEventListener("input", () => this.schedule());
    this.input.addEventListener("keydown", (e) => this.key(e));
    this.input.addEventListener("focus", () => this.list.childElementCount && this.show(true));
    document.addEventListener("keydown", (e) => {
      if (e.key !== "/" || e.ctrlKey || e.metaKey || e.altKey) return;
      const t = e.target;
      if (t instanceof HTMLElement && (t.isContentEditable || ["INPUT", "TEXTAREA", "SELECT"].includes(t.tagName))) return;
      e.preventDefault();
      this.input.focus();
      this.input.select();
    });
    document.addEventListener("click", (e) => !root.contains(e.target) && this.show(false));
  }

  schedule() {
    clearTimeout(this.timer);
    const q = this.input.value.trim();
    if (!q) {
      this.render(q, []);
      return;
    }
    this.timer = setTimeout(() => this.run(q), DEBOUNCE_MS);
  }

  async run(q) {
    const ticket = ++this.asked;
    try {
      const found = await api.get(`/api/search?q=${encodeURIComponent(q)}&limit=10`);
      if (ticket !== this.asked) return;
      learn(found.display_names);
      this.render(q, found.results, found.terms);
    } catch (err) {
      if (ticket === this.asked) this.status.textContent = `Search failed: ${describeError(err)}`;
    }
  }

  render(q, results, terms = []) {
    clear(this.list);
    this.status.textContent = q ? (results.length ? "" : `Nothing found for “${q}”.`) : "";
    results.forEach((r, i) => {
      const link = h("a", { href: threadHash(r.thread_id, r.message_id), class: "search-hit", onclick: () => this.close() },
        h("span", { class: "search-where small" },
          h("strong", {}, r.thread_title), r.thread_visibility === "private" ? " (private)" : "", " · ", label(r.author)),
        h("span", { class: "search-text" }, marked(excerpt(r.content, terms), terms)));
      this.list.append(h("li", { role: "option", id: `search-hit-${i}`, "aria-selected": "false" }, link));
    });
    this.show(Boolean(results.length));
  }

  show(open) {
    this.list.hidden = !open;
    this.input.setAttribute("aria-expanded", open ? "true" : "false");
  }

  close() {
    this.show(false);
    this.input.blur();
  }

  key(e) {
    const items = [...this.list.querySelectorAll("li")];
    const at = items.findIndex((li) => li.getAttribute("aria-selected") === "true");
    if (e.key === "Escape") {
      this.input.value = "";
      this.render("", []);
      this.close();
    } else if ((e.key === "ArrowDown" || e.key === "ArrowUp") && items.length) {
      e.preventDefault();
      const next = e.key === "ArrowDown" ? Math.min(items.length - 1, at + 1) : Math.max(0, at - 1);
      items.forEach((li, i) => li.setAttribute("aria-selected", i === next ? "true" : "false"));
      this.input.setAttribute("aria-activedescendant", items[next].id);
    } else if (e.key === "Enter" && items.length) {
      e.preventDefault();
      const link = items[Math.max(0, at)].querySelector("a");
      location.hash = link.getAttribute("href");
      this.close();
    }
  }
}

/** The part of a long message around the first matched word. */
function excerpt(text, terms) {
  const flat = text.replace(/\s+/g, " ").trim();
  if (flat.length <= EXCERPT_CHARS) return flat;
  const lower = flat.toLowerCase();
  const hit = Math.min(...terms.map((t) => lower.indexOf(t)).filter((i) => i >= 0), Infinity);
  const start = hit === Infinity ? 0 : Math.max(0, hit - 40);
  return (start ? "…" : "") + flat.slice(start, start + EXCERPT_CHARS) + (start + EXCERPT_CHARS < flat.length ? "…" : "");
}

/** Text with every word that starts with a query term wrapped in <mark> (built as nodes, never HTML). */
export function marked(text, terms) {
  const wanted = terms.filter((t) => t.length > 1).map((t) => t.replace(/[.*+?^${}()|[\]\\]/g, "\\$&"));
  if (!wanted.length) return [text];
  const pattern = new RegExp(`(?<![\\p{L}\\p{N}])(?:${wanted.join("|")})[\\p{L}\\p{N}]*`, "giu");
  const out = [];
  let last = 0;
  for (const m of text.matchAll(pattern)) {
    if (m.index > last) out.push(text.slice(last, m.index));
    out.push(h("mark", {}, m[0]));
    last = m.index + m[0].length;
  }
  if (last < text.length) out.push(text.slice(last));
  return out;
}

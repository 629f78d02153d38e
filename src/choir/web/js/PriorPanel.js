// PriorPanel: the prior an answer cites, fetched and shown beside the thread, with a way to jump to
// it in its own thread.

import { api, enc } from "./api.js";
import { h, fill, formatTime, spinner } from "./dom.js";
import { renderServerHtml } from "./markup.js";
import { label } from "./names.js";
import { describeError } from "./notify.js";

// Fallback bounds while the server lacks GET /api/messages/{id}: threads scanned, messages per thread.
const SCAN_THREADS_MAX = 100;
const SCAN_PAGE = 200;

export class PriorPanel {
  /** @param {{onJump: (threadId: string, messageId: string) => void}} hooks */
  constructor(root, hooks) {
    this.root = root;
    this.hooks = hooks;
    this.returnFocus = null;
    this.token = 0;
    this.heading = h("h2", { id: "prior-heading", tabindex: "-1" }, "Source");
    this.body = h("div", { class: "prior-body" });
    fill(root,
      h("div", { class: "panel-head" }, this.heading,
        h("button", { type: "button", class: "icon", "aria-label": "Close the source panel", onclick: () => this.close() }, "×")),
      this.body);
    root.setAttribute("aria-labelledby", "prior-heading");
    root.hidden = true;
    root.addEventListener("keydown", (e) => e.key === "Escape" && this.close());
  }

  async open(citation, returnFocus = null) {
    const token = ++this.token;
    this.returnFocus = returnFocus;
    this.root.hidden = false;
    document.body.classList.add("prior-open");
    this.heading.textContent = `Source [${citation.n}]`;
    fill(this.body, h("p", { class: "muted" }, spinner("Loading the source"), " Loading the source…"));
    this.heading.focus();
    try {
      const message = await findMessage(citation.message_id);
      const thread = await api.get(`/api/threads/${enc(message.thread_id)}`).catch(() => null);
      if (token !== this.token) return;
      this._show(citation, message, thread);
    } catch (err) {
      if (token !== this.token) return;
      fill(this.body, h("p", { class: "form-error", role: "alert" }, `Cannot open this source: ${describeError(err)}`));
    }
  }

  _show(citation, message, thread) {
    const when = message.published_at;
    fill(this.body,
      h("p", { class: "prior-meta" },
        h("span", { class: "author" }, label(message.author)),
        when ? h("time", { datetime: when, class: "muted small" }, ` · ${formatTime(when)}`) : null),
      h("p", { class: "muted small" },
        `In “${thread ? thread.title : message.thread_id}” · relevance ${Math.round(Number(citation.score) * 100)}%`),
      h("blockquote", { class: "prior-content", dataset: { messageId: message.message_id } }, renderServerHtml(message.html)),
      h("button", {
        type: "button",
        class: "primary",
        onclick: () => this.hooks.onJump(message.thread_id, message.message_id),
      }, "Open in its thread"));
  }

  close() {
    this.token++;
    this.root.hidden = true;
    document.body.classList.remove("prior-open");
    if (this.returnFocus?.isConnected) this.returnFocus.focus();
    this.returnFocus = null;
  }
}

/** The message view of one message id, wherever it lives. */
export async function findMessage(messageId) {
  try {
    return await api.get(`/api/messages/${enc(messageId)}`);
  } catch (err) {
    // A server without that route answers the generic not_found; a missing message has its own code.
    if (err.code !== "not_found") throw err;
  }
  const { threads } = await api.get(`/api/threads?limit=${SCAN_THREADS_MAX}`);
  for (const t of threads) {
    const { messages } = await api.get(`/api/threads/${enc(t.thread_id)}/messages?limit=${SCAN_PAGE}`);
    const found = messages.find((m) => m.message_id === messageId);
    if (found) return found;
  }
  throw Object.assign(new Error("The cited message was not found."), { code: "message_not_found" });
}

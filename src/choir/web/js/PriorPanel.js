// PriorPanel: the prior an answer cites, fetched and shown beside the thread, with a way to jump to
// it in its own thread.

import { api, enc } from "./api.js";
import { h, fill, formatTime, spinner } from "./dom.js";
import { renderServerHtml } from "./markup.js";
import { label } from "./names.js";
import { describeError } from "./notify.js";

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
      if (token !== this.token) return;
      this._show(citation, message);
    } catch (err) {
      if (token !== this.token) return;
      fill(this.body, h("p", { class: "form-error", role: "alert" }, `Cannot open this source: ${describeError(err)}`));
    }
  }

  _show(citation, message) {
    const when = message.published_at;
    fill(this.body,
      h("p", { class: "prior-meta" },
        h("span", { class: "author" }, label(message.author)),
        when ? h("time", { datetime: when, class: "muted small" }, ` · ${formatTime(when)}`) : null),
      h("p", { class: "muted small" },
        `In “${message.thread_title || message.thread_id}” · relevance ${Math.round(Number(citation.score) * 100)}%`),
      h("blockquote", { class: "prior-content", dataset: { messageId: message.message_id } },
        // A prior deleted since it was cited: its content is gone, here as everywhere.
        message.deleted ? h("p", { class: "tombstone muted" }, "This message was deleted by its author.") : renderServerHtml(message.html)),
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

/** The message view of one message id (with its thread's title). */
export function findMessage(messageId) {
  return api.get(`/api/messages/${enc(messageId)}`);
}

// The thread list and the "new thread" form. Selecting a thread sets the URL hash #/t/<id>.

import { api, ApiError } from "./api.js";
import { formatChoir } from "./amount.js";
import { h, fill, spinner } from "./dom.js";
import { describeError } from "./notify.js";
import { threadHash } from "./router.js";

// New threads arrive live (`thread.listed` over the socket); a guest, who has no socket, reads the
// list again now and then.
const GUEST_REFRESH_EVERY_MS = 30000;

export class ThreadList {
  /** `readOnly`: signed out, the public threads are listed to read, and there is no "new thread" form. */
  constructor(root, { readOnly = false, inbox = null } = {}) {
    this.root = root;
    // Signed in: each thread shows its unread count, kept per person by the server.
    this.inbox = inbox;
    inbox?.addEventListener("change", () => this.render());
    this.threads = [];
    this.currentId = null;
    this.list = h("ul", { class: "thread-list", "aria-label": "Threads" });
    this.status = h("p", { class: "muted small", "aria-live": "polite" });
    this.form = readOnly ? h("p", { class: "muted small" }, "Public threads, to read. Sign in to write.") : this._form();
    fill(
      root,
      h("div", { class: "panel-head" }, h("h2", { id: "threads-heading" }, "Threads"),
        h("button", { type: "button", class: "link small", onclick: () => this.refresh() }, "Refresh")),
      this.form,
      this.status,
      this.list,
    );
    if (readOnly) this.timer = setInterval(() => document.visibilityState === "visible" && this.refresh(), GUEST_REFRESH_EVERY_MS);
  }

  _form() {
    const title = h("input", { id: "new-thread-title", name: "title", required: true, maxlength: "400", placeholder: "What is it about?", autocomplete: "off" });
    const visibility = h("select", { id: "new-thread-visibility", name: "visibility" },
      h("option", { value: "public" }, "Public"), h("option", { value: "private" }, "Private"));
    const button = h("button", { type: "submit", class: "primary" }, "Create thread");
    const error = h("p", { class: "form-error", role: "alert" });
    const form = h("form", { class: "new-thread", "aria-label": "New thread" },
      h("label", { for: "new-thread-title" }, "New thread"),
      h("div", { class: "row" }, title, h("label", { for: "new-thread-visibility", class: "visually-hidden" }, "Visibility"), visibility),
      button, error);
    form.addEventListener("submit", async (e) => {
      e.preventDefault();
      error.textContent = "";
      const text = title.value.trim();
      if (!text) {
        error.textContent = "Give the thread a title.";
        title.focus();
        return;
      }
      button.disabled = true;
      button.setAttribute("aria-busy", "true");
      try {
        const thread = await api.post("/api/threads", { title: text, visibility: visibility.value });
        title.value = "";
        await this.refresh();
        location.hash = threadHash(thread.thread_id);
      } catch (err) {
        error.textContent = describeError(err);
      } finally {
        button.disabled = false;
        button.removeAttribute("aria-busy");
      }
    });
    return form;
  }

  async refresh() {
    if (!this.threads.length) fill(this.status, spinner("Loading threads"), " Loading threads…");
    try {
      const { threads } = await api.get("/api/threads");
      this.threads = threads;
      this.status.textContent = threads.length ? "" : "No threads yet. Start one above.";
      this.render();
    } catch (err) {
      this.status.textContent = err instanceof ApiError ? describeError(err) : String(err);
    }
  }

  /** Mark the open thread; update its line when the thread view learns something new. */
  select(threadId) {
    this.currentId = threadId;
    this.render();
  }

  update(thread) {
    const i = this.threads.findIndex((t) => t.thread_id === thread.thread_id);
    if (i >= 0) this.threads[i] = { ...this.threads[i], ...thread };
    else this.threads.unshift(thread);
    this.render();
  }

  render() {
    fill(this.list, this.threads.map((t) => {
      const current = t.thread_id === this.currentId;
      // The open thread is being read: its count would only flicker until the read mark lands.
      const unread = current ? 0 : this.inbox?.thread(t.thread_id).unread || 0;
      return h("li", {},
        h("a", { href: threadHash(t.thread_id), class: `thread-link${current ? " current" : ""}${unread ? " has-unread" : ""}`, "aria-current": current ? "page" : null, dataset: { threadId: t.thread_id } },
          h("span", { class: "thread-title" }, t.title,
            unread ? h("span", { class: "unread-count", "aria-label": `${unread} unread` }, String(unread)) : null),
          h("span", { class: "thread-meta" },
            t.visibility === "private" ? h("span", { class: "badge" }, "private") : null,
            `${t.message_count} msg · ${formatChoir(t.balance)}`)));
    }));
  }
}

// MessageFlow: the messages of a thread in seq order, the sender's own messages at once (then
// reconciled with the server), the Chorus phases of each question as they stream, and the answer
// with its [n] citations linked to the priors.

import { h, fill, formatTime, spinner } from "./dom.js";
import { linkCitations, renderServerHtml } from "./markup.js";
import { AI_AUTHOR, label, me, nameNode } from "./names.js";
import { describeError } from "./notify.js";

// A post refused while the server's database is away (store_unavailable: nothing was stored) is sent
// again by itself after 1, 2, 4 and 8 s, then waits for the Retry button.
const AUTO_RETRY_DELAYS_MS = [1000, 2000, 4000, 8000];

const PHASES = {
  action: "Action — a first answer, without context",
  experience: "Experience — searching the priors",
  intention: "Intention — which priors serve the question",
  observation: "Observation — gaps and patterns",
  update: "Update — look again, or answer",
  yield: "Yield — the answer",
};

export class MessageFlow {
  /**
   * @param {HTMLElement} root
   * @param {{onCite: (citation: object, link: HTMLElement) => void, onRetry: (content: string) => Promise<object>, onLoadEarlier: () => void}} hooks
   */
  constructor(root, hooks) {
    this.hooks = hooks;
    this.earlier = h("button", { type: "button", class: "link load-earlier", hidden: true, onclick: () => hooks.onLoadEarlier() }, "Load earlier messages");
    this.list = h("ol", { class: "messages", role: "log", "aria-live": "polite", "aria-label": "Messages", "aria-relevant": "additions" });
    this.empty = h("p", { class: "muted empty" }, "No messages yet.");
    fill(root, this.earlier, this.empty, this.list);
    this.runs = new Map(); // ask id (or local id) → run element
    this.localCounter = 0;
  }

  reset() {
    fill(this.list);
    this.runs.clear();
    this.earlier.hidden = true;
    this.empty.hidden = false;
  }

  setHasEarlier(hasMore) {
    this.earlier.hidden = !hasMore;
  }

  /** Messages from REST (oldest first). */
  load(messages) {
    for (const m of messages) this.add(m);
  }

  // -- messages ------------------------------------------------------------------------

  /** A published message (REST view or message.posted data plus seq and time). */
  add(m) {
    const existing = this._byId(m.message_id);
    if (existing) {
      if (existing.dataset.state) this._settle(existing, m);
      return existing;
    }
    const mine = m.author === me() && !m.ask_id;
    const waiting = mine ? this._pendingWith(m.content) : null;
    if (waiting) {
      this._settle(waiting, m);
      return waiting;
    }
    const item = this._message(m);
    this._insertBySeq(item, m.seq);
    if (m.ask_id) this._attachRun(m.ask_id, item);
    return item;
  }

  /** The sender's own message before the server has it; returns its list item. */
  addPending(content) {
    const item = this._message({ author: me(), content, seq: null }, { state: "pending" });
    item.dataset.content = content;
    this.list.append(item);
    this.empty.hidden = true;
    item.scrollIntoView({ block: "nearest" });
    return item;
  }

  /** The server acknowledged a pending message: it has an id and a place. */
  acked(item, ack) {
    if (!item.dataset.state) return; // the event came first and settled it
    const twin = this._byId(ack.message_id);
    if (twin && twin !== item) {
      item.remove();
      return;
    }
    item.dataset.messageId = ack.message_id;
    item.dataset.seq = String(ack.seq);
    item.dataset.state = "sent";
    this._status(item, null);
    this._insertBySeq(item, ack.seq);
  }

  failed(item, err, attempt = 0) {
    if (item.dataset.state !== "pending") return;
    if (err && err.code === "store_unavailable" && attempt < AUTO_RETRY_DELAYS_MS.length) {
      const waitMs = AUTO_RETRY_DELAYS_MS[attempt];
      this._status(
        item,
        h("span", { class: "muted" }, spinner("Waiting"), ` The server cannot store it right now; sending again in ${waitMs / 1000} s…`),
      );
      setTimeout(() => this._retry(item, attempt + 1), waitMs);
      return;
    }
    item.dataset.state = "failed";
    const retry = h("button", { type: "button", class: "small", onclick: () => this._retry(item) }, "Retry");
    this._status(item, h("span", { class: "failed", role: "alert" }, `Not sent: ${describeError(err)} `, retry));
  }

  async _retry(item, attempt = 0) {
    if (!item.isConnected || item.dataset.messageId) return; // left the thread, or settled meanwhile
    item.dataset.state = "pending";
    this._status(item, h("span", { class: "muted" }, spinner("Sending"), " Sending…"));
    try {
      this.acked(item, await this.hooks.onRetry(item.dataset.content));
    } catch (err) {
      this.failed(item, err, attempt);
    }
  }

  _pendingWith(content) {
    return [...this.list.querySelectorAll("li.message[data-state]")].find(
      (li) => li.dataset.content === content && !li.dataset.messageId,
    );
  }

  _settle(item, m) {
    const fresh = this._message(m);
    item.replaceWith(fresh);
    this._insertBySeq(fresh, m.seq);
  }

  _byId(messageId) {
    if (!messageId) return null;
    return [...this.list.querySelectorAll("li.message")].find((li) => li.dataset.messageId === messageId) || null;
  }

  _message(m, { state = null } = {}) {
    const isAi = m.author === AI_AUTHOR;
    const deleted = Boolean(m.deleted);
    const body = h("div", { class: "message-body" });
    if (deleted) body.append(h("p", { class: "tombstone muted" }, "This message was deleted."));
    else if (m.html !== undefined && m.html !== null) body.append(renderServerHtml(m.html));
    else body.append(h("p", { class: "plain" }, m.content)); // not yet rendered by the server: plain text
    if (isAi && m.citations?.length) {
      linkCitations(body, m.citations, (c) => this._citeLink(c, `[${c.n}]`));
      body.append(this._priorList(m.citations));
    }
    const when = m.published_at || m.at;
    const mine = m.author === me() && !isAi;
    const item = h("li", {
      class: `message${isAi ? " ai" : ""}${mine ? " mine" : ""}${deleted ? " deleted" : ""}${m.mentions?.includes(me()) ? " mentions-me" : ""}`,
      tabindex: "-1",
      dataset: { author: m.author || "" },
    },
      h("article", { "aria-label": `Message from ${label(m.author)}` },
        h("header", { class: "message-head" },
          nameNode(m.author, "author"),
          isAi ? h("span", { class: "badge ai-badge" }, "AI") : null,
          when ? h("time", { datetime: when, class: "muted small" }, formatTime(when)) : null,
          (m.version || 1) > 1 ? this._editedMark(m, deleted) : null,
          // On a server that anchors on a chain, any published message can be checked in the page.
          this.hooks.onProve && !deleted ? h("button", { type: "button", class: "link small proof-button", onclick: (e) => this.hooks.onProve(e.target.closest("li.message")) }, "Verify anchor") : null,
          // One's own message can be edited or deleted once it has an id (the server has it).
          mine && !deleted && m.message_id && this.hooks.onEdit ? this._ownActions() : null),
        // An answer shows the question it answers, to everyone and after a reload.
        isAi && m.question ? h("p", { class: "answer-question muted small" }, `Question: ${m.question}`) : null,
        body,
        h("div", { class: "message-status" })));
    if (m.message_id) item.dataset.messageId = m.message_id;
    if (m.ask_id) item.dataset.askId = m.ask_id;
    item.dataset.version = String(m.version || 1);
    if (!deleted && typeof m.content === "string") item.dataset.content = m.content;
    if (m.seq !== null && m.seq !== undefined) item.dataset.seq = String(m.seq);
    if (state) {
      item.dataset.state = state;
      this._status(item, h("span", { class: "muted" }, spinner("Sending"), " Sending…"));
    }
    return item;
  }

  // -- edits and deletions -------------------------------------------------------------

  _editedMark(m, deleted) {
    const text = deleted ? "deleted · history" : "edited";
    return h("button", {
      type: "button",
      class: "link small edited-mark",
      "aria-label": `${deleted ? "Deleted" : "Edited"}: show the versions of this message`,
      onclick: (e) => this.hooks.onHistory?.(e.target.closest("li.message")),
    }, text);
  }

  _ownActions() {
    const pick = (handler) => (e) => handler(e.target.closest("li.message"), e.target.closest(".own-actions"));
    const actions = h("span", { class: "own-actions" });
    const idle = () => fill(actions,
      h("button", { type: "button", class: "link small edit-button", onclick: pick((item) => this.startEdit(item)) }, "Edit"),
      h("button", { type: "button", class: "link small delete-button", onclick: pick((item, box) => confirm(item, box)) }, "Delete"));
    // Asked in place, not in a dialog: deleting cannot be undone, and the question stays by the message.
    const confirm = (item, box) => fill(box,
      h("span", { class: "small" }, "Delete for everyone? "),
      h("button", { type: "button", class: "link small danger confirm-delete", onclick: () => this.hooks.onDelete(item) }, "Delete"),
      h("button", { type: "button", class: "link small", onclick: idle }, "Keep"));
    idle();
    return actions;
  }

  /** An inline editor in place of the message's body; saving sends message.edit. */
  startEdit(item) {
    if (item.querySelector(".edit-form")) return;
    const body = item.querySelector(".message-body");
    const text = h("textarea", { class: "edit-content", rows: 3, maxlength: "16384", "aria-label": "Edit your message" });
    text.value = item.dataset.content || "";
    const error = h("p", { class: "form-error", role: "alert" });
    const save = h("button", { type: "submit", class: "primary small" }, "Save");
    const cancel = h("button", { type: "button", class: "small", onclick: () => close() }, "Cancel");
    const form = h("form", { class: "edit-form" }, text, h("div", { class: "row" }, save, cancel), error);
    const close = () => {
      form.remove();
      body.hidden = false;
    };
    form.addEventListener("submit", async (e) => {
      e.preventDefault();
      save.disabled = true;
      try {
        await this.hooks.onEdit(item, text.value);
        close();
      } catch (err) {
        error.textContent = describeError(err);
      } finally {
        save.disabled = false;
      }
    });
    text.addEventListener("keydown", (e) => e.key === "Escape" && close());
    body.hidden = true;
    body.after(form);
    text.focus();
  }

  /** message.edited or message.deleted: the message shows its new version (or its tombstone). */
  revised(kind, data, at) {
    const item = this._byId(data.message_id);
    if (!item || Number(item.dataset.version || 1) >= data.version) return;
    const current = {
      message_id: data.message_id,
      author: data.author,
      seq: Number(item.dataset.seq),
      published_at: item.querySelector("time")?.getAttribute("datetime") || at,
      version: data.version,
      deleted: kind === "message.deleted",
      content: data.content,
      html: data.html,
    };
    const fresh = this._message(current);
    item.replaceWith(fresh);
  }

  /** A line before the first message after `readSeq` that someone else wrote: where reading resumes. */
  markFirstUnread(readSeq) {
    for (const old of this.list.querySelectorAll(".unread-marker")) old.remove();
    if (readSeq === null || readSeq === undefined) return null;
    const first = [...this.list.querySelectorAll("li.message")].find(
      (li) => Number(li.dataset.seq) > readSeq && li.dataset.author !== me(),
    );
    if (!first) return null;
    const marker = h("li", { class: "unread-marker", role: "separator", "aria-label": "New messages" }, h("span", {}, "New"));
    first.before(marker);
    return first;
  }

  /** Show `content` in a message's status line. */
  status(item, content) {
    this._status(item, content);
  }

  _status(item, content) {
    const slot = item.querySelector(".message-status");
    if (slot) fill(slot, content);
  }

  _citeLink(citation, text) {
    const link = h("button", {
      type: "button",
      class: "cite",
      "aria-label": `Source ${citation.n}: open the cited message`,
      dataset: { n: String(citation.n), messageId: citation.message_id },
    }, text);
    link.addEventListener("click", () => this.hooks.onCite(citation, link));
    return link;
  }

  _priorList(citations) {
    const items = [...citations].sort((a, b) => a.n - b.n).map((c) =>
      h("li", {}, this._citeLink(c, `[${c.n}]`), ` relevance ${Math.round(Number(c.score) * 100)}%`));
    return h("details", { class: "priors" }, h("summary", {}, `Sources (${citations.length})`), h("ul", {}, items));
  }

  // -- notes (spec outcomes, new co-authors, …) ----------------------------------------

  note(text, { seq = null, kind = "info" } = {}) {
    const item = h("li", { class: `note note-${kind}` }, text);
    if (seq !== null) {
      item.dataset.seq = String(seq);
      this._insertBySeq(item, seq);
    } else {
      this.list.append(item);
    }
    this.empty.hidden = true;
    return item;
  }

  // -- Chorus ---------------------------------------------------------------------------

  /** A question just sent; returns a local key to bind to the server's ask_id. */
  startAsk(prompt) {
    const key = `local-${++this.localCounter}`;
    const run = this._run(key, prompt);
    this.list.append(run);
    this.empty.hidden = true;
    run.scrollIntoView({ block: "nearest" });
    return key;
  }

  bindAsk(localKey, askId) {
    const local = this.runs.get(localKey);
    this.runs.delete(localKey);
    const live = this.runs.get(askId);
    if (live && local) {
      // Phases arrived before the ack: keep the live run, give it the question's text.
      live.querySelector(".run-question")?.replaceWith(local.querySelector(".run-question"));
      live.dataset.asked = "1";
      local.remove();
    } else if (local) {
      local.dataset.askId = askId;
      this.runs.set(askId, local);
    }
    // The answer may have arrived before the ack: fold the run into it now.
    const answer = [...this.list.querySelectorAll("li.message")].find((li) => li.dataset.askId === askId);
    if (answer) this._attachRun(askId, answer);
  }

  askFailed(localKey, err) {
    const run = this.runs.get(localKey);
    if (!run) return;
    run.dataset.state = "failed";
    run.removeAttribute("aria-busy");
    run.dataset.errorCode = err?.code || "error";
    fill(run.querySelector(".run-status"), h("span", { class: err?.code === "unavailable" ? "muted" : "failed", role: "alert" }, describeError(err)));
  }

  /** A chorus.phase event {ask_id, phase, state, text}; its text is shown as prose (see readable). */
  phase({ ask_id: askId, phase, state, text }) {
    let run = this.runs.get(askId);
    if (!run) {
      run = this._run(askId, null);
      run.dataset.askId = askId;
      this.list.append(run);
      this.empty.hidden = true;
    }
    const phases = run.querySelector(".phases");
    let block = [...phases.children].reverse().find((d) => d.dataset.phase === phase && d.dataset.state !== "end");
    if (state === "start" || !block) block = this._phaseBlock(phases, phase);
    const out = block.querySelector(".phase-text");
    if (text && state === "delta") block.dataset.raw = (block.dataset.raw || "") + text;
    else if (text && !block.dataset.raw) block.dataset.raw = text; // start or end carrying the whole text
    if (block.dataset.raw) out.textContent = readable(block.dataset.raw);
    if (state === "end") {
      block.dataset.state = "end";
      fill(block.querySelector(".phase-state"), "done");
      if (phase !== "yield") block.open = false;
    }
    fill(run.querySelector(".run-status"), phase === "yield" && state === "end" ? "Answer ready" : h("span", {}, spinner("Thinking"), ` ${PHASES[phase]?.split(" — ")[0] || phase}…`));
  }

  _phaseBlock(phases, phase) {
    const count = phases.querySelectorAll(`[data-phase="${CSS.escape(phase)}"]`).length;
    const title = (PHASES[phase] || phase) + (count ? ` (${count + 1})` : "");
    const block = h("details", { class: `phase phase-${phase}`, open: true, dataset: { phase, state: "running" } },
      h("summary", {}, h("span", { class: "phase-name" }, title), " ", h("span", { class: "phase-state muted small" }, "running…")),
      h("div", { class: "phase-text" }));
    for (const other of phases.querySelectorAll("details[open]")) if (other.dataset.state === "end") other.open = false;
    phases.append(block);
    return block;
  }

  _run(key, prompt) {
    // aria-busy: screen readers wait for the answer instead of reading every streamed word.
    const run = h("li", { class: "chorus-run", "aria-busy": "true", dataset: prompt ? { state: "running", asked: "1" } : { state: "running" } },
      h("div", { class: "run-head" },
        h("span", { class: "author" }, "Choir AI"), h("span", { class: "badge ai-badge" }, "AI"),
        h("span", { class: "run-status muted small" }, spinner("Thinking"), " Thinking…")),
      h("p", { class: "run-question muted small" }, prompt ? `You asked: ${prompt}` : "Someone asked a question."),
      h("div", { class: "phases" }));
    this.runs.set(key, run);
    return run;
  }

  /** The answer has come: its phases fold into it, collapsed. */
  _attachRun(askId, answerItem) {
    const run = this.runs.get(askId);
    if (!run) return;
    this.runs.delete(askId);
    run.remove();
    const phases = run.querySelector(".phases");
    for (const d of phases.querySelectorAll("details")) d.open = false;
    const trace = h("details", { class: "chorus-trace" },
      h("summary", {}, `How Choir answered (${phases.children.length} phases)`), phases);
    const article = answerItem.querySelector("article");
    const question = run.querySelector(".run-question");
    if (run.dataset.asked && !article.querySelector(".answer-question")) article.querySelector(".message-head").after(question);
    article.append(trace);
  }

  // -- placement -----------------------------------------------------------------------

  _insertBySeq(item, seq) {
    this.empty.hidden = true;
    if (seq === null || seq === undefined) {
      this.list.append(item);
      return;
    }
    const children = [...this.list.children].filter((li) => li !== item);
    let after = null;
    for (let i = children.length - 1; i >= 0; i--) {
      const s = children[i].dataset.seq;
      if (s !== undefined && Number(s) < seq) {
        after = children[i];
        break;
      }
    }
    if (after) after.after(item);
    else this.list.prepend(item);
  }

  /** Scroll to a message and make it stand out; false when it is not loaded. */
  highlight(messageId) {
    const item = this._byId(messageId);
    if (!item) return false;
    for (const old of this.list.querySelectorAll(".highlight")) old.classList.remove("highlight");
    item.classList.add("highlight");
    item.scrollIntoView({ block: "center" });
    item.focus({ preventScroll: true });
    return true;
  }

  hasMessage(messageId) {
    return Boolean(this._byId(messageId));
  }
}

/** A phase's text as people read it: Markdown quote, heading and emphasis marks dropped, and a bare
 * similarity score named. The answer itself is shown rendered; the trace is its working. */
export function readable(text) {
  return text
    .replace(/^[ \t]{0,3}(?:>[ \t]?|#{1,6}[ \t]+)/gm, "")
    .replace(/\*\*|__|`/g, "")
    .replace(/\((0\.\d\d|1\.00)\)$/gm, "(similarity $1)");
}

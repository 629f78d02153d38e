// Leaving a thread (divest): a co-author takes floor(thread balance / co-authors) and stops being a
// co-author. The confirmation reads the thread again so the share it shows is today's, not the one
// loaded with the page; the server has the last word (it may still refuse, and says why).

import { api, enc } from "./api.js";
import { formatChoir, units } from "./amount.js";
import { h, fill, spinner } from "./dom.js";
import { describeError, notify } from "./notify.js";
import { me } from "./names.js";

// DESIGN §4: a co-author may leave only this long after joining.
export const DIVEST_WAIT_DAYS = 7;

/** What leaving takes (BigInt base units): the thread's balance shared by its co-authors, rounded down. */
export function divestShare(balance, coAuthorCount) {
  if (!Number.isInteger(coAuthorCount) || coAuthorCount < 1) throw new RangeError(`no co-authors: ${coAuthorCount}`);
  return units(balance) / BigInt(coAuthorCount);
}

/** A sentence for a refused divest, from the server's error code. */
export function divestError(err) {
  const friendly = {
    last_co_author: "You are the last co-author: a thread always keeps one, so you cannot leave it.",
    divest_too_soon: `You joined less than ${DIVEST_WAIT_DAYS} days ago: co-authors can leave ${DIVEST_WAIT_DAYS} days after joining.`,
    not_co_author: "You are not a co-author of this thread any more.",
    thread_not_found: "This thread does not exist any more.",
  };
  return friendly[err?.code] || describeError(err);
}

let counter = 0;

export class LeaveThread {
  /**
   * @param {string} threadId
   * @param {{request: (type: string, payload: object) => Promise<object>, onLeft: (ack: {amount: string, seq: number}) => void}} hooks
   */
  constructor(threadId, hooks) {
    this.threadId = threadId;
    this.hooks = hooks;
    const panelId = `leave-confirm-${++counter}`;
    this.button = h("button", { type: "button", class: "small leave-toggle", "aria-expanded": "false", "aria-controls": panelId, onclick: () => (this.panel.hidden ? this.openConfirm() : this.closeConfirm(true)) }, "Leave thread");
    this.panel = h("div", { id: panelId, class: "leave-confirm", role: "group", "aria-label": "Leave this thread", hidden: true });
    this.panel.addEventListener("keydown", (e) => {
      if (e.key === "Escape") {
        e.preventDefault();
        this.closeConfirm(true);
      }
    });
    this.root = h("div", { class: "leave" }, this.button, this.panel);
  }

  async openConfirm() {
    this.panel.hidden = false;
    this.button.setAttribute("aria-expanded", "true");
    fill(this.panel, h("p", { class: "muted small" }, spinner("Reading the thread's balance"), " Reading the thread's balance…"));
    let detail;
    try {
      detail = await api.get(`/api/threads/${enc(this.threadId)}`);
    } catch (err) {
      this._show(h("p", { class: "form-error", role: "alert" }, divestError(err)), this._cancel("Close"));
      return;
    }
    if (this.panel.hidden) return;
    const count = detail.co_authors.length;
    if (count < 2) {
      this._show(h("p", { class: "form-error", role: "alert" }, divestError({ code: "last_co_author" })), this._cancel("Close"));
      return;
    }
    const opens = detail.leave_locked_until?.[me()];
    if (opens) {
      // Leaving is refused during the lock: say when it opens instead of offering a button that fails.
      this._show(
        h("p", { class: "leave-locked" }, `You can leave this thread from ${new Date(opens).toLocaleString()}: co-authors stay at least ${DIVEST_WAIT_DAYS} days after joining.`),
        this._cancel("Close"));
      return;
    }
    const share = divestShare(detail.balance, count);
    const error = h("p", { class: "form-error", role: "alert" });
    const confirm = h("button", { type: "button", class: "danger" }, `Leave and take ${formatChoir(share)}`);
    confirm.addEventListener("click", () => this._leave(confirm, error));
    this._show(
      h("p", {}, "You would take ", h("strong", { class: "leave-share", dataset: { units: share.toString() } }, formatChoir(share)),
        `: the thread's balance of ${formatChoir(detail.balance)} shared by its ${count} co-authors, rounded down.`),
      h("p", { class: "muted small" }, `You stop being a co-author and a voter on its pending specs. Co-authors can leave only ${DIVEST_WAIT_DAYS} days after joining.`),
      h("div", { class: "row" }, confirm, this._cancel("Cancel")),
      error);
  }

  closeConfirm(returnFocus = false) {
    this.panel.hidden = true;
    this.button.setAttribute("aria-expanded", "false");
    fill(this.panel);
    if (returnFocus) this.button.focus();
  }

  _show(...children) {
    if (this.panel.hidden) return;
    fill(this.panel, ...children);
    this.panel.querySelector("button")?.focus();
  }

  _cancel(label) {
    return h("button", { type: "button", class: "small", onclick: () => this.closeConfirm(true) }, label);
  }

  async _leave(confirm, error) {
    error.textContent = "";
    confirm.disabled = true;
    confirm.setAttribute("aria-busy", "true");
    try {
      const ack = await this.hooks.request("thread.divest", { thread_id: this.threadId });
      this.closeConfirm();
      notify(`You left the thread, taking ${formatChoir(ack.amount)}.`);
      this.hooks.onLeft(ack);
    } catch (err) {
      error.textContent = divestError(err);
      confirm.disabled = false;
      confirm.removeAttribute("aria-busy");
    }
  }
}

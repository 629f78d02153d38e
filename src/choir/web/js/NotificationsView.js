// The notifications view: a button in the top bar with the unread count, and a panel listing what
// the person was told (mentions, replies in threads they follow, specs awaiting their vote, the
// outcomes of their specs, rewards with amount and reason). Opening one goes to it and marks it read;
// "Mark all read" marks the rest.

import { formatChoir } from "./amount.js";
import { h, fill, formatTime } from "./dom.js";
import { nameNode } from "./names.js";
import { threadHash } from "./router.js";

export class NotificationsView {
  /** @param {HTMLElement} buttonRoot @param {HTMLElement} panel @param {import("./Inbox.js").Inbox} inbox */
  constructor(buttonRoot, panel, inbox) {
    this.inbox = inbox;
    this.panel = panel;
    this.count = h("span", { class: "count", id: "notifications-count" });
    this.button = h("button", {
      type: "button",
      id: "notifications-button",
      class: "notifications-button",
      "aria-controls": "notifications-panel",
      "aria-expanded": "false",
      onclick: () => (this.panel.hidden ? this.show() : this.hide()),
    }, "Notifications ", this.count);
    fill(buttonRoot, this.button);
    this.list = h("ol", { class: "notifications", "aria-label": "Notifications" });
    fill(panel,
      h("div", { class: "panel-head" }, h("h2", {}, "Notifications"),
        h("button", { type: "button", class: "link small", id: "notifications-read-all", onclick: () => inbox.markRead() }, "Mark all read"),
        h("button", { type: "button", class: "link small", "aria-label": "Close notifications", onclick: () => this.hide() }, "Close")),
      this.list);
    inbox.addEventListener("change", () => this.render());
    document.addEventListener("keydown", (e) => e.key === "Escape" && !this.panel.hidden && this.hide());
    this.render();
  }

  show() {
    this.panel.hidden = false;
    this.button.setAttribute("aria-expanded", "true");
    this.render();
    this.panel.querySelector("button")?.focus();
  }

  hide() {
    this.panel.hidden = true;
    this.button.setAttribute("aria-expanded", "false");
  }

  render() {
    const unread = this.inbox.unread;
    this.count.textContent = unread ? String(unread) : "";
    this.count.hidden = !unread;
    this.button.setAttribute("aria-label", unread ? `Notifications, ${unread} unread` : "Notifications");
    if (this.panel.hidden) return;
    const notes = this.inbox.list();
    if (!notes.length) {
      fill(this.list, h("li", { class: "muted small empty" }, "Nothing yet. Mentions, replies in threads you follow, votes asked of you, your specs' outcomes and your rewards show here."));
      return;
    }
    fill(this.list, notes.map((note) => this._item(note)));
  }

  _item(note) {
    const link = h("a", {
      href: note.thread_id ? threadHash(note.thread_id, messageOf(note)) : "#/",
      class: "notification-link",
      onclick: () => {
        if (!note.read) this.inbox.markRead([note.id]);
        this.hide();
      },
    }, describe(note));
    return h("li", { class: `notification kind-${note.kind.replace(".", "-")}${note.read ? "" : " unread"}`, dataset: { id: String(note.id), kind: note.kind } },
      link, h("time", { class: "muted small", datetime: note.at }, formatTime(note.at)));
  }
}

function messageOf(note) {
  return note.kind === "mention" || note.kind === "reply" ? note.ref : null;
}

const OUTCOMES = { approved: "approved: you are a co-author", denied: "denied", mixed: "not approved by everyone", expired: "expired without every vote" };

/** What a notification says, as nodes (names follow what is learnt later). */
export function describe(note) {
  const d = note.data || {};
  const title = d.title ? `“${d.title}”` : "a thread";
  const excerpt = d.excerpt ? h("span", { class: "excerpt muted" }, ` ${d.excerpt}`) : null;
  switch (note.kind) {
    case "mention":
      return [nameNode(d.author), ` mentioned you in ${title}:`, excerpt];
    case "reply":
      return [nameNode(d.author), d.author === "choir-ai" ? ` answered in ${title}:` : ` wrote in ${title}:`, excerpt];
    case "spec.awaiting":
      return [nameNode(d.author), ` asks to join ${title}, staking ${formatChoir(d.stake)}: your vote is needed.`, excerpt];
    case "spec.outcome":
      return [`Your spec in ${title} was ${OUTCOMES[d.outcome] || d.outcome}.`];
    case "reward":
      return d.reward === "prior"
        ? [`${formatChoir(d.amount)} paid to a thread you co-author: ${d.reason || "a reward"}.`]
        : [`You received ${formatChoir(d.amount)}: ${d.reason || "a reward"}.`];
    default:
      return [note.kind];
  }
}

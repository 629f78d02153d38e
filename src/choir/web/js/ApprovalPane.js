// ApprovalPane: the specs waiting for votes in a thread, the co-authors' vote buttons, and the
// outcome of each settled spec with where its stake went.

import { formatChoir } from "./amount.js";
import { h, fill, formatTime } from "./dom.js";
import { accountLabel, label, me, nameNode } from "./names.js";
import { describeError } from "./notify.js";

const OUTCOMES_SHOWN_MAX = 5;
const OUTCOME_TEXT = {
  approved: "Approved: the author is now a co-author and the message is published.",
  denied: "Denied: the stake goes to the thread.",
  mixed: "Split vote: rejected; the stake is shared by the treasury and the thread.",
  expired: "Expired before every vote: the stake goes to the treasury.",
};

export class ApprovalPane {
  /** @param {{vote: (specId: string, approve: boolean) => Promise<object>}} hooks */
  constructor(root, hooks) {
    this.root = root;
    this.hooks = hooks;
    this.specs = new Map(); // spec id → spec (pending)
    this.outcomes = []; // newest first
    this.heading = h("h3", { id: "approval-heading" }, "Specs");
    this.body = h("div", { class: "approval-body" });
    fill(root, this.heading, this.body);
    root.setAttribute("aria-labelledby", "approval-heading");
  }

  reset(pendingSpecs = []) {
    this.specs = new Map(pendingSpecs.map((s) => [s.spec_id, { ...s, votes: [...(s.votes || [])] }]));
    this.outcomes = [];
    this.render();
  }

  submitted(data) {
    if (!this.specs.has(data.spec_id)) this.specs.set(data.spec_id, { ...data, votes: [] });
    this.render();
  }

  voted({ spec_id: specId, voter, approve }) {
    const spec = this.specs.get(specId);
    if (spec && !spec.votes.some((v) => v.voter === voter)) spec.votes.push({ voter, approve });
    this.render();
  }

  settled(data) {
    const spec = this.specs.get(data.spec_id);
    this.specs.delete(data.spec_id);
    this.outcomes.unshift({ ...data, spec });
    this.outcomes.length = Math.min(this.outcomes.length, OUTCOMES_SHOWN_MAX);
    this.render();
  }

  render() {
    const pending = [...this.specs.values()];
    this.heading.textContent = pending.length ? `Specs awaiting votes (${pending.length})` : "Specs";
    this.root.hidden = !pending.length && !this.outcomes.length;
    fill(this.body,
      pending.length ? h("ul", { class: "specs" }, pending.map((s) => this._spec(s))) : h("p", { class: "muted small" }, "No spec is waiting for votes."),
      this.outcomes.length ? h("div", { class: "outcomes" }, h("h4", {}, "Recent outcomes"),
        h("ul", { class: "specs" }, this.outcomes.map((o) => this._outcome(o)))) : null);
  }

  _spec(spec) {
    const votedBy = new Map(spec.votes.map((v) => [v.voter, v.approve]));
    const mine = spec.author === me();
    const canVote = spec.voters.includes(me()) && !votedBy.has(me());
    const error = h("p", { class: "form-error", role: "alert" });
    return h("li", { class: "spec", dataset: { specId: spec.spec_id } },
      h("div", { class: "spec-head" },
        nameNode(spec.author, "author"),
        h("span", { class: "stake" }, `stakes ${formatChoir(spec.stake)}`)),
      h("p", { class: "spec-content" }, spec.content),
      h("p", { class: "muted small" },
        `${votedBy.size} of ${spec.voters.length} voted · expires ${formatTime(spec.expires_at)}`),
      h("ul", { class: "votes", "aria-label": "Votes" }, spec.voters.map((voter) => {
        const vote = votedBy.get(voter);
        const text = vote === undefined ? "not yet" : vote ? "approves" : "denies";
        return h("li", { class: vote === undefined ? "vote" : vote ? "vote yes" : "vote no" }, nameNode(voter), `: ${text}`);
      })),
      canVote ? h("div", { class: "row vote-actions" },
        h("button", { type: "button", class: "primary", onclick: (e) => this._vote(spec, true, e.target, error) }, "Approve"),
        h("button", { type: "button", onclick: (e) => this._vote(spec, false, e.target, error) }, "Deny")) : null,
      mine ? h("p", { class: "muted small" }, "Your spec: waiting for the co-authors' votes.") : null,
      error);
  }

  async _vote(spec, approve, button, error) {
    const buttons = button.parentElement.querySelectorAll("button");
    for (const b of buttons) b.disabled = true;
    button.setAttribute("aria-busy", "true");
    error.textContent = "";
    try {
      await this.hooks.vote(spec.spec_id, approve);
    } catch (err) {
      error.textContent = describeError(err);
      for (const b of buttons) b.disabled = false;
    } finally {
      button.removeAttribute("aria-busy");
    }
  }

  _outcome({ spec_id: specId, outcome, transfers, spec }) {
    return h("li", { class: `spec outcome outcome-${outcome}`, dataset: { specId, outcome } },
      h("div", { class: "spec-head" },
        spec ? nameNode(spec.author, "author") : h("span", { class: "author" }, "A spec"),
        h("span", { class: `badge outcome-badge` }, outcome)),
      h("p", { class: "small" }, OUTCOME_TEXT[outcome] || outcome),
      transfers?.length ? h("ul", { class: "transfers", "aria-label": "Token movements" },
        transfers.map((t) => h("li", {}, `${formatChoir(t.amount)}: `, accountNode(t.debit), " → ", accountNode(t.credit)))) : null);
  }
}

/** One line for the message flow when a spec settles (nodes, so names can update). */
export function outcomeNote(data, spec) {
  const who = spec ? [nameNode(spec.author), "'s spec"] : ["A spec"];
  const what = { approved: " was approved", denied: " was denied", mixed: " was rejected by a split vote", expired: " expired" }[data.outcome] || ` ${data.outcome}`;
  const moved = (data.transfers || []).flatMap((t, i) => [i ? ", " : " · ", `${formatChoir(t.amount)} → `, accountNode(t.credit)]);
  return [...who, what, ...moved];
}

/** An account of a transfer ("user:…" follows the person's name). */
export function accountNode(account) {
  const [kind, rest] = String(account).split(/:(.*)/s);
  return kind === "user" ? nameNode(rest) : h("span", {}, accountLabel(account));
}

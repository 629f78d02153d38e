// ChoirChat: one thread — its header (co-authors, balances, stakes), the MessageFlow, the
// ApprovalPane, and the forms: post (co-authors), submit a spec (everyone else), ask Choir.

import { api, enc } from "./api.js";
import { ceilTo, formatChoir, parseChoir, toInput, units } from "./amount.js";
import { ApprovalPane, outcomeNote } from "./ApprovalPane.js";
import { checkMessage } from "./proof.js";
import { LeaveThread } from "./Divest.js";
import { h, fill, spinner } from "./dom.js";
import { toggleHistory } from "./History.js";
import { Mentions } from "./Mentions.js";
import { MessageFlow } from "./MessageFlow.js";
import { learn, me, nameNode } from "./names.js";
import { describeError, notify } from "./notify.js";
import { accountBalance } from "./WalletView.js";

const PAGE = 50;
// Pages fetched backwards to find a message a citation points at, before giving up.
const JUMP_PAGES_MAX = 20;
// Read marks are sent at most this often while messages arrive in the open thread (the socket allows
// 100 frames a minute, for everything).
const READ_MARK_EVERY_MS = 1500;

export class ChoirChat {
  /**
   * @param {HTMLElement} root
   * @param {{socket: import("./socket.js").ChoirSocket, wallet: import("./WalletView.js").WalletView,
   *   prior: import("./PriorPanel.js").PriorPanel, onThread: (thread: object) => void}} deps
   */
  constructor(root, deps) {
    this.root = root;
    this.deps = deps;
    this.threadId = null;
    this.thread = null;
    this.oldestSeq = null;
    this.token = 0;
    this.header = h("header", { class: "thread-head" });
    this.flowRoot = h("section", { class: "flow", "aria-label": "Messages" });
    this.approvalRoot = h("section", { class: "approval", hidden: true });
    this.composer = h("section", { class: "composer", "aria-label": "Write" });
    this.askRoot = h("section", { class: "ask", "aria-label": "Ask Choir" });
    this.flow = new MessageFlow(this.flowRoot, {
      onCite: (citation, link) => deps.prior.open(citation, link),
      onRetry: (content) => this._send(content),
      onLoadEarlier: () => this.loadEarlier(),
      onProve: deps.settlement && deps.settlement !== "none" ? (item) => this.prove(item) : null,
      onEdit: deps.readOnly ? null : (item, content) => deps.socket.request("message.edit", { message_id: item.dataset.messageId, content }),
      onDelete: (item) => this.deleteMessage(item),
      onHistory: (item) => toggleHistory(item, { threadId: this.threadId, canProve: Boolean(deps.settlement && deps.settlement !== "none") }),
    });
    this.readTimer = null;
    this.approval = new ApprovalPane(this.approvalRoot, { vote: (specId, approve) => deps.socket.request("spec.vote", { spec_id: specId, approve }) });
    this.welcome();
  }

  welcome() {
    this.threadId = null;
    fill(this.root, h("div", { class: "welcome" },
      h("h1", { tabindex: "-1" }, "Choir"),
      h("p", { class: "lead" }, "Pick a thread, or start one. Co-authors write; anyone can ask to join by staking CHOIR on a message, and anyone can ask the Choir AI, which answers with the messages it learnt from.")));
  }

  /** Show a thread (and, when messageId is given, that message). */
  async open(threadId, messageId = null) {
    if (threadId === this.threadId && this.thread) {
      if (messageId) await this.jumpTo(messageId);
      return;
    }
    const token = ++this.token;
    if (this.threadId) this.deps.socket.unsubscribe(this.threadId);
    this.threadId = threadId;
    this.thread = null;
    this.leave = new LeaveThread(threadId, {
      request: (type, payload) => this.deps.socket.request(type, payload),
      onLeft: () => this._left(threadId),
    });
    this.flow.reset();
    this.flowRoot.hidden = false;
    fill(this.header, h("p", { class: "muted" }, spinner("Loading the thread"), " Loading the thread…"));
    fill(this.root, this.header, this.approvalRoot, this.flowRoot, this.composer, this.askRoot);
    fill(this.composer);
    fill(this.askRoot);
    try {
      const [detail, page] = await Promise.all([
        api.get(`/api/threads/${enc(threadId)}`),
        api.get(`/api/threads/${enc(threadId)}/messages?limit=${PAGE}`),
      ]);
      if (token !== this.token) return;
      this.thread = detail;
      learn(detail.display_names);
      this.flow.load(page.messages);
      this.flow.setHasEarlier(page.has_more);
      this.oldestSeq = page.messages.length ? page.messages[0].seq : null;
      this.approval.reset(detail.pending_specs);
      // The events from the oldest message shown on are replayed (the spec, vote and outcome notes
      // between the messages, which a page of messages does not carry), then live ones follow. What
      // the thread's state already counts is only drawn, not applied again.
      this.loadedSeq = detail.last_seq;
      const since = this.oldestSeq === null ? 1 : Math.max(0, this.oldestSeq - 1);
      this.deps.socket.subscribe(threadId, since).catch((err) => notify(describeError(err), { kind: "error" }));
      this.renderHeader();
      this.renderComposer();
      this.renderAsk();
      this.deps.onThread(detail);
      if (this.deps.inbox) {
        await this.deps.inbox.ready;
        if (token !== this.token) return;
        this.renderHeader(); // the Follow button, now that the inbox is known
      }
      this.root.querySelector("h1")?.focus({ preventScroll: true });
      // Where reading resumes: the first message by someone else after the person's read mark.
      const mark = this.deps.inbox?.threads.get(threadId);
      const firstUnread = mark ? this.flow.markFirstUnread(mark.read_seq) : null;
      if (messageId) await this.jumpTo(messageId);
      else if (firstUnread) firstUnread.previousElementSibling?.scrollIntoView({ block: "start" });
      else this.flowRoot.querySelector(".messages")?.lastElementChild?.scrollIntoView({ block: "end" });
      this.deps.inbox?.readThread(threadId, detail.last_seq);
    } catch (err) {
      if (token !== this.token) return;
      fill(this.header, h("h1", { tabindex: "-1" }, "This thread cannot be shown"),
        h("p", { class: "form-error", role: "alert" }, err.code === "thread_not_found" ? "There is no such thread, or it is private to its co-authors." : describeError(err)));
      // Hidden, not emptied: the message list lives in it, and the next thread opened needs it back.
      this.flowRoot.hidden = true;
    }
  }

  async loadEarlier() {
    if (this.oldestSeq === null) return;
    const threadId = this.threadId;
    const page = await api.get(`/api/threads/${enc(threadId)}/messages?limit=${PAGE}&before=${this.oldestSeq}`);
    if (threadId !== this.threadId) return;
    this.flow.load(page.messages);
    this.flow.setHasEarlier(page.has_more);
    if (page.messages.length) this.oldestSeq = page.messages[0].seq;
    return page.has_more;
  }

  async jumpTo(messageId) {
    for (let i = 0; i < JUMP_PAGES_MAX && !this.flow.hasMessage(messageId); i++) {
      if (!(await this.loadEarlier())) break;
    }
    if (!this.flow.highlight(messageId)) notify("That message is not in this thread any more.", { kind: "error" });
  }

  /** An event the page's thread state already includes (replayed on open): drawn, not applied again. */
  _replayed(kind, data, seq, at) {
    if (kind === "message.posted") {
      if (!this.flow.hasMessage(data.message_id)) this.flow.add({ ...data, seq, published_at: at });
    } else if (kind === "message.edited" || kind === "message.deleted") {
      this.flow.revised(kind, data, at);
    } else {
      this._note(kind, data, seq);
    }
  }

  /** The note a spec or co-author event draws between the messages. */
  _note(kind, data, seq) {
    const notes = {
      "spec.submitted": () => [[nameNode(data.author), ` submitted a spec, staking ${formatChoir(data.stake)}`], "info"],
      "spec.voted": () => [[nameNode(data.voter), ` ${data.approve ? "approved" : "denied"} a spec`], "info"],
      "spec.settled": () => [outcomeNote(data, this.approval.specs.get(data.spec_id)), "money"],
      "coauthor.joined": () => [[nameNode(data.address), " is now a co-author"], "join"],
      "coauthor.left": () => [[nameNode(data.address), ` left, taking ${formatChoir(data.amount)}`], "money"],
    };
    if (!notes[kind]) return;
    const [text, noteKind] = notes[kind]();
    this.flow.note(text, { seq, kind: noteKind });
  }

  /** Verify a message's anchor in this page: its content hashed here, its proof walked to the root. */
  async prove(item) {
    const id = item?.dataset.messageId;
    if (!id) return;
    this.flow.status(item, h("span", { class: "muted small" }, spinner("Verifying"), " Verifying the anchor…"));
    try {
      const [message, proof] = await Promise.all([
        api.get(`/api/messages/${enc(id)}`),
        api.get(`/api/messages/${enc(id)}/proof`),
      ]);
      const result = await checkMessage(message, proof);
      item.dataset.proof = result.ok ? "verified" : "failed";
      this.flow.status(item, h("span", { class: `small proof-result ${result.ok ? "ok" : "form-error"}` }, result.ok
        ? `Anchored and verified in this browser: its content is in the Merkle root of transaction ${proof.signature.slice(0, 10)}… (${proof.chain}), checked against ${result.source}.`
        : `Not verified: ${result.reason}.`));
    } catch (err) {
      item.dataset.proof = err.code === "not_anchored" ? "pending" : "failed";
      this.flow.status(item, h("span", { class: "small proof-result muted" }, err.code === "not_anchored" ? "Not anchored yet: the next settlement batch will anchor it." : describeError(err)));
    }
  }

  async deleteMessage(item) {
    try {
      await this.deps.socket.request("message.delete", { message_id: item.dataset.messageId });
    } catch (err) {
      notify(describeError(err), { kind: "error" });
    }
  }

  /** The open thread was read up to `seq` (sent at most every READ_MARK_EVERY_MS). */
  _readUpTo(seq) {
    if (!this.deps.inbox || document.visibilityState !== "visible") return;
    this.pendingRead = Math.max(this.pendingRead || 0, seq);
    if (this.readTimer) return;
    const threadId = this.threadId;
    this.readTimer = setTimeout(() => {
      this.readTimer = null;
      if (threadId === this.threadId) this.deps.inbox.readThread(threadId, this.pendingRead);
    }, READ_MARK_EVERY_MS);
  }

  isCoAuthor() {
    return Boolean(this.thread?.co_authors.includes(me()));
  }

  // -- live events ---------------------------------------------------------------------

  handle({ thread_id: threadId, seq, kind, data, at }) {
    if (threadId !== this.threadId || !this.thread) return;
    if (seq !== null && seq !== undefined && seq <= (this.loadedSeq ?? -1)) {
      this._replayed(kind, data, seq, at);
      return;
    }
    if (seq !== null && seq !== undefined) this.thread.last_seq = seq;
    switch (kind) {
      case "message.posted":
        this.flow.add({ ...data, seq, published_at: at });
        this.thread.message_count += 1;
        this.deps.onThread(this.thread);
        this._readUpTo(seq);
        break;
      case "message.edited":
      case "message.deleted":
        this.flow.revised(kind, data, at);
        break;
      case "spec.submitted":
        this.approval.submitted(data);
        this._note(kind, data, seq);
        break;
      case "spec.voted":
        this.approval.voted(data);
        this._note(kind, data, seq);
        break;
      case "spec.settled":
        this._note(kind, data, seq);
        this.approval.settled(data);
        this.refreshThread();
        this.deps.wallet.refresh();
        break;
      case "coauthor.joined":
        this._note(kind, data, seq);
        this.refreshThread();
        break;
      case "coauthor.left":
        this._note(kind, data, seq);
        // A private thread is closed to the one who left: their page closes it on the divest's ack.
        if (data.address === me() && this.thread.visibility === "private") break;
        this.refreshThread();
        this.deps.wallet.refresh();
        break;
      case "chorus.phase":
        this.flow.phase(data);
        break;
      default:
        break;
    }
  }

  async refreshThread() {
    const threadId = this.threadId;
    try {
      const detail = await api.get(`/api/threads/${enc(threadId)}`);
      if (threadId !== this.threadId) return;
      const wasCoAuthor = this.isCoAuthor();
      this.thread = { ...detail, last_seq: Math.max(detail.last_seq, this.thread?.last_seq ?? 0) };
      learn(detail.display_names);
      this.renderHeader();
      if (wasCoAuthor !== this.isCoAuthor()) this.renderComposer();
      else this._refreshStakeHints();
      this.deps.onThread(detail);
    } catch (err) {
      notify(describeError(err), { kind: "error" });
    }
  }

  // -- header --------------------------------------------------------------------------

  renderHeader() {
    const t = this.thread;
    const coAuthors = h("ul", { class: "co-authors", "aria-label": "Co-authors" }, t.co_authors.map((address) => {
      const balance = h("span", { class: "muted small co-author-balance" });
      accountBalance(address).then((units) => {
        balance.textContent = formatChoir(units);
        balance.dataset.units = units;
      }).catch(() => {});
      return h("li", { class: "chip", dataset: { address } }, nameNode(address), " ", balance);
    }));
    fill(this.header,
      h("h1", { tabindex: "-1" }, t.title),
      h("ul", { class: "thread-facts muted small", "aria-label": "About this thread" },
        h("li", {}, h("span", { class: "badge" }, t.visibility)),
        h("li", {}, "Thread balance ", h("strong", { id: "thread-balance", dataset: { units: t.balance } }, formatChoir(t.balance))),
        h("li", {}, `Minimum stake ${formatChoir(t.min_stake)}`),
        h("li", {}, `Recommended ${formatChoir(t.recommended_stake, { decimals: 2 })}`)),
      h("div", { class: "co-authors-row" }, h("span", { class: "muted small" }, `Co-authors (${t.co_authors.length})`), coAuthors),
      this._followButton(),
      this.isCoAuthor() ? this.leave.root : null);
  }

  /** Follow: be told of every new message here (writing or asking in a thread follows it). */
  _followButton() {
    const inbox = this.deps.inbox;
    if (!inbox || this.deps.readOnly) return null;
    const threadId = this.threadId;
    const following = inbox.thread(threadId).following;
    return h("button", {
      type: "button",
      id: "follow-thread",
      class: following ? "small following" : "small",
      "aria-pressed": String(following),
      onclick: async (e) => {
        e.target.disabled = true;
        try {
          await inbox.follow(threadId, !following);
          notify(following ? "Unfollowed: new messages here no longer notify you." : "Following: you are told of new messages here.");
        } catch (err) {
          notify(describeError(err), { kind: "error" });
        }
        if (threadId === this.threadId) this.renderHeader();
      },
    }, following ? "Following" : "Follow");
  }

  /** After this person left the thread: their balance grew; a private thread is closed to them now. */
  _left(threadId) {
    this.deps.wallet.refresh();
    if (threadId !== this.threadId) return;
    if (this.thread?.visibility === "private") {
      this.deps.socket.unsubscribe(threadId);
      this.threadId = null;
      location.hash = "#/";
      return;
    }
    this.refreshThread();
  }

  // -- composer: post or spec ------------------------------------------------------------

  renderComposer() {
    if (this.deps.readOnly) {
      // Signed out: the thread is readable; writing, joining and asking need a key.
      fill(this.composer, h("div", { class: "signin-prompt" },
        h("p", {}, "You are reading as a guest. Sign in to post, to join this thread or to ask Choir."),
        h("button", { type: "button", class: "primary", id: "guest-signin", onclick: () => this.deps.onSignIn() }, "Sign in")));
      return;
    }
    fill(this.composer, this.isCoAuthor() ? this._postForm() : this._specForm());
  }

  _postForm() {
    const text = h("textarea", { id: "post-content", rows: 2, maxlength: "16384", placeholder: "Write a message (Markdown works; @ mentions someone). Enter sends, Shift+Enter for a new line." });
    const button = h("button", { type: "submit", class: "primary" }, "Send");
    const form = h("form", { class: "post-form" }, h("label", { for: "post-content", class: "visually-hidden" }, "Message"), text, button);
    // Before the composer's own keys: while the list of people is open, Enter picks one.
    this.mentions = new Mentions(text, () => this.threadId);
    const submit = () => {
      const content = text.value;
      if (!content.trim()) return;
      text.value = "";
      const item = this.flow.addPending(content);
      this._send(content).then((ack) => this.flow.acked(item, ack), (err) => this.flow.failed(item, err));
    };
    form.addEventListener("submit", (e) => {
      e.preventDefault();
      submit();
    });
    text.addEventListener("keydown", (e) => {
      if (e.key === "Enter" && !e.shiftKey && !e.isComposing) {
        e.preventDefault();
        submit();
      }
    });
    return form;
  }

  _send(content) {
    return this.deps.socket.request("post", { thread_id: this.threadId, content });
  }

  _specForm() {
    const t = this.thread;
    const content = h("textarea", { id: "spec-content", rows: 3, maxlength: "16384", required: true, placeholder: "What would you add to this thread?" });
    const stake = h("input", { id: "spec-stake", inputmode: "decimal", autocomplete: "off", value: toInput(t.min_stake), "aria-describedby": "stake-hints" });
    const hints = h("p", { id: "stake-hints", class: "muted small" });
    const useRecommended = h("button", { type: "button", class: "link small", onclick: () => { stake.value = toInput(this._recommended()); } }, "Use the recommended stake");
    this.useRecommended = useRecommended;
    const error = h("p", { class: "form-error", role: "alert" });
    const button = h("button", { type: "submit", class: "primary" }, "Submit spec");
    const form = h("form", { class: "spec-form", "aria-labelledby": "spec-heading" },
      h("h2", { id: "spec-heading" }, "Join this thread"),
      h("p", { class: "muted small" }, "Only co-authors post here. Submit a message with a stake: if every co-author approves, it is published, you become a co-author, and your stake is shared among them. Otherwise the stake goes to the thread (or the treasury)."),
      h("label", { for: "spec-content" }, "Your message"), content,
      h("label", { for: "spec-stake" }, "Stake (CHOIR)"),
      h("div", { class: "row" }, stake, useRecommended),
      hints, button, error);
    this.stakeHints = hints;
    this._refreshStakeHints();
    form.addEventListener("submit", async (e) => {
      e.preventDefault();
      error.textContent = "";
      let amount;
      try {
        amount = this._checkStake(stake.value);
      } catch (err) {
        error.textContent = err.message;
        stake.focus();
        return;
      }
      if (!content.value.trim()) {
        error.textContent = "Write the message you want to add.";
        content.focus();
        return;
      }
      button.disabled = true;
      button.setAttribute("aria-busy", "true");
      try {
        await this.deps.socket.request("spec.submit", { thread_id: this.threadId, content: content.value, stake: amount.toString() });
        content.value = "";
        notify("Spec submitted: the co-authors will vote on it.");
        this.deps.wallet.refresh().then(() => this._refreshStakeHints());
      } catch (err) {
        error.textContent = describeError(err);
      } finally {
        button.disabled = false;
        button.removeAttribute("aria-busy");
      }
    });
    return form;
  }

  _recommended() {
    // The hint never exceeds what the person can pay, nor falls under the enforced minimum.
    const rec = ceilTo(this.thread.recommended_stake, 2);
    const min = units(this.thread.min_stake);
    const balance = this.deps.wallet.balance();
    const capped = rec > balance ? balance : rec;
    return capped < min ? min : capped;
  }

  _checkStake(text) {
    const amount = parseChoir(text);
    if (amount < units(this.thread.min_stake)) throw new Error(`The minimum stake here is ${formatChoir(this.thread.min_stake)}.`);
    if (amount > this.deps.wallet.balance()) throw new Error(`Your balance is ${formatChoir(this.deps.wallet.balance())}.`);
    return amount;
  }

  _refreshStakeHints() {
    if (!this.stakeHints || !this.thread) return;
    const t = this.thread;
    const balance = this.deps.wallet.balance();
    const minimum = `Minimum ${formatChoir(t.min_stake)}`;
    const recommended = `recommended ${formatChoir(t.recommended_stake, { decimals: 2 })}`;
    // A recommendation one cannot pay is no advice: say what can be staked instead.
    if (balance < units(t.min_stake)) {
      this.stakeHints.textContent = `${minimum}, more than your balance of ${formatChoir(balance)}: you cannot stake here yet. Posting in your own threads and being cited earn CHOIR.`;
    } else if (units(t.recommended_stake) > balance) {
      this.stakeHints.textContent = `${minimum} · ${recommended}, more than your balance of ${formatChoir(balance)}: you can stake up to ${formatChoir(balance)}.`;
    } else {
      this.stakeHints.textContent = `${minimum} · ${recommended} · your balance ${formatChoir(balance)}`;
    }
    if (this.useRecommended) {
      this.useRecommended.textContent = units(t.recommended_stake) > balance ? "Use the most you can stake" : "Use the recommended stake";
    }
  }

  // -- ask Choir -------------------------------------------------------------------------

  renderAsk() {
    if (this.deps.readOnly) {
      fill(this.askRoot);
      return;
    }
    const prompt = h("input", { id: "ask-prompt", maxlength: "4096", autocomplete: "off", placeholder: "Ask a question; the answer cites the messages it draws on" });
    const button = h("button", { type: "submit" }, "Ask Choir");
    const form = h("form", { class: "ask-form" }, h("label", { for: "ask-prompt" }, "Ask Choir"), h("div", { class: "row" }, prompt, button));
    form.addEventListener("submit", async (e) => {
      e.preventDefault();
      const text = prompt.value.trim();
      if (!text) return;
      prompt.value = "";
      const key = this.flow.startAsk(text);
      try {
        const { ask_id: askId } = await this.deps.socket.request("ask", { thread_id: this.threadId, prompt: text });
        this.flow.bindAsk(key, askId);
      } catch (err) {
        this.flow.askFailed(key, err);
      }
    });
    fill(this.askRoot, form);
  }
}

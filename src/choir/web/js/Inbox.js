// The person's inbox, kept by the server (so it follows them to another browser): per thread whether
// they follow it, how far they have read and how many messages by others are unread; and their
// notifications, resumed after the last id held whenever the socket (re)opens. Dispatches "change".

import { api } from "./api.js";
import { learn } from "./names.js";
import { describeError, notify } from "./notify.js";

const REFRESH_DEBOUNCE_MS = 300;
const PAGE = 50;

export class Inbox extends EventTarget {
  constructor(socket) {
    super();
    this.socket = socket;
    this.threads = new Map(); // thread id → {following, read_seq, unread, first_unread_seq}
    this.notes = new Map(); // notification id → notification
    this.lastId = 0;
    this.unread = 0;
    // The server's unread count covers every notification up to this id: one arriving again (a
    // replay after a reconnection) is not counted twice.
    this.countedUpTo = 0;
    this.timer = null;
    this.ready = Promise.resolve();
    // Set by the page: whether a thread is open in a visible page (its news is read as it comes).
    this.isOpen = () => false;
  }

  /** The first read of the inbox; `ready` settles when it is done (a thread opened waits for it). */
  load() {
    this.ready = this._load();
    return this.ready;
  }

  async _load() {
    try {
      const [inbox, page] = await Promise.all([api.get("/api/inbox"), api.get(`/api/notifications?limit=${PAGE}`)]);
      this._threads(inbox.threads);
      for (const note of page.notifications) this._keep(note);
      this.unread = page.unread;
      this.countedUpTo = Math.max(this.countedUpTo, page.latest_id);
      this._changed();
    } catch (err) {
      notify(describeError(err), { kind: "error" });
    }
  }

  /** On every (re)connection: what came while away is replayed after the last id held. */
  resume() {
    this.socket.request("notifications.subscribe", { since_id: this.lastId || null }).then((ack) => {
      this.unread = ack.unread;
      this.countedUpTo = Math.max(this.countedUpTo, ack.latest_id);
      this._changed();
    }, () => {});
  }

  /** A live or replayed event of the person's own (not a thread's). */
  handle({ kind, data }) {
    if (kind === "notification") {
      if (!this.notes.has(data.id)) {
        // A message in the thread the person is reading, in a visible page, is read as it arrives: its
        // read mark moves now, and the server reads the news with it (thread.read).
        const news = data.kind === "mention" || data.kind === "reply";
        if (news && this.isOpen(data.thread_id)) {
          data.read = true;
          this.readThread(data.thread_id, data.data.seq);
        }
        this._keep(data);
        if (!data.read && data.id > this.countedUpTo) this.unread += 1;
        if (data.thread_id && (data.kind === "mention" || data.kind === "reply")) this.refreshSoon();
        this._changed();
        this.dispatchEvent(new CustomEvent("notification", { detail: data }));
      }
    } else if (kind === "notifications.read") {
      for (const note of this.notes.values()) {
        if (data.ids ? data.ids.includes(note.id) : note.id <= data.up_to_id) note.read = true;
      }
      this.refreshSoon(); // the server's unread count, read again
      this._changed();
    } else if (kind === "thread.read" || kind === "thread.followed") {
      this.refreshSoon();
    }
  }

  refreshSoon() {
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.refresh(), REFRESH_DEBOUNCE_MS);
  }

  async refresh() {
    try {
      const inbox = await api.get("/api/inbox");
      this._threads(inbox.threads);
      this.unread = inbox.notifications_unread;
      this.countedUpTo = Math.max(this.countedUpTo, this.lastId);
      this._changed();
    } catch {
      // the next change or reconnection reads it again
    }
  }

  thread(threadId) {
    return this.threads.get(threadId) || { following: false, read_seq: 0, unread: 0, first_unread_seq: null, known: false };
  }

  async readThread(threadId, seq) {
    // The server reads the news of what was just read too, and says so with notifications.read.
    const current = this.thread(threadId);
    if (current.known !== false && current.read_seq >= seq && !current.unread) return;
    this.threads.set(threadId, { ...current, known: true, read_seq: Math.max(current.read_seq, seq), unread: 0, first_unread_seq: null });
    this._changed();
    await this.socket.request("thread.read", { thread_id: threadId, seq }).catch(() => {});
  }

  async follow(threadId, following) {
    await this.socket.request("thread.follow", { thread_id: threadId, follow: following });
    this.threads.set(threadId, { ...this.thread(threadId), following });
    this._changed();
  }

  list() {
    return [...this.notes.values()].sort((a, b) => b.id - a.id);
  }

  async markRead(ids = null) {
    const payload = ids ? { ids } : { up_to_id: this.lastId };
    let marked = 0;
    for (const note of this.notes.values()) {
      if ((!ids || ids.includes(note.id)) && !note.read) {
        note.read = true;
        marked += 1;
      }
    }
    this.unread = ids ? Math.max(0, this.unread - marked) : 0;
    this._changed();
    await this.socket.request("notifications.read", payload).catch((err) => notify(describeError(err), { kind: "error" }));
  }

  _keep(note) {
    if (note.data?.author && note.data.author_name) learn({ [note.data.author]: note.data.author_name });
    this.notes.set(note.id, note);
    this.lastId = Math.max(this.lastId, note.id);
  }

  _threads(threads) {
    this.threads = new Map(Object.entries(threads || {}));
  }

  _changed() {
    this.dispatchEvent(new CustomEvent("change"));
  }
}

// The live connection to /ws (DESIGN §7): requests answered by ack or error, thread subscriptions
// that resume from the last seq seen after any drop, and events deduplicated by seq.
//
// States: idle → connecting → open → (dropped) → connecting … ; stop() → closed, for good.
// Dispatches CustomEvents: "status" {state, retryInMs}, "server-event" (an event's payload, thread
// events in seq order without gaps or repeats), "notice" (an error frame not answering a request),
// "refused" (the handshake failed several times running: perhaps the session has ended).

export class RequestError extends Error {
  constructor(code, message) {
    super(message);
    this.code = code;
  }
}

// Bounds, each with its reason.
const REQUEST_TIMEOUT_MS = 15000; // a request with no answer by then is reported as failed
const PING_EVERY_MS = 25000; // below the server's 90 s silence limit, and detects dead links
const PING_TIMEOUT_MS = 10000;
const BACKOFF_FIRST_MS = 300;
const BACKOFF_MAX_MS = 8000; // a person waits at most this long after the network comes back
const OUTBOX_MAX = 50; // requests queued while disconnected; beyond that they fail at once
const REFUSALS_BEFORE_NOTICE = 2;
const LOGGED_OUT_CLOSE_CODE = 4001; // the server closes every socket of a person who signed out

export class ChoirSocket extends EventTarget {
  constructor(url) {
    super();
    this.url = url;
    this.state = "idle";
    this.ws = null;
    this.counter = 0;
    this.attempt = 0;
    this.refusals = 0;
    this.pending = new Map(); // frame id → {resolve, reject, timer, frame}
    this.outbox = []; // frame ids waiting for the connection
    this.subs = new Map(); // thread id → {lastSeq, resyncing}
    this.retryTimer = null;
    this.pingTimer = null;
    this.onOnline = () => this.state === "connecting" && this._reconnectNow();
    this.onOffline = () => this.ws && this.ws.close();
  }

  start() {
    if (this.state !== "idle") return;
    addEventListener("online", this.onOnline);
    addEventListener("offline", this.onOffline);
    this._open();
  }

  /** Close for good (sign-out): pending requests fail, no reconnection. */
  stop() {
    this._setState("closed");
    removeEventListener("online", this.onOnline);
    removeEventListener("offline", this.onOffline);
    clearTimeout(this.retryTimer);
    this._stopPing();
    const ws = this.ws;
    this.ws = null;
    if (ws) ws.close();
    this._failAll("closed", "The connection is closed.");
  }

  /** Drop the current connection as a network failure would; the socket reconnects and resumes. */
  close() {
    if (this.ws) this.ws.close();
  }

  /** Send a request; resolves with the ack's payload, rejects with RequestError(code, message). */
  request(type, payload = {}, { timeoutMs = REQUEST_TIMEOUT_MS } = {}) {
    if (this.state === "closed") return Promise.reject(new RequestError("closed", "The connection is closed."));
    const id = `c${++this.counter}`;
    const frame = JSON.stringify({ id, type, payload });
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => this._settle(id, null, { code: "timeout", message: "No answer from the server in time." }), timeoutMs);
      this.pending.set(id, { resolve, reject, timer, frame });
      if (this.state === "open") {
        this.ws.send(frame);
      } else if (this.outbox.length >= OUTBOX_MAX) {
        this._settle(id, null, { code: "offline", message: "Not connected; try again in a moment." });
      } else {
        this.outbox.push(id);
      }
    });
  }

  /** Follow a thread from `sinceSeq` (events with a larger seq are replayed, then live ones). */
  subscribe(threadId, sinceSeq) {
    this.subs.set(threadId, { lastSeq: sinceSeq, resyncing: false });
    // Not connected: the subscription is sent with every other one when the connection opens.
    const queued = { thread_id: threadId, queued: true };
    if (this.state !== "open") return Promise.resolve(queued);
    return this.request("subscribe", { thread_id: threadId, since_seq: sinceSeq }).catch((err) => {
      // A drop before the ack is no failure: the subscription is sent again on reconnect.
      if (err.code === "disconnected" && this.subs.has(threadId)) return queued;
      throw err;
    });
  }

  unsubscribe(threadId) {
    if (!this.subs.delete(threadId)) return Promise.resolve({});
    return this.request("unsubscribe", { thread_id: threadId }).catch(() => ({}));
  }

  lastSeq(threadId) {
    return this.subs.get(threadId)?.lastSeq ?? null;
  }

  // -- connection ----------------------------------------------------------------------

  _open() {
    this._setState("connecting");
    let opened = false;
    const ws = new WebSocket(this.url);
    this.ws = ws;
    ws.onopen = () => {
      if (this.ws !== ws) return;
      opened = true;
      this.refusals = 0;
      this._setState("open");
      this._resume();
      this._startPing();
    };
    ws.onmessage = (message) => this.ws === ws && this._receive(message.data);
    ws.onclose = (closing) => {
      if (this.ws !== ws) return;
      this.ws = null;
      this._stopPing();
      // What was in flight may or may not have been applied: report it, the replay will tell.
      this._failInFlight();
      if (this.state === "closed") return;
      if (closing.code === LOGGED_OUT_CLOSE_CODE) {
        this.stop();
        this.dispatchEvent(new CustomEvent("refused"));
        return;
      }
      if (!opened && ++this.refusals >= REFUSALS_BEFORE_NOTICE) this.dispatchEvent(new CustomEvent("refused"));
      this._scheduleReconnect();
    };
  }

  _resume() {
    for (const [threadId, sub] of this.subs) {
      sub.resyncing = false;
      this._resubscribe(threadId, sub);
    }
    const queued = this.outbox.splice(0);
    for (const id of queued) {
      const entry = this.pending.get(id);
      if (entry) this.ws.send(entry.frame);
    }
  }

  _resubscribe(threadId, sub) {
    const id = `c${++this.counter}`;
    const frame = JSON.stringify({ id, type: "subscribe", payload: { thread_id: threadId, since_seq: sub.lastSeq } });
    const timer = setTimeout(() => this._settle(id, null, { code: "timeout", message: "" }), REQUEST_TIMEOUT_MS);
    this.pending.set(id, { resolve() {}, reject() {}, timer, frame });
    this.ws.send(frame);
  }

  _scheduleReconnect() {
    const delayMs = Math.min(BACKOFF_MAX_MS, BACKOFF_FIRST_MS * 2 ** this.attempt) * (0.75 + Math.random() / 2);
    this.attempt += 1;
    this._setState("connecting", Math.round(delayMs));
    clearTimeout(this.retryTimer);
    this.retryTimer = setTimeout(() => this._open(), delayMs);
  }

  _reconnectNow() {
    clearTimeout(this.retryTimer);
    this.attempt = 0;
    if (!this.ws) this._open();
  }

  _startPing() {
    this._stopPing();
    this.pingTimer = setInterval(() => {
      const ws = this.ws;
      this.request("ping", {}, { timeoutMs: PING_TIMEOUT_MS }).catch((err) => {
        // No answer on an open connection: it is dead even if the browser has not noticed.
        if (err.code === "timeout" && this.ws === ws && ws) ws.close();
      });
    }, PING_EVERY_MS);
  }

  _stopPing() {
    clearInterval(this.pingTimer);
    this.pingTimer = null;
  }

  _setState(state, retryInMs = null) {
    this.state = state;
    this.dispatchEvent(new CustomEvent("status", { detail: { state, retryInMs } }));
  }

  // -- frames --------------------------------------------------------------------------

  _receive(raw) {
    let frame;
    try {
      frame = JSON.parse(raw);
    } catch {
      return; // the server only sends JSON; anything else is not ours to interpret
    }
    if (frame.type === "ack") {
      // Backoff restarts only once the server answers: a server that accepts and then closes at
      // once (too many connections) must not be retried in a tight loop.
      this.attempt = 0;
      this._settle(frame.id, frame.payload || {}, null);
    }
    else if (frame.type === "error") {
      if (frame.id && this.pending.has(frame.id)) this._settle(frame.id, null, frame.payload || {});
      else this.dispatchEvent(new CustomEvent("notice", { detail: frame.payload || {} }));
    } else if (frame.type === "event") this._event(frame.payload || {});
  }

  _event(payload) {
    const { thread_id: threadId, seq } = payload;
    if (seq !== null && seq !== undefined) {
      const sub = this.subs.get(threadId);
      if (!sub) return; // a late event of a thread left behind
      if (seq <= sub.lastSeq) return; // seen already (a replay overlapping what arrived live)
      if (seq > sub.lastSeq + 1) {
        // Never expected (seq is gap-free per thread); ask again from the last seq seen.
        if (!sub.resyncing && this.state === "open") {
          sub.resyncing = true;
          this._resubscribe(threadId, sub);
        }
        return;
      }
      sub.lastSeq = seq;
      sub.resyncing = false;
    }
    this.dispatchEvent(new CustomEvent("server-event", { detail: payload }));
  }

  _settle(id, payload, error) {
    const entry = this.pending.get(id);
    if (!entry) return;
    this.pending.delete(id);
    clearTimeout(entry.timer);
    const queued = this.outbox.indexOf(id);
    if (queued >= 0) this.outbox.splice(queued, 1);
    if (error) entry.reject(new RequestError(error.code || "error", error.message || "The request failed."));
    else entry.resolve(payload);
  }

  _failInFlight() {
    for (const id of [...this.pending.keys()]) {
      if (!this.outbox.includes(id)) this._settle(id, null, { code: "disconnected", message: "The connection dropped before the server answered." });
    }
  }

  _failAll(code, message) {
    for (const id of [...this.pending.keys()]) this._settle(id, null, { code, message });
  }
}

export function socketUrl() {
  return `${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/ws`;
}

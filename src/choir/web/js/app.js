// The page: sign in, then the thread list, the thread view, the account and the live connection.

import { formatChoir } from "./amount.js";
import { api } from "./api.js";
import { signOut } from "./auth.js";
import { ChoirChat } from "./ChoirChat.js";
import { Inbox } from "./Inbox.js";
import { NotificationsView } from "./NotificationsView.js";
import * as keystore from "./keystore.js";
import { notify, describeError } from "./notify.js";
import { PriorPanel } from "./PriorPanel.js";
import { SearchBox } from "./SearchBox.js";
import { h, fill } from "./dom.js";
import { onRoute, parseHash, threadHash } from "./router.js";
import { SignIn } from "./SignIn.js";
import { ChoirSocket, socketUrl } from "./socket.js";
import { ThreadList } from "./ThreadList.js";
import { WalletView } from "./WalletView.js";

const $ = (id) => document.getElementById(id);
// A person's own events (not a thread's): their notifications and their read marks and follows.
const INBOX_EVENTS = new Set(["notification", "notifications.read", "thread.read", "thread.followed"]);
// Exposed for tests and for people poking at the page from the console.
const exposed = (window.__choir = { socket: null, ready: false });

async function boot() {
  try {
    const me = await api.get("/api/me");
    await start(me, await storedKey());
  } catch (err) {
    if (err.status !== 401) showFatal(err);
    else if (parseHash().threadId) browse(); // a link to a thread: read it as a guest
    else showSignIn();
  }
}

/** Signed out: public threads to read (no socket, no wallet), with a prompt to sign in to write. */
async function browse() {
  $("signin").hidden = true;
  $("app").hidden = false;
  const guest = {
    subscribe: () => Promise.resolve({}),
    unsubscribe: () => Promise.resolve({}),
    request: () => Promise.reject(new Error("Sign in first.")),
  };
  const wallet = { balance: () => 0n, refresh: () => Promise.resolve() };
  fill($("wallet"), h("button", { type: "button", class: "primary", id: "browse-signin", onclick: signInFromBrowse }, "Sign in to write"));
  const threads = new ThreadList($("thread-list"), { readOnly: true });
  const prior = new PriorPanel($("prior-panel"), {
    onJump: (threadId, messageId) => {
      prior.close();
      location.hash = threadHash(threadId, messageId);
    },
  });
  const chat = new ChoirChat($("main"), { socket: guest, wallet, prior, readOnly: true, onSignIn: signInFromBrowse, onThread: (t) => threads.update(t) });
  exposed.chat = chat;
  setupMenu();
  await threads.refresh();
  onRoute(({ threadId, messageId }) => {
    closeMenu();
    threads.select(threadId);
    if (threadId) chat.open(threadId, messageId);
    else chat.welcome();
  });
  exposed.ready = true;
}

function signInFromBrowse() {
  // A fresh page, signed in: every part then starts with the person's key and socket.
  const back = location.hash;
  $("app").hidden = true;
  const view = new SignIn($("signin"), { onSignedIn: () => { location.hash = back; location.reload(); } });
  view.show();
}

async function storedKey() {
  return keystore.supported() ? keystore.loadKey().catch(() => null) : null;
}

function showSignIn() {
  $("app").hidden = true;
  $("topbar-account").hidden = true;
  const view = new SignIn($("signin"), { onSignedIn: (me, key) => start(me, key), onBrowse: () => browse() });
  view.show();
}

function showFatal(err) {
  $("signin").hidden = false;
  $("signin").textContent = `Choir cannot start: ${describeError(err)}`;
}

async function start(me, key) {
  $("signin").hidden = true;
  $("app").hidden = false;
  $("topbar-account").hidden = false;

  const socket = new ChoirSocket(socketUrl());
  exposed.socket = socket;
  const wallet = new WalletView($("wallet"), $("top-balance"), {
    onSignOut: () => leave(socket),
    onNameChanged: () => chat.thread && chat.refreshThread(),
    request: (type, payload) => socket.request(type, payload),
  });
  wallet.set(me, key);
  wallet.refresh();
  const inbox = new Inbox(socket);
  exposed.inbox = inbox;
  const threads = new ThreadList($("thread-list"), { inbox });
  new NotificationsView($("notifications-slot"), $("notifications-panel"), inbox);
  // News of a thread not open: its line in the list (message count, balance) is read again.
  let listTimer = null;
  inbox.addEventListener("notification", () => {
    clearTimeout(listTimer);
    listTimer = setTimeout(() => threads.refresh(), 300);
  });
  inbox.load();
  if (!exposed.search) {
    $("search-box").hidden = false;
    exposed.search = new SearchBox($("search-box"));
  }
  const prior = new PriorPanel($("prior-panel"), {
    onJump: (threadId, messageId) => {
      prior.close();
      location.hash = threadHash(threadId, messageId);
    },
  });
  const chat = new ChoirChat($("main"), { socket, wallet, prior, inbox, settlement: me.settlement, onThread: (t) => threads.update(t) });
  exposed.chat = chat;
  inbox.isOpen = (threadId) => threadId === chat.threadId && document.visibilityState === "visible";

  socket.addEventListener("server-event", (e) => {
    const payload = e.detail;
    if (payload.kind === "thread.listed") {
      threads.refresh(); // a new thread one may read: the list follows it live
      return;
    }
    if (INBOX_EVENTS.has(payload.kind)) {
      inbox.handle(payload);
      return;
    }
    if (payload.kind === "reward.paid") {
      wallet.refresh();
      notify(rewardText(payload.data, chat.thread));
      // A prior reward is paid to a thread: its balance and its co-authors' shares changed.
      if (payload.data.thread_id && payload.data.thread_id === chat.threadId) chat.refreshThread();
      threads.refresh();
    }
    chat.handle(payload);
  });
  socket.addEventListener("notice", (e) => notify(describeError(e.detail), { kind: "error" }));
  let everOpen = false;
  socket.addEventListener("status", (e) => {
    showStatus(e.detail);
    if (e.detail.state !== "open") return;
    inbox.resume(); // notifications that came while away are replayed after the last id held
    // Rewards are sent live only: after a drop, read the balances again.
    if (everOpen) {
      wallet.refresh();
      threads.refresh();
    }
    everOpen = true;
  });
  socket.addEventListener("refused", async () => {
    try {
      await api.get("/api/me");
    } catch (err) {
      if (err.status === 401) {
        socket.stop();
        notify("Your session has ended; sign in again.", { kind: "error" });
        showSignIn();
      }
    }
  });
  socket.start();

  setupMenu();
  await threads.refresh();
  onRoute(({ threadId, messageId }) => {
    closeMenu();
    threads.select(threadId);
    if (threadId) chat.open(threadId, messageId);
    else chat.welcome();
  });
  exposed.ready = true;
}

/** What a reward.paid event says to a person: how much, and why. */
export function rewardText({ reward, amount, epoch, thread_id: threadId }, openThread = null) {
  const how = formatChoir(amount);
  if (reward === "prior") {
    const where = openThread && openThread.thread_id === threadId ? `“${openThread.title}”` : "a thread you co-author";
    return `${how} paid to ${where}: its messages were cited as priors (epoch ${epoch}).`;
  }
  return `You earned ${how} for your new messages in epoch ${epoch}.`;
}

async function leave(socket) {
  try {
    await signOut();
  } catch (err) {
    notify(describeError(err), { kind: "error" });
  }
  socket.stop();
  location.hash = "";
  location.reload();
}

function showStatus({ state, retryInMs }) {
  const el = $("conn-status");
  el.dataset.state = state;
  el.textContent = {
    open: "Live",
    connecting: retryInMs ? `Reconnecting in ${Math.max(1, Math.round(retryInMs / 1000))} s…` : "Connecting…",
    closed: "Offline",
    idle: "",
  }[state];
}

// -- the thread list as a drawer on narrow screens --------------------------------------

function setupMenu() {
  const toggle = $("menu-toggle");
  toggle.addEventListener("click", () => (document.body.classList.contains("menu-open") ? closeMenu() : openMenu()));
  document.addEventListener("keydown", (e) => e.key === "Escape" && document.body.classList.contains("menu-open") && closeMenu(true));
}

function openMenu() {
  document.body.classList.add("menu-open");
  $("menu-toggle").setAttribute("aria-expanded", "true");
  $("sidebar").querySelector("a, button, input")?.focus();
}

function closeMenu(returnFocus = false) {
  if (!document.body.classList.contains("menu-open")) return;
  document.body.classList.remove("menu-open");
  $("menu-toggle").setAttribute("aria-expanded", "false");
  if (returnFocus) $("menu-toggle").focus();
}

boot();

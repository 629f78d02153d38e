// Short messages for the person (errors, confirmations), read out by screen readers.

import { h } from "./dom.js";

const SHOW_MS = 6000;

export function notify(text, { kind = "info" } = {}) {
  const region = document.getElementById("toasts");
  if (!region) return;
  const item = h("div", { class: `toast toast-${kind}`, role: kind === "error" ? "alert" : "status" }, text);
  region.append(item);
  setTimeout(() => item.remove(), SHOW_MS);
}

/** A person-readable sentence for an ApiError or RequestError. */
export function describeError(err) {
  const code = err?.code;
  const friendly = {
    network: "Cannot reach the server. Check your connection.",
    timeout: "The server took too long to answer. Try again.",
    disconnected: "The connection dropped before the server answered.",
    offline: "You are offline; try again once reconnected.",
    rate_limited: "Slow down a little: too many actions in a short time.",
    unauthorized: "Your session has ended; sign in again.",
    not_co_author: "Only co-authors can post here. Submit a spec to join.",
    duplicate_content: "This exact text is already in the thread.",
    stake_too_low: "The stake is below this thread's minimum.",
    insufficient_funds: "Your balance is too low for this stake.",
    already_voted: "You have already voted on this spec.",
    unavailable: "The Choir AI is not running on this server yet.",
  };
  return friendly[code] || err?.message || "Something went wrong.";
}

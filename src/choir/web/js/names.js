// Who is who: display names learnt from the server, short addresses otherwise.

import { h, shortAddress } from "./dom.js";

export const AI_AUTHOR = "choir-ai";
const known = new Map();
let myAddress = null;

export function setMe(address, displayName) {
  myAddress = address;
  if (address && displayName) learn({ [address]: displayName });
}

export function me() {
  return myAddress;
}

/** Remember names from GET /api/threads/{id}'s display_names (address → name), and show them. */
export function learn(displayNames) {
  const changed = [];
  for (const [address, name] of Object.entries(displayNames || {})) {
    if (name && known.get(address) !== name) {
      known.set(address, name);
      changed.push(address);
    }
  }
  if (!changed.length) return;
  for (const node of document.querySelectorAll("[data-name-of]")) {
    if (changed.includes(node.dataset.nameOf)) node.textContent = label(node.dataset.nameOf);
  }
}

/** A person's name as a node that follows what is learnt later (a spec's author, once a co-author). */
export function nameNode(address, className = "") {
  return h("span", { class: className || null, dataset: { nameOf: address } }, label(address));
}

export function nameOf(address) {
  if (address === AI_AUTHOR) return "Choir AI";
  return known.get(address) || shortAddress(address);
}

/** Names as a person reads them: themselves as "you". */
export function label(address) {
  return address === myAddress ? `${nameOf(address)} (you)` : nameOf(address);
}

/** "user:5Hx…" → "Ada", "thread:abc" → "the thread", for the transfers of a settled spec. */
export function accountLabel(account) {
  const [kind, rest] = String(account).split(/:(.*)/s);
  if (kind === "user") return label(rest);
  if (kind === "thread") return "the thread";
  if (kind === "escrow") return "escrow";
  if (kind === "treasury") return "the treasury";
  if (kind === "pool") return "the reward pool";
  return String(account);
}

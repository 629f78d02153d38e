// A message's history under it: every version (1 as published, then each edit, and the deletion),
// with its time, the hash committed and anchored for it, its text while the message exists, and,
// on a server that anchors, a button that verifies that version's anchor in this browser.

import { api, enc } from "./api.js";
import { h, fill, formatTime, spinner } from "./dom.js";
import { describeError } from "./notify.js";
import { checkMessage } from "./proof.js";

/** Show (or hide, when shown) the versions of the message in `item`. */
export async function toggleHistory(item, { threadId, canProve }) {
  const open = item.querySelector(".history");
  if (open) {
    open.remove();
    return;
  }
  const id = item.dataset.messageId;
  const box = h("section", { class: "history", "aria-label": "Versions of this message" }, spinner("Loading the versions"));
  item.querySelector("article").append(box);
  try {
    const { versions } = await api.get(`/api/messages/${enc(id)}/versions`);
    fill(box, h("h3", { class: "small" }, `Versions (${versions.length})`),
      h("ol", { class: "versions" }, versions.map((v) => versionLine(id, threadId, v, canProve))));
  } catch (err) {
    fill(box, h("p", { class: "form-error", role: "alert" }, describeError(err)));
  }
}

function versionLine(messageId, threadId, v, canProve) {
  const result = h("span", { class: "small proof-result" });
  const what = v.deleted ? "deleted" : v.version === 1 ? "published" : "edited";
  return h("li", { class: "version", dataset: { version: String(v.version) } },
    h("div", { class: "version-head muted small" },
      `v${v.version} · ${what} ${formatTime(v.at)} · sha256 `, h("code", {}, `${v.content_hash.slice(0, 12)}…`),
      canProve ? h("button", { type: "button", class: "link small", onclick: () => verify(messageId, threadId, v, result) }, "Verify") : null),
    v.deleted ? null : h("p", { class: "version-content" }, v.content ?? "(content removed when the message was deleted)"),
    result);
}

async function verify(messageId, threadId, v, out) {
  fill(out, spinner("Verifying"), " Verifying…");
  try {
    const proof = await api.get(`/api/messages/${enc(messageId)}/proof?version=${v.version}`);
    const result = await checkMessage({ message_id: messageId, thread_id: threadId, content: v.content }, proof);
    out.className = `small proof-result ${result.ok ? "ok" : "form-error"}`;
    out.textContent = result.ok
      ? `Version ${v.version} is anchored (transaction ${proof.signature.slice(0, 10)}…), checked against ${result.source}.`
      : `Not verified: ${result.reason}.`;
  } catch (err) {
    out.className = "small proof-result muted";
    out.textContent = err.code === "not_anchored" ? "Not anchored yet: the next settlement batch will anchor it." : describeError(err);
  }
}

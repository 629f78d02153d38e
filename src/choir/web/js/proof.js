// Checking a message's anchor in the browser: the record the chain anchors for a message (RFC 6962
// leaf of "M", its id, its thread and the SHA-256 of its content) and its inclusion proof, verified
// with WebCrypto against the root the anchoring transaction carries. Mirrors choir.chain.records and
// choir.chain.merkle (RFC 9162 §2.1.3.2).

const encoder = new TextEncoder();

async function sha256(bytes) {
  return new Uint8Array(await crypto.subtle.digest("SHA-256", bytes));
}

export function toHex(bytes) {
  return [...bytes].map((b) => b.toString(16).padStart(2, "0")).join("");
}

export function fromHex(text) {
  if (!/^(?:[0-9a-f]{2})*$/.test(text)) throw new Error("not hex");
  return Uint8Array.from(text.match(/../g) || [], (pair) => parseInt(pair, 16));
}

function concat(...parts) {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const part of parts) {
    out.set(part, at);
    at += part.length;
  }
  return out;
}

function short(text) {
  const raw = encoder.encode(text);
  if (!raw.length || raw.length > 255) throw new Error("an id must be 1..255 bytes");
  return concat(Uint8Array.of(raw.length), raw);
}

/** The leaf the chain anchors for a message with this id, thread and content. A later version of a
 * message is anchored under "<id>~v<n>" (choir.chain.records.version_record_id). */
export async function messageLeaf(messageId, threadId, content) {
  return leafOfHash(messageId, threadId, await sha256(encoder.encode(content)));
}

function leafOfHash(recordId, threadId, hash) {
  return concat(encoder.encode("M"), short(recordId), short(threadId), hash);
}

/** Whether `leaf` is at `index` of the `size`-leaf tree whose root is `root`, by `path`. */
export async function verifyInclusion(root, leaf, index, size, path) {
  if (!(index >= 0 && index < size) || root.length !== 32 || path.some((p) => p.length !== 32)) return false;
  let fn = index;
  let sn = size - 1;
  let result = await sha256(concat(Uint8Array.of(0), leaf));
  for (const step of path) {
    if (sn === 0) return false;
    if (fn & 1 || fn === sn) {
      result = await sha256(concat(Uint8Array.of(1), step, result));
      if (!(fn & 1)) {
        while (fn && !(fn & 1)) {
          fn >>= 1;
          sn >>= 1;
        }
      }
    } else {
      result = await sha256(concat(Uint8Array.of(1), result, step));
    }
    fn >>= 1;
    sn >>= 1;
  }
  return sn === 0 && toHex(result) === toHex(root);
}

/**
 * Check a message from its content and the server's proof: the leaf is recomputed here from the
 * content (so the content shown is the one anchored), then walked up to the anchored root.
 * Returns {ok, reason, source} where source says where the root came from.
 */
export async function checkMessage(message, proof) {
  const recordId = proof.record_id || message.message_id;
  // A deleted version has no content left: only its hash can be shown anchored.
  const gone = message.content === null || message.content === undefined;
  const leaf = gone
    ? leafOfHash(recordId, message.thread_id, fromHex(proof.content_hash))
    : await messageLeaf(recordId, message.thread_id, message.content);
  if (toHex(leaf) !== proof.leaf) return { ok: false, reason: "the anchored record is not this message's content" };
  const ok = await verifyInclusion(fromHex(proof.root), leaf, proof.index, proof.size, proof.path.map(fromHex));
  if (!ok) return { ok: false, reason: "the proof does not lead to the anchored root" };
  const source = proof.verified_on_chain === true
    ? "the root the server read back from the chain"
    : "the root in the stored anchor (the chain could not be read now)";
  if (proof.verified_on_chain === false) return { ok: false, reason: "the chain's own root does not match the stored anchor" };
  return { ok: true, source };
}

// The URL hash is the page's address: #/t/<thread_id> opens a thread, #/t/<thread_id>/m/<message_id>
// opens it at a message (how a citation jumps to its prior).

export function threadHash(threadId, messageId = null) {
  const base = `#/t/${encodeURIComponent(threadId)}`;
  return messageId ? `${base}/m/${encodeURIComponent(messageId)}` : base;
}

/** {threadId, messageId} from the current hash, or nulls. */
export function parseHash(hash = location.hash) {
  const match = /^#\/t\/([^/]+)(?:\/m\/([^/]+))?$/.exec(hash);
  if (!match) return { threadId: null, messageId: null };
  try {
    return { threadId: decodeURIComponent(match[1]), messageId: match[2] ? decodeURIComponent(match[2]) : null };
  } catch {
    return { threadId: null, messageId: null };
  }
}

export function onRoute(handler) {
  addEventListener("hashchange", () => handler(parseHash()));
  handler(parseHash());
}

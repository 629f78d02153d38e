// The server renders Markdown and sanitises it (nh3); this module puts that HTML into the page and,
// as a second line of defence, keeps only the same small set of tags and attributes. It also turns
// the [n] markers of an answer into links to the cited priors.

const ALLOWED_TAGS = new Set([
  "P", "BR", "EM", "STRONG", "CODE", "PRE", "BLOCKQUOTE", "UL", "OL", "LI", "A",
  "H1", "H2", "H3", "H4", "HR", "DEL", "TABLE", "THEAD", "TBODY", "TR", "TH", "TD",
]);
const SAFE_URL = /^(https?:|mailto:)/i;
const MARKER = /\[(\d{1,3})\]/g;

/** A fragment from the server's sanitised HTML; anything outside the allowlist becomes its text. */
export function renderServerHtml(html) {
  const template = document.createElement("template");
  template.innerHTML = typeof html === "string" ? html : ""; // inert: template content never runs
  scrub(template.content);
  return template.content;
}

function scrub(node) {
  for (const child of [...node.childNodes]) {
    if (child.nodeType === Node.ELEMENT_NODE) {
      if (!ALLOWED_TAGS.has(child.tagName)) {
        child.replaceWith(document.createTextNode(child.textContent || ""));
        continue;
      }
      for (const attr of [...child.attributes]) {
        const keep = child.tagName === "A" && (attr.name === "title" || (attr.name === "href" && SAFE_URL.test(attr.value.trim())));
        if (!keep) child.removeAttribute(attr.name);
      }
      if (child.tagName === "A") {
        child.setAttribute("rel", "noopener noreferrer nofollow");
        child.setAttribute("target", "_blank");
      }
      scrub(child);
    } else if (child.nodeType !== Node.TEXT_NODE) {
      child.remove(); // comments and the like
    }
  }
}

/**
 * Replace each [n] that names a citation with an element from makeLink(citation, n), outside code.
 * @param {Node} root
 * @param {Array<{n: number}>} citations
 * @param {(citation: object) => Node} makeLink
 */
export function linkCitations(root, citations, makeLink) {
  const byN = new Map((citations || []).map((c) => [Number(c.n), c]));
  if (!byN.size) return;
  const walker = document.createTreeWalker(root, NodeFilter.SHOW_TEXT);
  const texts = [];
  for (let node = walker.nextNode(); node; node = walker.nextNode()) {
    if (!node.parentElement?.closest("code, pre, a")) texts.push(node);
  }
  for (const text of texts) {
    const value = text.nodeValue || "";
    const parts = [];
    let last = 0;
    for (const match of value.matchAll(MARKER)) {
      const citation = byN.get(Number(match[1]));
      if (!citation) continue;
      parts.push(document.createTextNode(value.slice(last, match.index)), makeLink(citation));
      last = match.index + match[0].length;
    }
    if (!parts.length) continue;
    parts.push(document.createTextNode(value.slice(last)));
    text.replaceWith(...parts);
  }
}

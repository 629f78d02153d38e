// @mention completion in a composer: typing "@" and a few letters lists people (the thread's own
// first; in a private thread only its co-authors, as the server refuses the rest); arrows move,
// Enter or Tab picks, Escape closes. A pick inserts "@name" when the name is one word that names
// one person, else "@" and the first 8 characters of the address (which the server resolves too).

import { api, enc } from "./api.js";
import { h, fill } from "./dom.js";
import { learn } from "./names.js";

const TOKEN_RE = /(?:^|[^\w@])@([\w.-]{0,64})$/u;
const WORD_NAME_RE = /^[\w.-]{2,64}$/u;
const ADDRESS_PREFIX_CHARS = 8;
const DEBOUNCE_MS = 120;

export class Mentions {
  /** @param {HTMLTextAreaElement} text @param {() => string|null} threadId */
  constructor(text, threadId) {
    this.text = text;
    this.threadId = threadId;
    this.people = [];
    this.active = -1;
    this.asked = 0;
    this.timer = null;
    const listId = `${text.id || "composer"}-mentions`;
    this.list = h("ul", { class: "mentions-list", id: listId, role: "listbox", hidden: true, "aria-label": "People to mention" });
    text.setAttribute("aria-controls", listId);
    text.setAttribute("aria-autocomplete", "list");
    text.after(this.list);
    text.addEventListener("input", () => this._changed());
    text.addEventListener("keydown", (e) => this._key(e), true);
    text.addEventListener("blur", () => setTimeout(() => this.close(), 150));
  }

  get open() {
    return !this.list.hidden;
  }

  close() {
    this.list.hidden = true;
    this.active = -1;
    this.text.removeAttribute("aria-activedescendant");
  }

  _token() {
    const before = this.text.value.slice(0, this.text.selectionStart);
    const match = TOKEN_RE.exec(before);
    return match ? match[1] : null;
  }

  _changed() {
    clearTimeout(this.timer);
    const token = this._token();
    if (token === null || token.length < 1) {
      this.close();
      return;
    }
    this.timer = setTimeout(() => this._lookUp(token), DEBOUNCE_MS);
  }

  async _lookUp(token) {
    const asked = ++this.asked;
    const thread = this.threadId();
    const query = `/api/people?q=${enc(token)}${thread ? `&thread_id=${enc(thread)}` : ""}`;
    let people;
    try {
      ({ people } = await api.get(query));
    } catch {
      return; // completion is a convenience: typing the name still works
    }
    if (asked !== this.asked || this._token() !== token) return; // a later keystroke won
    this.people = people;
    learn(Object.fromEntries(people.map((p) => [p.address, p.display_name])));
    if (!people.length) {
      this.close();
      return;
    }
    fill(this.list, people.map((p, i) => h("li", {
      id: `${this.list.id}-${i}`,
      role: "option",
      class: "mention-option",
      dataset: { address: p.address },
      onmousedown: (e) => {
        e.preventDefault(); // keep the focus in the composer
        this._pick(i);
      },
    }, h("strong", {}, p.display_name), " ", h("span", { class: "muted small" }, `${p.address.slice(0, ADDRESS_PREFIX_CHARS)}…`))));
    this.list.hidden = false;
    this._highlight(0);
  }

  _highlight(i) {
    this.active = i;
    [...this.list.children].forEach((li, j) => li.setAttribute("aria-selected", String(j === i)));
    this.text.setAttribute("aria-activedescendant", `${this.list.id}-${i}`);
  }

  _key(e) {
    if (!this.open) return;
    const n = this.people.length;
    if (e.key === "ArrowDown" || e.key === "ArrowUp") {
      e.preventDefault();
      this._highlight((this.active + (e.key === "ArrowDown" ? 1 : n - 1)) % n);
    } else if ((e.key === "Enter" || e.key === "Tab") && this.active >= 0) {
      e.preventDefault();
      e.stopImmediatePropagation(); // Enter picks here; it does not send the message
      this._pick(this.active);
    } else if (e.key === "Escape") {
      e.preventDefault();
      this.close();
    }
  }

  _pick(i) {
    const person = this.people[i];
    if (!person) return;
    const unique = WORD_NAME_RE.test(person.display_name)
      && this.people.filter((p) => p.display_name.toLowerCase() === person.display_name.toLowerCase()).length === 1;
    const handle = unique ? person.display_name : person.address.slice(0, ADDRESS_PREFIX_CHARS);
    const caret = this.text.selectionStart;
    const before = this.text.value.slice(0, caret).replace(/@[\w.-]*$/u, `@${handle} `);
    this.text.value = before + this.text.value.slice(caret);
    this.text.setSelectionRange(before.length, before.length);
    this.close();
  }
}

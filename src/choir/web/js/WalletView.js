// The person's account: name, address, CHOIR balance, the exported key; and the ledger at large
// (treasury, reward pool, supply). Refreshed after anything that moves tokens.

import { api, enc } from "./api.js";
import { formatChoir } from "./amount.js";
import { h, fill, shortAddress } from "./dom.js";
import * as keystore from "./keystore.js";
import { setMe } from "./names.js";
import { describeError, notify } from "./notify.js";
import { withdrawForm } from "./Withdraw.js";

export class WalletView {
  /**
   * @param {HTMLElement} root the account panel
   * @param {HTMLElement} badge the balance shown in the top bar
   * @param {{onSignOut: () => void, onNameChanged: () => void,
   *   request: (type: string, payload: object) => Promise<object>}} hooks request sends a /ws frame (withdraw)
   */
  constructor(root, badge, hooks) {
    this.root = root;
    this.badge = badge;
    this.hooks = hooks;
    this.me = null;
    this.ledger = null;
    this.key = null;
    this.refreshing = null;
  }

  set(me, keyRecord) {
    this.me = me;
    if (keyRecord !== undefined) this.key = keyRecord;
    setMe(me.address, me.display_name);
    this.render();
  }

  balance() {
    return this.me ? BigInt(this.me.balance) : 0n;
  }

  /** Fetch the balance and the ledger again; calls close together share one fetch. */
  refresh() {
    if (!this.refreshing) {
      this.refreshing = (async () => {
        this.root.setAttribute("aria-busy", "true");
        try {
          const [me, ledger] = await Promise.all([api.get("/api/me"), api.get("/api/ledger")]);
          this.me = me;
          this.ledger = ledger;
          setMe(me.address, me.display_name);
          this.render();
        } catch (err) {
          notify(`Could not refresh balances: ${describeError(err)}`, { kind: "error" });
        } finally {
          this.root.removeAttribute("aria-busy");
          this.refreshing = null;
        }
      })();
    }
    return this.refreshing;
  }

  render() {
    if (!this.me) return;
    fill(this.badge, h("span", { class: "visually-hidden" }, "Your balance: "), formatChoir(this.me.balance));
    this.badge.dataset.units = this.me.balance;
    if (this.shownFor !== this.me.address) this._build();
    this.nameInput.defaultValue = this.me.display_name || "";
    if (document.activeElement !== this.nameInput) this.nameInput.value = this.me.display_name || "";
    fill(this.address, h("code", { title: this.me.address }, shortAddress(this.me.address)));
    fill(this.balanceCell, formatChoir(this.me.balance));
    this.balanceCell.dataset.units = this.me.balance;
    const ledger = this.ledger;
    this.ledgerBox.hidden = !ledger;
    if (ledger) {
      for (const [cell, units] of [
        [this.treasury, ledger.treasury],
        [this.pool, ledger.pool_new_messages],
        [this.inThreads, ledger.by_class?.thread ?? "0"],
        [this.inEscrow, ledger.by_class?.escrow ?? "0"],
        [this.withdrawn, ledger.by_class?.withdrawn ?? "0"],
        [this.supply, ledger.supply],
      ]) {
        cell.textContent = formatChoir(units);
        cell.dataset.units = units;
      }
    }
  }

  /** The panel's parts, made once so a refresh never loses what the person is typing or has opened. */
  _build() {
    this.shownFor = this.me.address;
    this.address = h("span", {});
    this.balanceCell = h("dd", { id: "my-balance" });
    const cell = (id) => h("dd", { id });
    this.treasury = cell("ledger-treasury");
    this.pool = cell("ledger-pool");
    this.inThreads = cell("ledger-threads");
    this.inEscrow = cell("ledger-escrow");
    this.withdrawn = cell("ledger-withdrawn");
    this.supply = cell("ledger-supply");
    this.ledgerBox = h("details", { class: "ledger" },
      h("summary", {}, "The CHOIR ledger"),
      h("dl", { class: "facts" },
        h("dt", {}, "Treasury"), this.treasury,
        h("dt", {}, "Reward pool"), this.pool,
        h("dt", {}, "In threads"), this.inThreads,
        h("dt", {}, "In escrow"), this.inEscrow,
        h("dt", {}, "Withdrawn"), this.withdrawn,
        h("dt", {}, "Supply"), this.supply));
    fill(this.root,
      h("h2", {}, "Account"),
      this._nameForm(),
      h("dl", { class: "facts" },
        h("dt", {}, "Address"),
        h("dd", {}, this.address, " ", h("button", { type: "button", class: "link small", onclick: () => this._copy() }, "Copy")),
        h("dt", {}, "Balance"), this.balanceCell),
      withdrawForm({ balance: () => this.balance(), settlement: () => this.me?.settlement, request: this.hooks.request, onDone: () => this.refresh() }),
      this.ledgerBox,
      this._keySection(),
      h("button", { type: "button", class: "small", id: "sign-out", onclick: () => this.hooks.onSignOut() }, "Sign out"));
  }

  _nameForm() {
    const input = h("input", { id: "display-name", maxlength: "64", autocomplete: "nickname" });
    this.nameInput = input;
    const button = h("button", { type: "submit", class: "small" }, "Save");
    const form = h("form", { class: "name-form" }, h("label", { for: "display-name" }, "Display name"), h("div", { class: "row" }, input, button));
    form.addEventListener("submit", async (e) => {
      e.preventDefault();
      button.disabled = true;
      try {
        const me = await api.patch("/api/me", { display_name: input.value.trim() });
        input.value = me.display_name; // as the server cleaned it
        this.set(me);
        notify("Name saved.");
        this.hooks.onNameChanged();
      } catch (err) {
        notify(describeError(err), { kind: "error" });
      } finally {
        button.disabled = false;
      }
    });
    return form;
  }

  _keySection() {
    if (!this.key || this.key.address !== this.me.address) return null;
    if (!this.key.extractable) return h("p", { class: "muted small" }, "This key was created to stay in this browser: it cannot be exported, and it is lost if this browser's data is cleared. To hold your identity elsewhere, sign in with a wallet or with a new exportable key.");
    const out = h("div", { class: "key-export" });
    const button = h("button", { type: "button", class: "small", onclick: async () => {
      try {
        const secret = await keystore.exportSecret(this.key);
        fill(out,
          h("label", { for: "exported-key" }, "Your secret key: keep it private, it is your identity"),
          h("textarea", { id: "exported-key", readonly: true, rows: 3, spellcheck: false }, secret));
        out.querySelector("textarea").select();
      } catch (err) {
        notify(describeError(err), { kind: "error" });
      }
    } }, "Export key");
    return h("div", {}, button, out);
  }

  async _copy() {
    try {
      await navigator.clipboard.writeText(this.me.address);
      notify("Address copied.");
    } catch {
      notify(this.me.address);
    }
  }
}

export async function accountBalance(address) {
  return (await api.get(`/api/accounts/${enc(address)}`)).balance;
}

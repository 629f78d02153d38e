// Sign-in: with a Solana wallet when the browser has one, otherwise with a key this browser
// generates (kept in IndexedDB), or one the person imports.

import { signIn } from "./auth.js";
import { h, fill, shortAddress, spinner } from "./dom.js";
import * as keystore from "./keystore.js";
import { describeError } from "./notify.js";
import { walletAvailable, walletName, walletSigner } from "./wallet.js";

export class SignIn {
  /** @param {{onSignedIn: (me: object, key: object|null) => void}} hooks */
  constructor(root, hooks) {
    this.root = root;
    this.hooks = hooks;
  }

  async show() {
    this.root.hidden = false;
    const stored = keystore.supported() ? await keystore.loadKey().catch(() => null) : null;
    this.error = h("p", { class: "form-error", role: "alert", id: "signin-error" });
    this.progress = h("p", { class: "muted", "aria-live": "polite" });
    const options = [];
    if (walletAvailable()) {
      options.push(h("button", { type: "button", class: "primary big", id: "signin-wallet", onclick: (e) => this._run(e.target, async () => [await walletSigner(), null]) },
        `Sign in with ${walletName()}`));
    }
    if (stored) {
      options.push(h("button", { type: "button", class: walletAvailable() ? "big" : "primary big", id: "signin-stored", onclick: (e) => this._run(e.target, async () => [keystore.signerFor(stored), stored]) },
        `Continue with this browser's key ${shortAddress(stored.address)}`));
    } else if (keystore.supported()) {
      // Exportable unless one asks otherwise: a key that cannot leave the browser is an identity (and a
      // balance) lost with the browser's data, and it can never move to a wallet of one's own.
      const exportable = h("input", { type: "checkbox", id: "signin-exportable", checked: true });
      options.push(
        h("button", { type: "button", class: walletAvailable() ? "big" : "primary big", id: "signin-create", onclick: (e) => this._run(e.target, async () => {
          const record = await keystore.createKey({ extractable: exportable.checked });
          return [keystore.signerFor(record), record];
        }) }, "Create a key in this browser and sign in"),
        h("div", { class: "check" }, exportable, h("label", { for: "signin-exportable" }, "Let me export the key later, to keep a copy or use it in a wallet (untick to keep it in this browser only)")));
    }
    fill(this.root,
      h("div", { class: "signin-card" },
        h("h1", { id: "signin-heading", tabindex: "-1" }, "Welcome to Choir"),
        h("p", { class: "lead" }, "Group threads where good contributions earn CHOIR, and an AI that answers with sources you can follow."),
        h("p", { class: "muted small" }, "You sign in by signing a short message with a Solana key. Nothing is sent on chain and nothing is paid."),
        h("div", { class: "signin-options" }, options),
        this._importForm(),
        stored ? h("button", { type: "button", class: "link small", onclick: async () => { await keystore.forgetKey(); this.show(); } }, "Forget this browser's key") : null,
        this.hooks.onBrowse ? h("button", { type: "button", class: "link small", id: "signin-browse", onclick: () => { this.root.hidden = true; this.hooks.onBrowse(); } }, "Read the public threads first, without signing in") : null,
        this.progress,
        this.error));
    this.root.querySelector("h1").focus();
  }

  _importForm() {
    const secret = h("textarea", { id: "import-secret", rows: 2, autocomplete: "off", spellcheck: false, placeholder: "Base58 secret key, or a solana-keygen JSON array" });
    const button = h("button", { type: "submit" }, "Import and sign in");
    const form = h("form", {}, h("label", { for: "import-secret" }, "Secret key"), secret, button);
    form.addEventListener("submit", (e) => {
      e.preventDefault();
      this._run(button, async () => {
        const record = await keystore.importSecret(secret.value);
        secret.value = "";
        return [keystore.signerFor(record), record];
      });
    });
    return h("details", { class: "import" }, h("summary", {}, "Use a key you already have"), form);
  }

  async _run(button, getSigner) {
    const buttons = this.root.querySelectorAll("button");
    for (const b of buttons) b.disabled = true;
    button.setAttribute("aria-busy", "true");
    this.error.textContent = "";
    fill(this.progress, spinner("Signing in"), " Signing in…");
    try {
      const [signer, record] = await getSigner();
      const me = await signIn(signer);
      this.root.hidden = true;
      this.hooks.onSignedIn(me, record);
    } catch (err) {
      this.error.textContent = `Sign-in failed: ${describeError(err)}`;
    } finally {
      for (const b of buttons) b.disabled = false;
      button.removeAttribute("aria-busy");
      this.progress.textContent = "";
    }
  }
}

// Withdrawing: CHOIR moves from the in-app balance to the person's own wallet (the ledger transfer
// user:<address> → withdrawn:<address>). The amount is checked here for a quick, clear answer; the
// server checks it again and its refusal is shown as well.

import { formatChoir, parseChoir } from "./amount.js";
import { h } from "./dom.js";
import { describeError, notify } from "./notify.js";

/** A sentence for a refused withdrawal, from the server's error code. */
export function withdrawError(err) {
  const friendly = {
    invalid_amount: "The server refused this amount: enter a positive amount of CHOIR.",
    insufficient_funds: "Your balance does not cover this withdrawal.",
  };
  return friendly[err?.code] || describeError(err);
}

/** The amount typed, in base units (BigInt); throws an Error saying what is wrong. */
export function checkWithdrawal(text, balance) {
  const amount = parseChoir(text);
  if (amount <= 0n) throw new Error("Enter an amount above zero.");
  if (amount > balance) throw new Error(`Your balance is ${formatChoir(balance)}.`);
  return amount;
}

/**
 * The "Withdraw to my wallet" form.
 * @param {{balance: () => bigint, request: (type: string, payload: object) => Promise<object>, onDone: (ack: {withdrawal_id: string, amount: string}) => void}} hooks
 */
/** What a withdrawal really does on this server (GET /api/me's `settlement`). */
export const SETTLEMENT = {
  none: {
    help: "Takes CHOIR out of your balance here. This server settles on no chain: the ledger records the withdrawal, and nothing is sent to a wallet.",
    done: "recorded as withdrawn (no chain: nothing was sent to a wallet)",
  },
  litesvm: {
    help: "Sends CHOIR from your balance here to your address on this server's own test chain (LiteSVM, not a public Solana cluster).",
    done: "sent to your address on this server's test chain",
  },
  rpc: {
    help: "Sends CHOIR from your balance here to your own Solana wallet (the address you signed in with).",
    done: "sent to your Solana wallet",
  },
};

export function withdrawForm(hooks) {
  const settles = SETTLEMENT[hooks.settlement?.() || "none"] || SETTLEMENT.none;
  const input = h("input", { id: "withdraw-amount", inputmode: "decimal", autocomplete: "off", placeholder: "1.5", "aria-describedby": "withdraw-help withdraw-error" });
  const button = h("button", { type: "submit", class: "small" }, "Withdraw");
  const error = h("p", { id: "withdraw-error", class: "form-error", role: "alert" });
  const done = h("p", { id: "withdraw-done", class: "small withdraw-done", role: "status" });
  const form = h("form", { class: "withdraw-form", "aria-labelledby": "withdraw-heading", novalidate: true },
    h("h3", { id: "withdraw-heading" }, "Withdraw"),
    h("p", { id: "withdraw-help", class: "muted small" }, settles.help),
    h("label", { for: "withdraw-amount" }, "Amount (CHOIR)"),
    h("div", { class: "row" }, input, button),
    error, done);
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    error.textContent = "";
    done.textContent = "";
    let amount;
    try {
      amount = checkWithdrawal(input.value, hooks.balance());
    } catch (err) {
      error.textContent = err.message;
      input.focus();
      return;
    }
    button.disabled = true;
    button.setAttribute("aria-busy", "true");
    try {
      const ack = await hooks.request("withdraw", { amount: amount.toString() });
      input.value = "";
      done.textContent = `Withdrew ${formatChoir(ack.amount)}: ${settles.done}. Withdrawal id: `;
      done.append(h("code", { class: "withdrawal-id" }, ack.withdrawal_id));
      done.dataset.withdrawalId = ack.withdrawal_id;
      notify(`Withdrew ${formatChoir(ack.amount)}: ${settles.done}.`);
      hooks.onDone(ack);
    } catch (err) {
      error.textContent = withdrawError(err);
    } finally {
      button.disabled = false;
      button.removeAttribute("aria-busy");
    }
  });
  return form;
}

// A Solana browser wallet: one that announces itself through the Wallet Standard (the way current
// wallets are found), or else the legacy provider injected as window.solana (Phantom, Solflare...).

import * as base58 from "./base58.js";

// -- Wallet Standard discovery (github.com/wallet-standard/wallet-standard) ----------------------
const registered = [];

function register(...wallets) {
  for (const wallet of wallets) if (wallet && !registered.includes(wallet)) registered.push(wallet);
  return () => {};
}

if (typeof window !== "undefined") {
  // Wallets that load after this page announce themselves with this event...
  window.addEventListener("wallet-standard:register-wallet", (event) => {
    try {
      event.detail({ register });
    } catch {
      // a wallet that fails to register is left out
    }
  });
  // ...and those already loaded listen for this one and register at once.
  try {
    window.dispatchEvent(new CustomEvent("wallet-standard:app-ready", { detail: Object.freeze({ register }) }));
  } catch {
    // no CustomEvent (not a browser)
  }
}

/** A registered wallet that can connect and sign a message on a Solana chain, if any. */
export function standardWallet() {
  return registered.find((w) =>
    w?.features?.["standard:connect"] && w.features["solana:signMessage"] &&
    (w.chains || []).some((chain) => String(chain).startsWith("solana:"))) || null;
}

function legacyProvider() {
  const provider = globalThis.solana;
  return provider && typeof provider.connect === "function" && typeof provider.signMessage === "function" ? provider : null;
}

export function walletAvailable() {
  return Boolean(standardWallet() || legacyProvider());
}

export function walletName() {
  const standard = standardWallet();
  if (standard?.name) return standard.name;
  const provider = globalThis.solana;
  if (provider?.isPhantom) return "Phantom";
  if (provider?.isSolflare) return "Solflare";
  if (provider?.isBackpack) return "Backpack";
  return "your Solana wallet";
}

function publicKeyBytes(publicKey) {
  if (publicKey instanceof Uint8Array) return publicKey;
  if (typeof publicKey?.toBytes === "function") return publicKey.toBytes();
  if (typeof publicKey?.toBase58 === "function") return base58.decode(publicKey.toBase58());
  throw new Error("The wallet did not give a public key.");
}

/** Connect the wallet and return a signer {address, kind, sign(bytes)}. */
export async function walletSigner() {
  const standard = standardWallet();
  if (standard) return standardSigner(standard);
  const provider = globalThis.solana;
  const connected = await provider.connect();
  const address = base58.encode(publicKeyBytes(connected?.publicKey ?? provider.publicKey));
  return {
    address,
    kind: "wallet",
    sign: async (bytes) => {
      const result = await provider.signMessage(bytes, "utf8");
      const signature = result?.signature ?? result;
      if (!(signature instanceof Uint8Array) || signature.length !== 64) throw new Error("The wallet returned no signature.");
      return signature;
    },
  };
}

async function standardSigner(wallet) {
  const { accounts } = await wallet.features["standard:connect"].connect();
  const account = (accounts || wallet.accounts || [])[0];
  if (!account) throw new Error(`${wallet.name || "The wallet"} gave no account.`);
  const address = account.address || base58.encode(publicKeyBytes(account.publicKey));
  return {
    address,
    kind: "wallet",
    sign: async (bytes) => {
      const [output] = await wallet.features["solana:signMessage"].signMessage({ account, message: bytes });
      const signature = output?.signature;
      if (!(signature instanceof Uint8Array) || signature.length !== 64) throw new Error("The wallet returned no signature.");
      return signature;
    },
  };
}

// A Solana browser wallet (Phantom, Solflare, Backpack...) injected as window.solana.

import * as base58 from "./base58.js";

export function walletAvailable() {
  const provider = globalThis.solana;
  return Boolean(provider && typeof provider.connect === "function" && typeof provider.signMessage === "function");
}

export function walletName() {
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

// Sign-in: ask the server for the fields to sign, build the SIWS text, sign it, send it back.

import { api } from "./api.js";
import * as base58 from "./base58.js";
import { buildMessage } from "./siws.js";

/**
 * @param {{address: string, sign: (bytes: Uint8Array) => Promise<Uint8Array>}} signer
 * @returns {Promise<{address: string, display_name: string, balance: string}>}
 */
export async function signIn(signer) {
  const fields = await api.get("/api/auth/nonce");
  const message = buildMessage(fields, signer.address);
  const signature = await signer.sign(new TextEncoder().encode(message));
  return api.post("/api/auth/verify", { message, signature: base58.encode(signature), address: signer.address });
}

export async function signOut() {
  await api.post("/api/auth/logout");
}

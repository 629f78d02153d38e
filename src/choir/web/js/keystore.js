// The key a browser generates for itself (WebCrypto Ed25519), kept in IndexedDB.
// By default the private key is not extractable: script on this page can sign with it but cannot
// read it. A person who wants to keep their identity elsewhere creates an exportable key instead,
// and can export it as a Solana secret key (base58 of the 32-byte seed and the 32-byte public key,
// the form wallets import) or import one.

import * as base58 from "./base58.js";

const DB_NAME = "choir";
const STORE = "keys";
const SLOT = "default";
// PKCS#8 wrapping of a raw Ed25519 seed (RFC 8410): this header, then the 32 seed bytes.
const PKCS8_PREFIX = Uint8Array.from([0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20]);
const ALGORITHM = { name: "Ed25519" };

function openDb() {
  return new Promise((resolve, reject) => {
    const request = indexedDB.open(DB_NAME, 1);
    request.onupgradeneeded = () => request.result.createObjectStore(STORE);
    request.onsuccess = () => resolve(request.result);
    request.onerror = () => reject(request.error);
  });
}

async function withStore(mode, action) {
  const db = await openDb();
  try {
    return await new Promise((resolve, reject) => {
      const tx = db.transaction(STORE, mode);
      const request = action(tx.objectStore(STORE));
      tx.oncomplete = () => resolve(request.result);
      tx.onerror = () => reject(tx.error);
      tx.onabort = () => reject(tx.error);
    });
  } finally {
    db.close();
  }
}

export function supported() {
  return Boolean(globalThis.crypto?.subtle && globalThis.indexedDB);
}

/** The stored key record {privateKey, publicKey, address, extractable, createdAt}, or null. */
export async function loadKey() {
  return (await withStore("readonly", (s) => s.get(SLOT))) || null;
}

export async function forgetKey() {
  await withStore("readwrite", (s) => s.delete(SLOT));
}

async function addressOf(publicKey) {
  return base58.encode(new Uint8Array(await crypto.subtle.exportKey("raw", publicKey)));
}

async function save(privateKey, publicKey, extractable) {
  const record = { privateKey, publicKey, address: await addressOf(publicKey), extractable, createdAt: new Date().toISOString() };
  await withStore("readwrite", (s) => s.put(record, SLOT));
  return record;
}

/** A new Ed25519 key pair, stored; exportable only when asked. */
export async function createKey({ extractable = false } = {}) {
  const pair = await crypto.subtle.generateKey(ALGORITHM, extractable, ["sign", "verify"]);
  return save(pair.privateKey, pair.publicKey, extractable);
}

/** The Solana secret key (base58 of seed ‖ public key) of an exportable record. */
export async function exportSecret(record) {
  if (!record.extractable) throw new Error("This key was created not to leave the browser, so it cannot be exported.");
  const pkcs8 = new Uint8Array(await crypto.subtle.exportKey("pkcs8", record.privateKey));
  const seed = pkcs8.slice(PKCS8_PREFIX.length);
  const pub = new Uint8Array(await crypto.subtle.exportKey("raw", record.publicKey));
  const secret = new Uint8Array(64);
  secret.set(seed, 0);
  secret.set(pub, 32);
  return base58.encode(secret);
}

/**
 * Import a secret key: base58 of 64 bytes (seed ‖ public key) or of a 32-byte seed, or the JSON
 * array of 64 numbers that solana-keygen writes. The imported key stays exportable.
 */
export async function importSecret(text) {
  const bytes = parseSecret(text);
  const seed = bytes.slice(0, 32);
  const pkcs8 = new Uint8Array(PKCS8_PREFIX.length + 32);
  pkcs8.set(PKCS8_PREFIX, 0);
  pkcs8.set(seed, PKCS8_PREFIX.length);
  const privateKey = await crypto.subtle.importKey("pkcs8", pkcs8, ALGORITHM, true, ["sign"]);
  const jwk = await crypto.subtle.exportKey("jwk", privateKey);
  const pubRaw = base64UrlBytes(jwk.x);
  if (bytes.length === 64 && !bytes.slice(32).every((b, i) => b === pubRaw[i])) {
    throw new Error("This secret key's public half does not match its seed.");
  }
  const publicKey = await crypto.subtle.importKey("raw", pubRaw, ALGORITHM, true, ["verify"]);
  return save(privateKey, publicKey, true);
}

function parseSecret(text) {
  const clean = String(text).trim();
  let bytes;
  if (clean.startsWith("[")) {
    let numbers;
    try {
      numbers = JSON.parse(clean);
    } catch {
      throw new Error("The key file is not valid JSON.");
    }
    if (!Array.isArray(numbers) || !numbers.every((n) => Number.isInteger(n) && n >= 0 && n < 256)) {
      throw new Error("A key file is a JSON array of byte values.");
    }
    bytes = Uint8Array.from(numbers);
  } else {
    try {
      bytes = base58.decode(clean);
    } catch {
      throw new Error("A secret key is written in base58 (letters and digits, no 0, O, I or l).");
    }
  }
  if (bytes.length !== 64 && bytes.length !== 32) {
    throw new Error(`A secret key is 64 bytes (or a 32-byte seed); this one is ${bytes.length}.`);
  }
  return bytes;
}

function base64UrlBytes(text) {
  const b64 = text.replace(/-/g, "+").replace(/_/g, "/").padEnd(Math.ceil(text.length / 4) * 4, "=");
  return Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
}

/** A signer {address, kind, sign(bytes) → signature bytes} for a stored key record. */
export function signerFor(record) {
  return {
    address: record.address,
    kind: "browser-key",
    sign: async (bytes) => new Uint8Array(await crypto.subtle.sign(ALGORITHM, record.privateKey, bytes)),
  };
}

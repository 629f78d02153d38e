// Base58 (the Bitcoin alphabet Solana uses) for public keys (32 bytes) and signatures (64 bytes).
// Small inputs only, so the quadratic schoolbook conversion is fine and easy to check.

const ALPHABET = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz";
const INDEX = new Map([...ALPHABET].map((c, i) => [c, i]));
// Longer inputs are refused: the conversion is quadratic and nothing Choir encodes is larger.
const MAX_BYTES = 128;

/** @param {Uint8Array} bytes */
export function encode(bytes) {
  if (!(bytes instanceof Uint8Array)) throw new TypeError("base58.encode takes a Uint8Array");
  if (bytes.length > MAX_BYTES) throw new RangeError(`base58.encode: at most ${MAX_BYTES} bytes`);
  let zeros = 0;
  while (zeros < bytes.length && bytes[zeros] === 0) zeros++;
  const digits = []; // base-58 digits, least significant first
  for (let i = zeros; i < bytes.length; i++) {
    let carry = bytes[i];
    for (let j = 0; j < digits.length; j++) {
      carry += digits[j] << 8;
      digits[j] = carry % 58;
      carry = (carry / 58) | 0;
    }
    while (carry > 0) {
      digits.push(carry % 58);
      carry = (carry / 58) | 0;
    }
  }
  let out = "1".repeat(zeros);
  for (let k = digits.length - 1; k >= 0; k--) out += ALPHABET[digits[k]];
  return out;
}

/** @param {string} text @returns {Uint8Array} */
export function decode(text) {
  if (typeof text !== "string") throw new TypeError("base58.decode takes a string");
  if (text.length > 2 * MAX_BYTES) throw new RangeError("base58.decode: input too long");
  let zeros = 0;
  while (zeros < text.length && text[zeros] === "1") zeros++;
  const bytes = []; // least significant first
  for (let i = zeros; i < text.length; i++) {
    const value = INDEX.get(text[i]);
    if (value === undefined) throw new SyntaxError(`not a base58 character: ${JSON.stringify(text[i])}`);
    let carry = value;
    for (let j = 0; j < bytes.length; j++) {
      carry += bytes[j] * 58;
      bytes[j] = carry & 0xff;
      carry >>= 8;
    }
    while (carry > 0) {
      bytes.push(carry & 0xff);
      carry >>= 8;
    }
  }
  const out = new Uint8Array(zeros + bytes.length);
  for (let k = 0; k < bytes.length; k++) out[out.length - 1 - k] = bytes[k];
  return out;
}

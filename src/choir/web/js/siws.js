// The Sign-In With Solana text, byte for byte what the server's build_message() makes
// (src/choir/auth/siws.py): "\n" endings, no trailing newline, an absent field leaves out its line.

const HEADER = " wants you to sign in with your Solana account:";
const FIELD_LINES = [
  ["uri", "URI"],
  ["version", "Version"],
  ["chain_id", "Chain ID"],
  ["nonce", "Nonce"],
  ["issued_at", "Issued At"],
  ["expiration_time", "Expiration Time"],
];

/**
 * @param {Record<string, string>} fields what GET /api/auth/nonce returned
 * @param {string} address the signer's base58 public key
 */
export function buildMessage(fields, address) {
  let text = `${fields.domain}${HEADER}\n${address}`;
  if (fields.statement) text += `\n\n${fields.statement}`;
  const lines = FIELD_LINES.filter(([name]) => fields[name]).map(([name, label]) => `${label}: ${fields[name]}`);
  if (lines.length) text += "\n\n" + lines.join("\n");
  return text;
}

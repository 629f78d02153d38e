// CHOIR amounts: decimal strings of base units (9 decimals) on the wire, BigInt in the page.
// Never floats: 10^19 base units do not fit a double exactly.

export const DECIMALS = 9;
const SCALE = 10n ** BigInt(DECIMALS);
const UNITS_RE = /^-?[0-9]{1,30}$/;
const INPUT_RE = /^([0-9]{1,11})?(?:\.([0-9]*))?$/;

/** Base units from a wire string (or a BigInt). */
export function units(value) {
  if (typeof value === "bigint") return value;
  if (typeof value !== "string" || !UNITS_RE.test(value)) {
    throw new TypeError(`not an amount of base units: ${JSON.stringify(value)}`);
  }
  return BigInt(value);
}

/**
 * "7,500,000,000 CHOIR", "1.5 CHOIR", "0.000000001 CHOIR": exact, trailing zeros dropped; with
 * `decimals`, rounded half up to that many ("≈ 92.38 CHOIR" for a hint, never for a balance).
 */
export function formatChoir(value, { unit = true, decimals = null } = {}) {
  let n = units(value);
  const rounded = decimals !== null && n !== roundTo(n, decimals);
  if (decimals !== null) n = roundTo(n, decimals);
  const sign = n < 0n ? "-" : "";
  const abs = n < 0n ? -n : n;
  const whole = (abs / SCALE).toString().replace(/\B(?=(\d{3})+(?!\d))/g, ",");
  const frac = (abs % SCALE).toString().padStart(DECIMALS, "0").replace(/0+$/, "");
  const text = (rounded ? "≈ " : "") + sign + whole + (frac ? "." + frac : "");
  return unit ? `${text} CHOIR` : text;
}

/** Base units rounded half up (away from zero) to `decimals` decimals of CHOIR. */
export function roundTo(value, decimals) {
  const step = 10n ** BigInt(DECIMALS - decimals);
  const n = units(value);
  const abs = n < 0n ? -n : n;
  const r = ((abs + step / 2n) / step) * step;
  return n < 0n ? -r : r;
}

/** Base units rounded up to `decimals` decimals: a suggested stake that is never below the hint. */
export function ceilTo(value, decimals) {
  const step = 10n ** BigInt(DECIMALS - decimals);
  const n = units(value);
  return ((n + step - 1n) / step) * step;
}

/** A plain decimal for an input field: "2.5" (no grouping, no unit). */
export function toInput(value) {
  return formatChoir(value, { unit: false }).replaceAll(",", "");
}

/**
 * Base units (BigInt) from what a person typed, like "2.5" or "10"; throws an Error whose message
 * says what is wrong, so the form can show it.
 */
export function parseChoir(text) {
  const clean = String(text).trim().replaceAll(",", "").replaceAll("_", "");
  const match = INPUT_RE.exec(clean);
  if (!clean || clean === "." || !match) throw new Error("Enter an amount like 2 or 2.5");
  const [, whole = "0", frac = ""] = match;
  if (frac.length > DECIMALS) throw new Error(`CHOIR has at most ${DECIMALS} decimals`);
  return BigInt(whole) * SCALE + BigInt(frac.padEnd(DECIMALS, "0"));
}

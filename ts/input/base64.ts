// Standard padded base64 (RFC 4648 §4), decoded the way Kata's Rust `base64::STANDARD` engine
// does: only the standard alphabet, padding required, no whitespace, no stray bits in the last
// character. Checked by decoding and re-encoding: both native and linear, so a multi-MiB value
// costs milliseconds and no regex can backtrack over it.

/** The bytes of `text`, or null when it is not canonical padded standard base64. "" is zero bytes. */
export function decodeStandardBase64(text: string): Buffer | null {
  if (text.length % 4 !== 0) return null;
  // Buffer.from skips characters outside the alphabet and accepts the URL-safe one; the round
  // trip gives back exactly `text` only when there were none and the padding bits were zero.
  const bytes = Buffer.from(text, 'base64');
  return bytes.toString('base64') === text ? bytes : null;
}

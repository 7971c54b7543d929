import { createHmac, timingSafeEqual } from 'node:crypto';

/**
 * Canonical JSON (object keys sorted, recursively) so that two bodies that differ only in key
 * order or whitespace hash the same.
 */
export function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  if (value && typeof value === 'object') {
    const entries = Object.entries(value as Record<string, unknown>)
      .filter(([, v]) => v !== undefined)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v)}`).join(',')}}`;
  }
  return JSON.stringify(value) ?? 'null';
}

/** HMAC-SHA256 with a purpose label, so one server secret never signs two kinds of thing alike. */
export function hmacHex(secret: Buffer, purpose: string, data: string): string {
  return createHmac('sha256', secret).update(purpose).update('\0').update(data).digest('hex');
}

export function equalHex(a: string, b: string): boolean {
  // Buffer.from(.., 'hex') silently stops at the first non-hex character: check the text first.
  if (a.length !== b.length || !/^[0-9a-f]+$/i.test(a) || !/^[0-9a-f]+$/i.test(b)) return false;
  const x = Buffer.from(a, 'hex');
  const y = Buffer.from(b, 'hex');
  return x.length === y.length && x.length > 0 && timingSafeEqual(x, y);
}

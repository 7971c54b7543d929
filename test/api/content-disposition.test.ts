import { describe, expect, it } from 'vitest';
import { contentDisposition } from '../../shared/adapters/aws/s3-download-url-signer';

/** RFC 8187 attr-char: what may stand unencoded in `filename*`. */
const ATTR_CHARS = /^[A-Za-z0-9!#$&+\-.^_`|~%]*$/;

describe('the download Content-Disposition', () => {
  it('names our files in both forms', () => {
    expect(contentDisposition('Contacts_2026-12-02_01a2360daad79410b8cb29dfdb56.xlsx')).toBe(
      `attachment; filename="Contacts_2026-12-02_01a2360daad79410b8cb29dfdb56.xlsx"; filename*=UTF-8''Contacts_2026-12-02_01a2360daad79410b8cb29dfdb56.xlsx`,
    );
  });

  it("percent-encodes every character outside RFC 8187's attr-char, ' ( ) * included (encodeURIComponent leaves them)", () => {
    const name = `상담 통계 (7월)'s *final*.xlsx`;
    const header = contentDisposition(name);
    const encoded = header.split("filename*=UTF-8''")[1] ?? '';
    expect(encoded).toMatch(ATTR_CHARS);
    expect(encoded).toContain('%28');
    expect(encoded).toContain('%27');
    expect(encoded).toContain('%2A');
    expect(decodeURIComponent(encoded)).toBe(name);
    // The ASCII fallback keeps what it can and never ends its quoted string early.
    expect(header).toContain(`filename="__ __ (7_)'s *final*.xlsx"`);
  });

  it('a quote, a backslash or a line break cannot break out of the header', () => {
    const header = contentDisposition('a"b\\c\r\nSet-Cookie: x.xlsx');
    expect(header).not.toMatch(/[\r\n]/);
    expect(header.split('"')).toHaveLength(3);
  });
});

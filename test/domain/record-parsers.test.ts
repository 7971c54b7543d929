import { describe, expect, it } from 'vitest';
import {
  caseRecordSchema,
  generateWorkspace,
  safeParseCaseRecord,
  safeParseUserRecord,
  userRecordSchema,
} from '../../shared/domain';

const MUTATIONS: unknown[] = [
  undefined, null, '', 'x', '+821012345678', '010-1234-5678', 0, -1, 1, 1.5, Number.NaN, Number.POSITIVE_INFINITY,
  2 ** 60, 8_640_000_000_000_001, true, false, [], ['a'], [1], {}, { a: 1 }, { a: [1] }, { a: Number.NaN },
  { a: { b: 1 } }, new Date(0), 'inbound', 'closed', 'email', 'campaign',
];

function keysOf(schema: { shape: Record<string, unknown> }): string[] {
  return Object.keys(schema.shape);
}

function agree(fast: (raw: unknown) => { success: boolean; data?: unknown }, schema: { safeParse(raw: unknown): { success: boolean; data?: unknown } }, raw: unknown, label: string) {
  const a = fast(raw);
  const b = schema.safeParse(raw);
  expect(a.success, label).toBe(b.success);
  if (a.success && b.success) expect(a.data, label).toEqual(b.data);
}

describe('fast record parsers agree with the zod schemas', () => {
  const ws = generateWorkspace({ channelId: 'ch', seed: 21, users: 20, cases: 15 });

  it('S8: safeParseCaseRecord accepts and rejects exactly what caseRecordSchema does', () => {
    let checked = 0;
    for (const rec of ws.cases) {
      const base = JSON.parse(JSON.stringify(rec)) as Record<string, unknown>;
      agree(safeParseCaseRecord, caseRecordSchema, base, 'generated');
      agree(safeParseCaseRecord, caseRecordSchema, { ...base, pk: 'ch#2025-07-01', sk: 'x' }, 'extra keys stripped');
      for (const key of keysOf(caseRecordSchema)) {
        for (const value of MUTATIONS) {
          const raw = { ...base };
          if (value === undefined) delete raw[key];
          else raw[key] = value;
          agree(safeParseCaseRecord, caseRecordSchema, raw, `${key}=${String(value)}`);
          checked++;
        }
      }
    }
    for (const raw of [null, undefined, 'x', 1, [], new Map()]) agree(safeParseCaseRecord, caseRecordSchema, raw, String(raw));
    expect(checked).toBeGreaterThan(10_000);
  });

  it('C5: safeParseUserRecord accepts and rejects exactly what userRecordSchema does', () => {
    for (const rec of ws.users) {
      const base = JSON.parse(JSON.stringify(rec)) as Record<string, unknown>;
      agree(safeParseUserRecord, userRecordSchema, base, 'generated');
      for (const key of keysOf(userRecordSchema)) {
        for (const value of MUTATIONS) {
          const raw = { ...base };
          if (value === undefined) delete raw[key];
          else raw[key] = value;
          agree(safeParseUserRecord, userRecordSchema, raw, `${key}=${String(value)}`);
        }
      }
    }
  });

  it('S8: a rejected record carries zod\'s error with the field path', () => {
    const r = safeParseCaseRecord({ userChatCaseId: 'k' });
    expect(r.success).toBe(false);
    if (!r.success) expect(r.error.issues.map((i) => i.path.join('.'))).toContain('userChatId');
  });
});

import { describe, expect, it } from 'vitest';
import { caseStartedAt, generateWorkspace, type CaseRecord, type UserRecord } from '../../shared/domain';
import { compareKeyStrings, compareUsersInExportOrder, userShardOf } from '../../shared/app/source-keys';
import { sortUserIdsForExport } from '../../shared/app/plan-chunks';
import { createSourceWriter } from '../../infra/local/seed-data';
import type { LocalStack } from '../../infra/local/stack';
import { readExportFile, storesFor, submitExport, useLocalStack, waitForJob, QUIET_ENV } from './helpers';

/** DynamoDB orders string sort keys by their UTF-8 bytes. */
const utf8Order = (a: string, b: string) => Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8'));
const sign = (n: number) => Math.sign(n);

const FULLWIDTH_A = 'u-\uFF21';
/** An astral (surrogate pair) id in the same shard as FULLWIDTH_A, so only the id comparison decides. */
const sameShardEmoji = (() => {
  for (let i = 0; i < 10_000; i++) {
    const id = `u-\u{1F600}${i}`;
    if (userShardOf(id) === userShardOf(FULLWIDTH_A)) return id;
  }
  throw new Error('no same-shard id');
})();

// ASCII, Latin-1, Hangul, the private use area and U+FFFF (code units >= U+E000), surrogate
// pairs (U+10000, emoji, U+10FFFF), prefixes of each other, and an empty string.
const TRICKY = [
  '', 'a', 'ab', 'a\u0000', 'Z', '~', '\u007F', '\u0080', 'é', '\u07FF', '\u0800', '가', '\uD7FF',
  '\uE000', '\uF8FF', '\uFB01', '\uFF21', '\uFFFD', '\uFFFF', '\u{10000}', '\u{1F600}', '\u{1F600}a',
  '\u{1F601}', '\u{10FFFF}', 'a\u{1F600}', 'a\uFF21', 'a\uFF21\u{1F600}', 'a\u{1F600}\uFF21', 'u-\uFF21', 'u-\u{1F600}17',
];

describe('compareKeyStrings (DynamoDB sort-key order)', () => {
  it('puts a fullwidth (U+FF21) id before an emoji id, as UTF-8 bytes do and JS < does not', () => {
    expect('u-\u{1F600}17' < 'u-\uFF21').toBe(true); // the UTF-16 order the bug used
    expect(compareKeyStrings('u-\uFF21', 'u-\u{1F600}17')).toBeLessThan(0);
    expect(compareKeyStrings('u-\u{1F600}17', 'u-\uFF21')).toBeGreaterThan(0);
    expect(compareKeyStrings('\uFFFF', '\u{10000}')).toBeLessThan(0);
    expect(compareKeyStrings('\uE000', '\uD7FF')).toBeGreaterThan(0);
  });

  it('agrees with a UTF-8 byte comparison on every pair, and is 0 only for equal strings', () => {
    for (const a of TRICKY) {
      for (const b of TRICKY) {
        expect([a, b, sign(compareKeyStrings(a, b))]).toEqual([a, b, sign(utf8Order(a, b))]);
      }
    }
    expect([...TRICKY].sort(compareKeyStrings)).toEqual([...TRICKY].sort(utf8Order));
  });

  it('agrees with UTF-8 bytes on random strings mixing ASCII, BMP and astral characters', () => {
    let state = 12345;
    const next = () => (state = (Math.imul(state, 1103515245) + 12345) >>> 0);
    const pool = ['a', 'b', '\u00E9', '\uD7FF', '\uE000', '\uFF21', '\uFFFF', '\u{10000}', '\u{1F600}', '\u{10FFFF}'];
    const word = () => Array.from({ length: next() % 5 }, () => pool[next() % pool.length]).join('');
    for (let i = 0; i < 2000; i++) {
      const a = word();
      const b = word();
      expect(sign(compareKeyStrings(a, b))).toBe(sign(utf8Order(a, b)));
    }
  });
});

describe('compareUsersInExportOrder', () => {
  it('orders ids in one shard by UTF-8 bytes (the order a shard Query returns)', () => {
    expect(userShardOf(sameShardEmoji)).toBe(userShardOf(FULLWIDTH_A));
    expect([sameShardEmoji, FULLWIDTH_A].sort(compareUsersInExportOrder)).toEqual([FULLWIDTH_A, sameShardEmoji]);
    expect(sortUserIdsForExport([sameShardEmoji, FULLWIDTH_A])).toEqual([FULLWIDTH_A, sameShardEmoji]);
  });

  it('is shard first, then UTF-8 bytes', () => {
    const ids = TRICKY.map((t) => `u-${t}`);
    const expected = [...ids].sort((a, b) => userShardOf(a) - userShardOf(b) || utf8Order(a, b));
    expect([...ids].sort(compareUsersInExportOrder)).toEqual(expected);
  });
});

describe('export order on the emulators (dynalite sorts keys like DynamoDB)', () => {
  const CHANNEL = 'ord';
  let stack: LocalStack;
  const template = generateWorkspace({ channelId: CHANNEL, seed: 3, users: 1, cases: 1 });
  const userTemplate = [...template.users][0] as UserRecord;
  const caseTemplate = [...template.cases][0] as CaseRecord;
  // Non-ASCII ids in the same shard as each other plus a few ASCII ones elsewhere.
  const ids = [FULLWIDTH_A, sameShardEmoji, 'u-\uE000', 'u-\u{10000}', 'u-plain', 'u-Zed', 'u-\uD7FF'];
  const T = Date.UTC(2025, 7, 10, 3, 0, 0);
  // Two cases at the same start instant: the case-id tie-break decides, in sort-key order.
  const cases: CaseRecord[] = [
    { ...caseTemplate, userChatCaseId: 'c-\u{1F600}', userChatId: 'chat-1', userId: sameShardEmoji, createdAt: T, firstQueuedAt: T, firstOpenedAt: T + 1000 },
    { ...caseTemplate, userChatCaseId: 'c-\uFF21', userChatId: 'chat-2', userId: FULLWIDTH_A, createdAt: T, firstQueuedAt: T, firstOpenedAt: T + 1000 },
  ];

  useLocalStack(
    {
      port: 0,
      env: { ...QUIET_ENV, KEY_SPIN_COUNT: '1000' },
      queues: { chunk: { visibilityTimeout: 30 }, finalize: { visibilityTimeout: 20 }, notify: { visibilityTimeout: 5 } },
    },
    (started) => (stack = started),
  );

  const userColumn = async (job: Awaited<ReturnType<typeof submitExport>>) => {
    const done = await waitForJob(stack, job, (j) => j.status === 'completed' || j.status === 'failed');
    expect(done.status).toBe('completed');
    const sheets = await readExportFile(stack, done);
    return { sheets, users: (sheets['User data'] ?? []).slice(1).map((r) => r[0]) };
  };

  it('scope all, a selection and the cases\' users come out in compareUsersInExportOrder order', async () => {
    const { ddb } = storesFor(stack);
    const writer = createSourceWriter(ddb);
    await writer.putUsers(CHANNEL, ids.map((id) => ({ ...userTemplate, id, name: id })));
    await writer.putCases(CHANNEL, cases);
    const documented = [...ids].sort(compareUsersInExportOrder);

    const all = await userColumn(await submitExport(stack, { kind: 'contacts', scope: 'all' }, { channelId: CHANNEL }));
    expect(all.users).toEqual(documented);

    const selected = await userColumn(
      await submitExport(stack, { kind: 'contacts', scope: 'selection', userIdsCount: ids.length }, { channelId: CHANNEL, userIds: [...ids].reverse() }),
    );
    expect(selected.users).toEqual(documented);

    const byCases = await userColumn(await submitExport(stack, { kind: 'cases', from: '2025-08-09', to: '2025-08-11', timezone: 'Asia/Seoul' }, { channelId: CHANNEL }));
    expect(byCases.users).toEqual([FULLWIDTH_A, sameShardEmoji]);
    const caseRows = byCases.sheets['UserChatCase data'] ?? [];
    const idColumn = caseRows[0]?.indexOf('userChatCaseId') ?? -1;
    const expectedCases = [...cases]
      .sort((a, b) => caseStartedAt(a) - caseStartedAt(b) || compareKeyStrings(a.userChatCaseId, b.userChatCaseId))
      .map((c) => c.userChatCaseId);
    expect(expectedCases).toEqual(['c-\uFF21', 'c-\u{1F600}']);
    expect(caseRows.slice(1).map((r) => r[idColumn])).toEqual(expectedCases);
  });
});

import * as zlib from 'node:zlib';
import { describe, expect, it } from 'vitest';
import type { LocalStack } from '../../infra/local/stack';
import { createSourceWriter } from '../../infra/local/seed-data';
import { objectKeys } from '../../shared/app/messages';
import { buildChunkMessages } from '../../shared/app/plan-chunks';
import { processChunk } from '../../shared/app/process-chunk';
import { chunkDepsFor, storesFor, submitExport, useLocalStack, QUIET_ENV } from './helpers';

/**
 * One moment per export: relative-date filters (withinLastDays, beforeDaysAgo) and the cases'
 * derived userChatCaseState (the one-hour rule) are evaluated at the job's createdAt (the request,
 * when the definition was pinned), whatever clock the chunk delivery runs at. Before, each
 * delivery used its own clock, so a retry minutes later (or chunks run minutes apart) used
 * another cutoff, and one file could hold a set no single moment produces.
 */

const CHANNEL = 'pinned-now';
const DAY = 86_400_000;
const MINUTE = 60_000;
let stack: LocalStack;
useLocalStack({ port: 0, pollers: false, env: QUIET_ENV }, (s) => (stack = s));

/** The text of every cell of every row in the export's parts of `sheet`. */
async function partRows(exportId: string, sheet: 'users' | 'cases'): Promise<string[][]> {
  const { objects } = storesFor(stack);
  const rows: string[][] = [];
  for (const { key } of await objects.list(`${objectKeys.partsPrefix(exportId)}${sheet}/`)) {
    if (key.endsWith('.json')) continue;
    const body = await objects.getBuffer(key);
    const xml = zlib.inflateRawSync(body!, { finishFlush: zlib.constants.Z_SYNC_FLUSH }).toString('utf8');
    for (const row of xml.match(/<row[^>]*>.*?<\/row>/g) ?? []) {
      rows.push([...row.matchAll(/<c(?:\s[^>]*?)?(?:\/>|>(.*?)<\/c>)/g)].map((m) => (m[1] ?? '').replace(/<[^>]+>/g, '')));
    }
  }
  return rows;
}

describe('chunks evaluate time at the export’s createdAt, not at their delivery', () => {
  it('withinLastDays: a delivery 5 minutes after the request keeps the users seen within 7 days of the request', async () => {
    const job = await submitExport(
      stack,
      { kind: 'contacts', scope: 'filter', filter: { join: 'and', groups: [{ join: 'and', conditions: [{ field: 'lastSeenAt', op: 'withinLastDays', days: 7 }] }] } },
      { channelId: CHANNEL },
    );
    const t0 = Date.parse(job.createdAt);
    const { ddb } = storesFor(stack);
    await createSourceWriter(ddb, stack.tables).putUsers(CHANNEL, [
      // Inside the 7 days at the request, outside 5 minutes later.
      { id: 'pin-a', name: 'Inside at the request', createdAt: t0 - 30 * DAY, lastSeenAt: t0 - 7 * DAY + MINUTE },
      // Seen after the request: outside at the request (after "now"), inside 5 minutes later.
      { id: 'pin-c', name: 'Seen after the request', createdAt: t0 - 30 * DAY, lastSeenAt: t0 + MINUTE },
      // Outside at both.
      { id: 'pin-z', name: 'Long gone', createdAt: t0 - 30 * DAY, lastSeenAt: t0 - 8 * DAY },
    ]);
    // Every delivery runs 5 minutes after the request (a retry, or a backlog).
    const deps = chunkDepsFor(stack, { clock: { now: () => new Date(t0 + 5 * MINUTE) } });
    for (const message of buildChunkMessages(job, {}, 2000)) await processChunk(message, deps, { receiveCount: 1 });
    const ids = (await partRows(job.exportId, 'users')).map((cells) => cells[0]).filter((id) => id !== 'id');
    expect(ids).toEqual(['pin-a']);
    expect((await storesFor(stack).store.getJob(CHANNEL, job.exportId))?.rowsWritten).toBe(1);
  });

  it('userChatCaseState: a case closed 58 minutes before the request is inProgress in a chunk run 5 minutes later', async () => {
    const day = (ms: number) => new Date(ms).toISOString().slice(0, 10);
    const submittedAt = Date.now();
    const job = await submitExport(
      stack,
      { kind: 'cases', from: day(submittedAt - 2 * DAY), to: day(submittedAt + DAY), timezone: 'UTC' },
      { channelId: CHANNEL, timeZone: 'UTC' },
    );
    const t0 = Date.parse(job.createdAt);
    const { ddb } = storesFor(stack);
    const base = { userChatId: 'pin-chat', direction: 'inbound', userChatState: 'closed', userId: 'pin-a', mediumName: 'inAppChat', userChatCase: 1 };
    await createSourceWriter(ddb, stack.tables).putCases(CHANNEL, [
      // 58 minutes closed at the request (the one-hour rule: inProgress), 63 at the delivery.
      { ...base, userChatCaseId: 'pin-case-1', createdAt: t0 - 2 * 3_600_000, firstOpenedAt: t0 - 2 * 3_600_000, closedAt: t0 - 58 * MINUTE },
    ]);
    const deps = chunkDepsFor(stack, { clock: { now: () => new Date(t0 + 5 * MINUTE) } });
    for (const message of buildChunkMessages(job, {}, 2000)) await processChunk(message, deps, { receiveCount: 1 });
    const rows = (await partRows(job.exportId, 'cases')).filter((cells) => cells.includes('pin-case-1'));
    expect(rows).toHaveLength(1);
    expect(rows[0]).toContain('inProgress');
    expect(rows[0]).not.toContain('completed');
  });
});

import { describe, expect, it } from 'vitest';
import { compileFilter, generateWorkspace } from '../../shared/domain';
import type { LocalStack } from '../../infra/local/stack';
import { storesFor, submitExport, waitFor, waitForJob, useLocalStack, QUIET_ENV } from './helpers';
import { http, managerToken, waitForExport } from '../e2e/support';

const CHANNEL = 'c3';

describe('size rule and an unreachable bot', () => {
  let stack: LocalStack;

  useLocalStack(
    {
      port: 0,
      seed: { channelId: CHANNEL, users: 240, cases: 300, seed: 3 },
      // The 1,000,000-row rule, lowered so a test can cross it with a few hundred rows.
      env: { ...QUIET_ENV, MAX_ROWS: '100', NOTIFY_BACKOFF_MS: '10' },
      // Chunks: 30 s, so a delivery slowed by a loaded machine is not received again while it
      // works (each receive counts toward the DLQ, which fails the export); failures come back
      // after the retry delay, not the visibility timeout.
      queues: { chunk: { visibilityTimeout: 30 }, notify: { visibilityTimeout: 1, maxReceiveCount: 2 } },
    },
    (started) => (stack = started),
  );

  const botMessagesFor = (exportId: string) => stack.bot.messages.filter((m) => (m.body as { exportId?: string }).exportId === exportId);

  it('more rows than the limit: the export fails with TOO_MANY_ROWS, no file, and the bot is told', async () => {
    const job = await submitExport(stack, { kind: 'contacts', scope: 'all' }, { channelId: CHANNEL });
    const failed = await waitForJob(stack, job, (j) => j.status === 'failed' || j.status === 'completed');
    expect(failed.status).toBe('failed');
    expect(failed.error?.code).toBe('TOO_MANY_ROWS');
    // Rows are counted until the first one over the limit: the message states the limit passed,
    // never a total it does not know (it used to say "would have 1382 rows").
    expect(failed.error).toMatchObject({ message: expect.stringMatching(/^the export has more than [\d,]+ rows, the most one file may hold: narrow the filter or the selection \(rule C6\)$/) });
    expect(failed.error?.message).not.toMatch(/would have/);
    expect(failed.error?.maxRows).toBe(100);
    expect(failed.objectKey).toBeUndefined();
    const message = await waitFor(() => botMessagesFor(job.exportId)[0]);
    expect((message.body as { type: string; error: { code: string } }).type).toBe('export.failed');
    expect((message.body as { error: { code: string } }).error.code).toBe('TOO_MANY_ROWS');
    await new Promise((resolve) => setTimeout(resolve, 1000));
    expect(await storesFor(stack).objects.list(`exports/${CHANNEL}/${job.exportId}/`)).toEqual([]);
    expect(stack.deliveries.finalizer.filter((r) => r.body.includes(job.exportId))).toHaveLength(0);
  });

  it('C8: a failed export gives the cooldown back (nothing was downloaded), so the manager can narrow it at once', async () => {
    const token = await managerToken(CHANNEL, 'm-cooldown');
    const body = { kind: 'contacts', scope: 'all', reason: 'quarterly review', password: 'Secret-123' };
    const first = await http(stack, 'POST', '/v1/exports', { token, body });
    expect(first.status).toBe(202);
    // While it runs, the same manager is held back (the cooldown is taken at request time).
    const blocked = await http(stack, 'POST', '/v1/exports', { token, body });
    expect(blocked.status).toBe(429);
    const failed = await waitForExport(stack, token, first.body.exportId);
    expect(failed.status).toBe('failed');
    expect(failed.error.code).toBe('TOO_MANY_ROWS');
    // The status turns "failed" a moment before the release lands: allow that moment, no more.
    const narrowedBody = { ...body, scope: 'user', userId: 'no-such-user' };
    const narrowed = await waitFor(async () => {
      const res = await http(stack, 'POST', '/v1/exports', { token, body: narrowedBody });
      return res.status === 429 ? undefined : res;
    }, 10_000);
    expect(narrowed.status).toBe(202);
    // The release is conditional on the holder: the failed export cannot free the new hold.
    const again = await http(stack, 'POST', '/v1/exports', { token, body });
    expect(again.status).toBe(429);
  });

  it('under the limit the same stack completes (the rule counts matching rows, not scanned ones)', async () => {
    const filter = {
      join: 'and',
      groups: [{ join: 'and', conditions: [{ field: 'member', op: 'eq', value: true }, { field: 'sessionCount', op: 'gte', value: 10 }] }],
    };
    const workspace = generateWorkspace({ channelId: CHANNEL, seed: 3, users: 240, cases: 300 });
    const matches = compileFilter(filter, 'users', { now: new Date(), profileSchema: workspace.userProfileSchema });
    const expected = [...workspace.users].filter((u) => matches(u)).length;
    expect(expected).toBeGreaterThan(0);
    expect(expected).toBeLessThanOrEqual(100);
    const job = await submitExport(stack, { kind: 'contacts', scope: 'filter', filter }, { channelId: CHANNEL });
    const done = await waitForJob(stack, job, (j) => j.status === 'failed' || j.status === 'completed');
    expect(done.status).toBe('completed');
    expect(done.rowCount).toBe(expected);
  });

  it('a bot that keeps failing: retried, then the notify DLQ records it on the job without looping', async () => {
    stack.bot.failWith = 500;
    try {
      const job = await submitExport(stack, { kind: 'contacts', scope: 'user', userId: 'no-such-user' }, { channelId: CHANNEL });
      const recorded = await waitForJob(stack, job, (j) => j.notifyError !== undefined);
      expect(recorded.status).toBe('completed');
      expect(recorded.notifiedAt).toBeUndefined();
      const dead = stack.deliveries.dlq.filter((r) => r.body.includes(job.exportId));
      expect(dead).toHaveLength(1);
      await new Promise((resolve) => setTimeout(resolve, 1500));
      // Nothing re-enqueued a notification after the dead letter.
      expect(stack.deliveries.dlq.filter((r) => r.body.includes(job.exportId))).toHaveLength(1);
    } finally {
      stack.bot.failWith = undefined;
    }
  });
});

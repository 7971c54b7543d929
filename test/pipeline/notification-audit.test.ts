import { describe, expect, it } from 'vitest';
import type { LocalStack } from '../../infra/local/stack';
import { handleDeadLetter } from '../../shared/app/handle-dead-letter';
import type { ExportJob } from '../../shared/app/export-job';
import type { NotifyMessage } from '../../shared/app/messages';
import { notifyExport, type BotAnswer, type NotifyDeps } from '../../shared/app/notify-export';
import type { StepDeps } from '../../shared/app/pipeline-steps';
import { FakeAuditLog, MutableClock, notifyLeaseStore } from '../api/support/fakes';
import { http, managerToken, waitUntil } from '../e2e/support';
import { useLocalStack, QUIET_ENV, notifyDepsFor } from './helpers';
import { makeCompletedJob, makeJob } from './job-fixture';
import { silentLog } from '../../shared/ports/pipeline-log';
import { notificationView } from '../../shared/app/api/view';

/**
 * The bot's answer reaches the audit trail (kept for good), not only the job item (which changes
 * and expires): `notified` when it accepted the post, `notify-failed` when it refused it or every
 * retry failed. An audit error must neither lose the post nor cause a second one.
 */

const CHANNEL = 'c1';
const LINK_SECRET = 'link-secret-for-notification-audit-tests';

function scriptedBot(...answers: BotAnswer[]) {
  const bot = {
    posts: [] as { body: string; headers: Record<string, string> }[],
    async post(body: string, headers: Record<string, string>): Promise<BotAnswer> {
      bot.posts.push({ body, headers });
      return answers[Math.min(bot.posts.length, answers.length) - 1]!;
    },
  };
  return bot;
}

function setup(job: ExportJob) {
  const store = notifyLeaseStore();
  store.jobs.set(job.exportId, structuredClone(job));
  const audit = new FakeAuditLog();
  const clock = new MutableClock(new Date('2026-03-01T10:00:00.000Z'));
  const notifyDeps = (bot: NotifyDeps['bot']): NotifyDeps => notifyDepsFor({ store, bot, clock, audit, linkSigningSecret: LINK_SECRET });
  const stepDeps = { store, audit, clock, log: silentLog, queue: {}, objects: {} } as unknown as StepDeps;
  const current = () => store.jobs.get(job.exportId) as ExportJob;
  return { store, audit, clock, notifyDeps, stepDeps, current };
}

const notify = (exportId: string, event: NotifyMessage['event'] = 'export.completed'): NotifyMessage => ({ type: 'notify', exportId, channelId: CHANNEL, event });

describe('notifier: the outcome in the audit trail', () => {
  it('a post the bot accepted: one `notified` event with the recorded time and the event', async () => {
    const { notifyDeps, audit, current } = setup(makeCompletedJob('na-sent', CHANNEL));
    const bot = scriptedBot({ status: 500 }, { status: 204 });
    expect(await notifyExport(notify('na-sent'), notifyDeps(bot))).toEqual({ status: 'sent', attempts: 2 });
    expect(audit.events).toEqual([{ type: 'notified', exportId: 'na-sent', channelId: CHANNEL, at: current().notifiedAt, event: 'export.completed' }]);
  });

  it('a failed export announced: `notified` names export.failed', async () => {
    const job = makeJob({ exportId: 'na-failed', channelId: CHANNEL, status: 'failed', error: { code: 'TOO_MANY_ROWS', message: 'too many' } });
    const { notifyDeps, audit, current } = setup(job);
    expect(await notifyExport(notify('na-failed', 'export.failed'), notifyDeps(scriptedBot({ status: 200 })))).toEqual({ status: 'sent', attempts: 1 });
    expect(audit.events).toEqual([{ type: 'notified', exportId: 'na-failed', channelId: CHANNEL, at: current().notifiedAt, event: 'export.failed' }]);
  });

  it('a hand-sent notification naming the other event posts nothing and says so: never "failed" for a file that can be downloaded', async () => {
    const warnings: { message: string; extra: unknown }[] = [];
    const log = { ...silentLog, warn: (message: string, extra?: unknown) => void warnings.push({ message, extra }) };
    const completed = setup(makeCompletedJob('na-wrong-1', CHANNEL));
    const bot = scriptedBot({ status: 200 });
    expect(await notifyExport(notify('na-wrong-1', 'export.failed'), { ...completed.notifyDeps(bot), log })).toEqual({ status: 'skipped', attempts: 0 });
    const failed = setup(makeJob({ exportId: 'na-wrong-2', channelId: CHANNEL, status: 'failed', error: { code: 'TOO_MANY_ROWS', message: 'too many' } }));
    expect(await notifyExport(notify('na-wrong-2'), { ...failed.notifyDeps(bot), log })).toEqual({ status: 'skipped', attempts: 0 });
    expect(bot.posts).toEqual([]);
    expect([...completed.audit.events, ...failed.audit.events]).toEqual([]);
    expect(warnings).toEqual([
      { message: 'notify event does not match the export: nothing posted', extra: { exportId: 'na-wrong-1', event: 'export.failed', status: 'completed' } },
      { message: 'notify event does not match the export: nothing posted', extra: { exportId: 'na-wrong-2', event: 'export.completed', status: 'failed' } },
    ]);
    // The right event then posts as usual.
    expect(await notifyExport(notify('na-wrong-1'), completed.notifyDeps(bot))).toEqual({ status: 'sent', attempts: 1 });
    expect(JSON.parse(bot.posts[0]!.body)).toMatchObject({ type: 'export.completed', exportId: 'na-wrong-1' });
    // A later hand-sent duplicate naming the other event does not put that event into the trail.
    expect(await notifyExport(notify('na-wrong-1', 'export.failed'), completed.notifyDeps(bot))).toEqual({ status: 'skipped', attempts: 0 });
    expect(completed.audit.events).toEqual([{ type: 'notified', exportId: 'na-wrong-1', channelId: CHANNEL, at: completed.current().notifiedAt, event: 'export.completed' }]);
  });

  it('a notification re-sent after the link expired posts nothing: never "ready" with a link that answers 410', async () => {
    const { notifyDeps, audit } = setup({ ...makeCompletedJob('na-lapsed', CHANNEL), expiresAt: '2026-02-20T00:00:00.000Z' });
    const bot = scriptedBot({ status: 200 });
    expect(await notifyExport(notify('na-lapsed'), notifyDeps(bot))).toEqual({ status: 'skipped', attempts: 0 });
    expect(bot.posts).toEqual([]);
    expect(audit.events).toEqual([]);
  });

  it('a dead letter of a hand-sent notification naming the other event records the event the status calls for', async () => {
    const { stepDeps, audit, current } = setup(makeCompletedJob('na-dlq-wrong', CHANNEL));
    expect(await handleDeadLetter(JSON.stringify(notify('na-dlq-wrong', 'export.failed')), stepDeps, { queue: 'notify-dlq' })).toBe('notify-failure-recorded');
    expect(audit.events.map((e) => ('event' in e ? e.event : undefined))).toEqual(['export.completed']);
    expect(current().notifyError).toContain('export.completed');
  });

  it('a dead letter after the runbook cleared the last one (notifyError removed) gets its own time, not the old one', async () => {
    const { stepDeps, clock, current, store } = setup({ ...makeCompletedJob('na-dlq-again', CHANNEL), notifyErrorAt: '2026-02-28T00:00:00.000Z' });
    expect(store.jobs.get('na-dlq-again')?.notifyError).toBeUndefined();
    expect(await handleDeadLetter(JSON.stringify(notify('na-dlq-again')), stepDeps, { queue: 'notify-dlq' })).toBe('notify-failure-recorded');
    expect(current().notifyErrorAt).toBe(clock.now().toISOString());
  });

  it('a refusal (403): one `notify-failed` with the status only, never the link, the URL or a header', async () => {
    const { notifyDeps, audit, current } = setup(makeCompletedJob('na-refused', CHANNEL));
    const bot = scriptedBot({ status: 403 });
    expect(await notifyExport(notify('na-refused'), notifyDeps(bot))).toEqual({ status: 'rejected', attempts: 1 });
    expect(audit.events).toEqual([
      { type: 'notify-failed', exportId: 'na-refused', channelId: CHANNEL, at: current().notifyRefusedAt, event: 'export.completed', reason: 'HTTP 403' },
    ]);
    const { link } = JSON.parse(bot.posts[0]!.body) as { link: string };
    const stored = JSON.stringify(audit.events);
    for (const secretish of [link, 'https://', bot.posts[0]!.headers['X-Signature']!, 'sha256=']) expect(stored).not.toContain(secretish);
  });

  it('the append fails after the post: thrown, and the retry appends it with the first time and posts nothing', async () => {
    const { notifyDeps, audit, clock, current } = setup(makeCompletedJob('na-retry', CHANNEL));
    const bot = scriptedBot({ status: 200 });
    audit.failNext = 'notified';
    // Thrown with what the bot did, so the handler still counts the delivery (the retry only appends).
    await expect(notifyExport(notify('na-retry'), notifyDeps(bot))).rejects.toMatchObject({
      name: 'NotifyOutcomeNotAuditedError',
      outcome: { status: 'sent', attempts: 1 },
    });
    const notifiedAt = current().notifiedAt;
    expect(notifiedAt).toBeDefined();
    expect(audit.events).toEqual([]);
    clock.advance(60_000);
    expect(await notifyExport(notify('na-retry'), notifyDeps(bot))).toEqual({ status: 'skipped', attempts: 0 });
    expect(bot.posts).toHaveLength(1);
    expect(audit.events).toEqual([{ type: 'notified', exportId: 'na-retry', channelId: CHANNEL, at: notifiedAt, event: 'export.completed' }]);
    // Later duplicates change nothing.
    expect(await notifyExport(notify('na-retry'), notifyDeps(bot))).toEqual({ status: 'skipped', attempts: 0 });
    expect(audit.events).toHaveLength(1);
    expect(bot.posts).toHaveLength(1);
  });

  it('the append fails after a refusal: thrown, and the retry appends it (status from the job) and posts nothing', async () => {
    const { notifyDeps, audit, clock, current } = setup(makeCompletedJob('na-refused-retry', CHANNEL));
    const bot = scriptedBot({ status: 410 });
    audit.failNext = 'notify-failed';
    // The refusal travels with the error: the refusal alarm's count must not miss it.
    await expect(notifyExport(notify('na-refused-retry'), notifyDeps(bot))).rejects.toMatchObject({
      name: 'NotifyOutcomeNotAuditedError',
      outcome: { status: 'rejected', attempts: 1 },
    });
    const refusedAt = current().notifyRefusedAt;
    expect(refusedAt).toBeDefined();
    clock.advance(60_000);
    expect(await notifyExport(notify('na-refused-retry'), notifyDeps(bot))).toEqual({ status: 'skipped', attempts: 0 });
    expect(bot.posts).toHaveLength(1);
    expect(audit.events).toEqual([
      { type: 'notify-failed', exportId: 'na-refused-retry', channelId: CHANNEL, at: refusedAt, event: 'export.completed', reason: 'HTTP 410' },
    ]);
  });
});

describe('dead letters: the outcome in the audit trail', () => {
  it('a notification dead-lettered after every retry: `notify-failed`, reason dead-lettered', async () => {
    const { stepDeps, audit, current } = setup(makeCompletedJob('na-dlq', CHANNEL));
    expect(await handleDeadLetter(JSON.stringify(notify('na-dlq')), stepDeps, { queue: 'notify-dlq' })).toBe('notify-failure-recorded');
    expect(current().notifyError).toMatch(/could not be told/);
    expect(audit.events).toEqual([
      { type: 'notify-failed', exportId: 'na-dlq', channelId: CHANNEL, at: '2026-03-01T10:00:00.000Z', event: 'export.completed', reason: 'dead-lettered' },
    ]);
  });

  it('an audit error there is thrown, and the redelivered dead letter appends it, with the first time', async () => {
    const { stepDeps, audit, clock, current } = setup(makeCompletedJob('na-dlq-retry', CHANNEL));
    audit.failNext = 'notify-failed';
    await expect(handleDeadLetter(JSON.stringify(notify('na-dlq-retry')), stepDeps, { queue: 'notify-dlq' })).rejects.toThrow(/audit/);
    const first = clock.now().toISOString();
    clock.advance(180_000);
    expect(await handleDeadLetter(JSON.stringify(notify('na-dlq-retry')), stepDeps, { queue: 'notify-dlq' })).toBe('notify-failure-recorded');
    expect(audit.events.map((e) => [e.type, 'reason' in e ? e.reason : undefined, e.at])).toEqual([['notify-failed', 'dead-lettered', first]]);
    expect(current().notifyErrorAt).toBe(first);
    // The view gives the trail's time, also after a later write to the job (a revoke).
    clock.advance(600_000);
    const revoked = { ...current(), status: 'revoked' as const, updatedAt: clock.now().toISOString() };
    expect(notificationView(revoked)).toEqual({ status: 'failed', at: first, event: 'export.completed', reason: 'dead-lettered' });
  });

  it('a notify dead-lettered because its append kept failing after the post: the dead letter appends `notified`', async () => {
    const { stepDeps, audit } = setup({ ...makeCompletedJob('na-dlq-told', CHANNEL), notifiedAt: '2026-03-01T09:59:00.000Z' });
    expect(await handleDeadLetter(JSON.stringify(notify('na-dlq-told')), stepDeps, { queue: 'notify-dlq' })).toBe('already-final');
    expect(audit.events).toEqual([{ type: 'notified', exportId: 'na-dlq-told', channelId: CHANNEL, at: '2026-03-01T09:59:00.000Z', event: 'export.completed' }]);
  });
});

describe('through the local stack: the audit entry and the export view say whether the bot told the manager', () => {
  const STACK_CHANNEL = 'c-notify';
  let stack: LocalStack;
  useLocalStack(
    {
      port: 0,
      seed: { channelId: STACK_CHANNEL, users: 20, cases: 0, seed: 5 },
      env: { ...QUIET_ENV, NOTIFY_BACKOFF_MS: '10', COOLDOWN_MINUTES_CONTACTS: '0' },
    },
    (started) => (stack = started),
  );

  async function exportOnce(managerId: string): Promise<{ exportId: string; token: string }> {
    const token = await managerToken(STACK_CHANNEL, managerId);
    const body = { kind: 'contacts', scope: 'user', userId: 'no-such-user', reason: 'notification audit', password: 'Secret-123' };
    const created = await http(stack, 'POST', '/v1/exports', { token, body });
    expect(created.status).toBe(202);
    return { exportId: created.body.exportId as string, token };
  }

  async function notificationOf(exportId: string, token: string): Promise<{ view: any; entry: any }> {
    const auditor = await managerToken(STACK_CHANNEL, 'm-auditor', ['audit:read']);
    return waitUntil(async () => {
      const view = (await http(stack, 'GET', `/v1/exports/${exportId}`, { token })).body;
      const entry = ((await http(stack, 'GET', '/v1/audit', { token: auditor })).body.items as any[]).find((e) => e.exportId === exportId);
      return view?.notification && entry?.notification ? { view, entry } : undefined;
    }, `notification of ${exportId}`);
  }

  it('accepted: delivered on both, at the same time', async () => {
    const { exportId, token } = await exportOnce('m-told');
    const { view, entry } = await notificationOf(exportId, token);
    expect(view.status).toBe('completed');
    expect(view.notification).toEqual({ status: 'delivered', at: expect.any(String), event: 'export.completed' });
    expect(entry.notification).toEqual(view.notification);
  });

  it('refused with a 400: failed with the status on both', async () => {
    stack.bot.failWith = 400;
    try {
      const { exportId, token } = await exportOnce('m-refused');
      const { view, entry } = await notificationOf(exportId, token);
      expect(view.notification).toEqual({ status: 'failed', at: expect.any(String), event: 'export.completed', reason: 'HTTP 400' });
      expect(entry.notification).toEqual(view.notification);
    } finally {
      stack.bot.failWith = undefined;
    }
  });
});

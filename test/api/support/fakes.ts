import { randomBytes } from 'node:crypto';
import { Logger } from '@aws-lambda-powertools/logger';
import { assembleAuditEntry, downloadView } from '../../../shared/adapters/aws/dynamo-audit-log';
import type { ApiDeps, DownloadLinks, DownloadUrlSigner, ExportDispatcher } from '../../../shared/app/api';
import type { ExportJob, ExportStatus } from '../../../shared/app/export-job';
import type { FollowUpMessage } from '../../../shared/app/messages';
import { createPolicyConfig } from '../../../shared/domain';
import { deriveEncryptionKeys } from '../../../shared/xlsx/crypto';
import {
  auditEventSchema,
  type AuditEvent,
  type AuditLog,
  type AuditPage,
  type AuditQuery,
  type DownloadsPage,
  type DownloadsQuery,
  type StoredAuditEvent,
} from '../../../shared/ports/audit-log';
import type { CooldownAcquireInput, CooldownAcquireResult, CooldownStore } from '../../../shared/ports/cooldown-store';
import { idempotencyRecordSchema, type DownloadTokenRecord, type ExportStore, type IdempotencyRecord, type JobPage, type JobPatch } from '../../../shared/ports/export-store';
import type { KeyWrapper } from '../../../shared/ports/key-wrapper';
import type { MessageQueue, QueueName, SendOptions } from '../../../shared/ports/message-queue';

/** In-memory fakes of the API's ports: unit tests only (integration tests use the emulators). */
export class FakeExportStore implements ExportStore {
  jobs = new Map<string, ExportJob>();
  idem = new Map<string, IdempotencyRecord>();
  tokens = new Map<string, DownloadTokenRecord>();
  failCreate = false;

  async createJob(job: ExportJob): Promise<boolean> {
    if (this.failCreate) throw new Error('simulated table outage');
    if (this.jobs.has(job.exportId)) return false;
    this.jobs.set(job.exportId, structuredClone(job));
    return true;
  }
  async getJob(channelId: string, exportId: string): Promise<ExportJob | null> {
    const job = this.jobs.get(exportId);
    return job && job.channelId === channelId ? structuredClone(job) : null;
  }
  async listJobs(channelId: string, managerId: string, cursor: string | undefined, limit: number): Promise<JobPage> {
    const all = [...this.jobs.values()]
      .filter((j) => j.channelId === channelId && j.managerId === managerId)
      .sort((a, b) => b.exportId.localeCompare(a.exportId));
    const start = cursor ? Number(cursor) : 0;
    const items = all.slice(start, start + limit);
    return { items, ...(start + limit < all.length ? { cursor: String(start + limit) } : {}) };
  }
  async updateProgress(_c: string, exportId: string, patch: JobPatch): Promise<void> {
    const job = this.jobs.get(exportId);
    if (job) Object.assign(job, patch);
  }
  async markChunkDone(): Promise<never> {
    throw new Error('not used by the API');
  }
  async isChunkDone(): Promise<never> {
    throw new Error('not used by the API');
  }
  async startMainPhase(channelId: string, exportId: string, plan: Required<Pick<JobPatch, 'chunksTotal' | 'sheetChunks'>>): Promise<boolean> {
    const job = this.jobs.get(exportId);
    if (!job || job.channelId !== channelId || job.phase !== undefined) return false;
    Object.assign(job, structuredClone(plan), { phase: 'main' });
    return true;
  }
  async advanceToUsersPhase(): Promise<boolean> {
    throw new Error('not used by the API');
  }
  async setStatus(channelId: string, exportId: string, to: ExportStatus, from: readonly ExportStatus[], patch?: JobPatch): Promise<boolean> {
    const job = this.jobs.get(exportId);
    if (!job || job.channelId !== channelId || !from.includes(job.status)) return false;
    Object.assign(job, patch ?? {}, { status: to });
    return true;
  }
  async claimFlag(): Promise<boolean> {
    throw new Error('not used by the API');
  }
  async claimLease(): Promise<string | undefined> {
    throw new Error('not used by the API');
  }
  async releaseClaim(): Promise<void> {
    throw new Error('not used by the API');
  }
  async saveDownloadToken(record: DownloadTokenRecord): Promise<void> {
    this.tokens.set(record.tokenHash, record);
  }
  async getDownloadToken(tokenHash: string): Promise<DownloadTokenRecord | null> {
    return this.tokens.get(tokenHash) ?? null;
  }
  async saveIdempotencyRecord(record: IdempotencyRecord): Promise<{ created: boolean; existing?: IdempotencyRecord }> {
    const key = `${record.channelId}#${record.managerId}#${record.key}`;
    const existing = this.idem.get(key);
    // Read back through the schema, as the DynamoDB adapter does.
    if (existing) return { created: false, existing: idempotencyRecordSchema.parse(existing) };
    this.idem.set(key, structuredClone(record));
    return { created: true };
  }
  async getIdempotencyRecord(channelId: string, managerId: string, key: string): Promise<IdempotencyRecord | null> {
    const record = this.idem.get(`${channelId}#${managerId}#${key}`);
    return record ? idempotencyRecordSchema.parse(record) : null;
  }
  async releaseIdempotencyRecord(channelId: string, managerId: string, key: string, exportId: string): Promise<void> {
    const id = `${channelId}#${managerId}#${key}`;
    if (this.idem.get(id)?.exportId === exportId) this.idem.delete(id);
  }
}

export class FakeAuditLog implements AuditLog {
  events: StoredAuditEvent[] = [];
  /** The next append of this type throws once (a throttled write). */
  failNext: StoredAuditEvent['type'] | undefined;
  async append(event: AuditEvent): Promise<void> {
    const parsed = auditEventSchema.parse(event);
    if (this.failNext === parsed.type) {
      this.failNext = undefined;
      throw new Error('simulated audit table throttling');
    }
    if (parsed.type !== 'downloaded' && this.events.some((e) => e.exportId === parsed.exportId && e.type === parsed.type)) return;
    this.events.push(parsed);
  }
  async query(query: AuditQuery): Promise<AuditPage> {
    const requested = this.events
      .filter((e) => e.type === 'requested' && e.channelId === query.channelId)
      .filter((e) => e.type === 'requested' && (!query.managerId || e.managerId === query.managerId) && (!query.kind || e.kind === query.kind))
      .filter((e) => (!query.from || e.at >= query.from) && (!query.to || e.at <= query.to))
      .sort((a, b) => b.at.localeCompare(a.at));
    // The cursor is an offset here; the real one is a DynamoDB key, which the use case seals.
    const start = query.cursor ? Number(query.cursor) : 0;
    const page = requested.slice(start, start + query.limit);
    return {
      items: page.map((r) => assembleAuditEntry(r, this.events.filter((e) => e.exportId === r.exportId))),
      ...(start + query.limit < requested.length ? { cursor: String(start + query.limit) } : {}),
    };
  }
  async listDownloads(query: DownloadsQuery): Promise<DownloadsPage | null> {
    const requested = this.events.find((e) => e.type === 'requested' && e.exportId === query.exportId);
    if (!requested || requested.channelId !== query.channelId) return null;
    const uses = this.events
      .flatMap((e) => (e.type === 'downloaded' && e.exportId === query.exportId && e.channelId === query.channelId ? [e] : []))
      .sort((a, b) => a.at.localeCompare(b.at));
    // An offset here, as in query(); the use case seals it.
    const start = query.cursor ? Number(query.cursor) : 0;
    return {
      items: uses.slice(start, start + query.limit).map(downloadView),
      ...(start + query.limit < uses.length ? { cursor: String(start + query.limit) } : {}),
    };
  }
}

export class FakeCooldownStore implements CooldownStore {
  items = new Map<string, { holder: string; expiresAt: number; acquiredAt: string }>();
  async acquire(input: CooldownAcquireInput): Promise<CooldownAcquireResult> {
    const current = this.items.get(input.key);
    const now = input.now.getTime();
    if (!current || current.expiresAt < now || current.holder === input.holder) {
      this.items.set(input.key, { holder: input.holder, expiresAt: now + input.durationSeconds * 1000, acquiredAt: input.now.toISOString() });
      return { acquired: true, retryAfterSeconds: 0 };
    }
    return { acquired: false, retryAfterSeconds: Math.max(1, Math.ceil((current.expiresAt - now) / 1000)), holder: current.holder, acquiredAt: current.acquiredAt };
  }
  async release(key: string, holder: string): Promise<void> {
    if (this.items.get(key)?.holder === holder) this.items.delete(key);
  }
}

export const fakeKeyWrapper: KeyWrapper = {
  async wrap(key, context) {
    return Buffer.concat([Buffer.from(`${context.exportId}:`), Buffer.from(key.map((b) => b ^ 0x5a))]).toString('base64');
  },
  async unwrap() {
    throw new Error('not used by the API');
  },
};

export class FakeDispatcher implements ExportDispatcher {
  dispatched: string[] = [];
  failDispatch = false;
  /** Simulates an API process that died before its dispatch: nothing is sent or recorded. */
  crashBeforeDispatch = false;
  constructor(private readonly store?: FakeExportStore) {}
  async plan(input: Parameters<ExportDispatcher['plan']>[0]) {
    const { password: _p, reason: _r, ...rest } = input.request as Record<string, unknown>;
    void _p;
    void _r;
    const userIds = rest.userIds as string[] | undefined;
    delete rest.userIds;
    return {
      jobRequest: { ...(rest as { kind: 'cases' | 'contacts' }), ...(userIds ? { userIdsCount: userIds.length } : {}) },
      timeZone: (input.request.timezone as string | undefined) ?? 'Asia/Seoul',
      chunksTotal: 3,
    };
  }
  /** The first chunks get out and start the job, then the queue fails: a dispatch cut short. */
  failAfterFirstChunks = false;
  async dispatch(job: ExportJob): Promise<void> {
    if (this.crashBeforeDispatch) return;
    if (this.failDispatch) throw new Error('simulated queue outage');
    if (this.failAfterFirstChunks) {
      const stored = this.store?.jobs.get(job.exportId);
      if (stored) Object.assign(stored, { status: 'running', chunksDone: 1 });
      throw new Error('simulated queue outage after the first batch');
    }
    this.dispatched.push(job.exportId);
    // As planChunks does once its messages are sent.
    const stored = this.store?.jobs.get(job.exportId);
    if (stored) stored.chunksEnqueued = true;
  }
  /** Exports whose parts/ a cancel asked to delete, in call order. */
  discarded: string[] = [];
  async discardParts(job: Pick<ExportJob, 'exportId'>): Promise<void> {
    this.discarded.push(job.exportId);
  }
  /** Follow-up messages sent (`revoke:<id>`, `cancel:<id>`), in call order. */
  followUps: string[] = [];
  /** The exports whose follow-up of this type was sent, in call order. */
  followUpsOf(type: FollowUpMessage['type']): string[] {
    return this.followUps.filter((f) => f.startsWith(`${type}:`)).map((f) => f.slice(type.length + 1));
  }
  async scheduleFollowUp(type: FollowUpMessage['type'], job: Pick<ExportJob, 'channelId' | 'exportId'>): Promise<void> {
    this.followUps.push(`${type}:${job.exportId}`);
  }
  /** Exports whose file a revoke asked to delete, in call order. */
  discardedFiles: string[] = [];
  async discardFile(job: Pick<ExportJob, 'channelId' | 'exportId'>): Promise<void> {
    this.discardedFiles.push(job.exportId);
  }
}

/** Tokens are `tok-{exportId}-padding` here; the real scheme is the pipeline's. */
export const fakeLinks: DownloadLinks = {
  async linkFor(job) {
    return `http://api.test/v1/downloads/tok-${job.exportId}-0123456789`;
  },
  async resolve(token) {
    const match = /^tok-([0-9a-f]+)-0123456789$/.exec(token);
    return match?.[1] ? { exportId: match[1], channelId: 'ch-1', expiresAt: '2099-01-01T00:00:00.000Z' } : null;
  },
};

export const fakeUrlSigner: DownloadUrlSigner = {
  async presignGet(key, options) {
    return `http://s3.test/bucket/${key}?X-Amz-Expires=${options.expiresInSeconds}`;
  },
};

export class MutableClock {
  constructor(public current: Date) {}
  now(): Date {
    return new Date(this.current);
  }
  advance(ms: number): void {
    this.current = new Date(this.current.getTime() + ms);
  }
}

export type Fakes = {
  deps: ApiDeps;
  store: FakeExportStore;
  audit: FakeAuditLog;
  cooldowns: FakeCooldownStore;
  dispatcher: FakeDispatcher;
  clock: MutableClock;
};

export function createFakes(now = new Date('2026-03-01T10:00:00.000Z')): Fakes {
  const store = new FakeExportStore();
  const audit = new FakeAuditLog();
  const cooldowns = new FakeCooldownStore();
  const dispatcher = new FakeDispatcher(store);
  const clock = new MutableClock(now);
  const deps: ApiDeps = {
    store,
    audit,
    cooldowns,
    keyWrapper: fakeKeyWrapper,
    dispatcher,
    links: fakeLinks,
    urlSigner: fakeUrlSigner,
    // A small spin count keeps unit tests fast; the e2e suite runs the real 100,000.
    deriveKeys: (password) => deriveEncryptionKeys(password, { spinCount: 10 }),
    clock,
    policy: createPolicyConfig(),
    hmacSecret: Buffer.from('unit-test-hmac-secret-0123456789'),
    random: randomBytes,
    publicBaseUrl: 'http://api.test',
    presignSeconds: 300,
    staleCooldownSeconds: 120,
  };
  return { deps, store, audit, cooldowns, dispatcher, clock };
}

/** A Powertools logger whose lines land in an array (for secret scans of log output). */
export function createCapturingLogger(lines: string[]): Logger {
  const logger = new Logger({ serviceName: 'export-service-test', logLevel: 'DEBUG' });
  // Powertools writes through its own Console instance; route it into the array.
  const sink = (...args: unknown[]) => void lines.push(args.map(String).join(' '));
  (logger as unknown as { console: Record<string, unknown> }).console = { log: sink, info: sink, warn: sink, error: sink, debug: sink, trace: sink };
  return logger;
}

/** Records what would be sent to the queues (no queue is reached). */
export class RecordingQueue implements MessageQueue {
  sent: { queue: QueueName; body: unknown; delaySeconds?: number }[] = [];
  async send(queue: QueueName, body: unknown, options: SendOptions = {}): Promise<void> {
    this.sent.push({ queue, body, ...(options.delaySeconds !== undefined ? { delaySeconds: options.delaySeconds } : {}) });
  }
  async sendMany(queue: QueueName, bodies: readonly unknown[]): Promise<void> {
    for (const body of bodies) await this.send(queue, body);
  }
}

/**
 * The API's in-memory store plus the notify lease, closed (as in DynamoDB) by notifiedAt or
 * notifyRefusedAt; `held` holds the exports whose lease another delivery has.
 */
export function notifyLeaseStore(held = new Set<string>()): FakeExportStore {
  const store = new FakeExportStore();
  return Object.assign(store, {
    async claimLease(_channelId: string, exportId: string): Promise<string | undefined> {
      const job = store.jobs.get(exportId);
      if (!job || job.notifiedAt || job.notifyRefusedAt || held.has(exportId)) return undefined;
      held.add(exportId);
      return `lease-${exportId}`;
    },
    async releaseClaim(_channelId: string, exportId: string): Promise<void> {
      held.delete(exportId);
    },
  });
}

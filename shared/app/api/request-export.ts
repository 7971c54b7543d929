import { createHash } from 'node:crypto';
import {
  checkExportRequest,
  cooldownActiveError,
  cooldownKey,
  cooldownWindowSeconds,
  DomainError,
  parseExportRequest,
  requirePermission,
  MAX_FILTER_BYTES,
  ValidationError,
  type ExportRequest,
} from '../../domain';
import type { Principal } from '../../auth/principal';
import type { AuditRequestedEvent } from '../../ports/audit-log';
import { dispatchUnfinished, newExportId, type ExportJob, type SealedJobEncryption } from '../export-job';
import { sealEncryptionParams } from '../job-encryption';
import { clientFacts, type ClientFacts, type ClientInput } from './client';
import type { ApiDeps } from './deps';
import { IdempotencyKeyReusedError } from './errors';
import { IDEMPOTENCY_PASSWORD_KDF, idempotencyHashV2, matchesIdempotencyRecord } from './idempotency-hash';

export const IDEMPOTENCY_TTL_SECONDS = 24 * 3600;
export const IDEMPOTENCY_KEY = /^[A-Za-z0-9._:-]{8,128}$/;

/**
 * The longest a POST /v1/exports can still be running: the api function's timeout is 28 s
 * (infra FUNCTION_SIZING; a test holds it below this). A cooldown hold older than this whose
 * export does not exist belongs to a request that died.
 */
export const REQUEST_MAX_SECONDS = 30;

export type RequestExportResult = { job: ExportJob; replayed: boolean };

/**
 * POST /v1/exports. Write order (no transactions; each step is safe to repeat):
 *  1. idempotency record (key -> body hash + its salt + a fresh exportId): a retry with the same key adopts
 *     that exportId and resumes from wherever the first attempt stopped;
 *  2. cooldown, held by the exportId (a retry of the same export re-acquires its own hold);
 *  3. key derivation and wrapping, chunk planning (no writes that matter if we stop here);
 *  4. the `requested` audit entry BEFORE the job: an export never exists without its audit
 *     record (a crash here leaves an audit entry with no outcome, which is honest);
 *  5. the job (conditional create: a concurrent retry loses and reads the winner's);
 *  6. the chunk messages (the chunk handler is idempotent, so enqueueing twice is harmless).
 * A thrown error releases the cooldown and fails a job this call created. A crash (timeout)
 * leaves the cooldown held by an exportId without a job; the next request takes such a hold
 * over once it is older than staleCooldownSeconds. A crash between 5 and 6 leaves a queued job
 * whose chunks were never sent: the next status read or list resumes it (read-exports.ts).
 */
export async function requestExport(
  deps: ApiDeps,
  principal: Principal,
  body: unknown,
  idempotencyKey: string | undefined,
  client?: ClientInput,
): Promise<RequestExportResult> {
  requirePermission(principal, 'export:download');
  const request = parseExportRequest(body);
  const now = deps.clock.now();
  checkExportRequest(request, deps.policy, now);

  let exportId = newExportId(now, deps.random);

  if (idempotencyKey !== undefined && !IDEMPOTENCY_KEY.test(idempotencyKey)) {
    throw new ValidationError('Idempotency-Key must be 8-128 characters of letters, digits, ".", "_", ":" or "-"', {
      code: 'INVALID_IDEMPOTENCY_KEY',
      field: 'Idempotency-Key',
      rule: 'format',
    });
  }
  // The stored hash must not let anyone who reads the table (or a backup) test password guesses
  // cheaply, even holding the HMAC key: the password enters it only through a salted PBKDF2 at
  // least as slow as the file's own key derivation (idempotency-hash.ts). One PBKDF2 here, before the
  // save (the record carries its result); a replay costs one more, with the stored record's salt.
  // Nothing async comes before the save to overlap it with: the cooldown and the key derivation
  // belong to whichever exportId the save settles on.
  let passwordSalt: Buffer | undefined;
  let requestHash = '';
  if (idempotencyKey !== undefined) {
    passwordSalt = deps.random(IDEMPOTENCY_PASSWORD_KDF.saltBytes);
    requestHash = await idempotencyHashV2(deps.hmacSecret, request, passwordSalt);
  }
  // At most twice: a key whose export failed to start is taken anew once (below).
  for (let attempt = 0; idempotencyKey !== undefined && passwordSalt !== undefined; attempt++) {
    const saved = await deps.store.saveIdempotencyRecord(
      {
        channelId: principal.channelId,
        managerId: principal.managerId,
        key: idempotencyKey,
        requestHash,
        passwordSalt: passwordSalt.toString('base64'),
        exportId,
        createdAt: now.toISOString(),
      },
      IDEMPOTENCY_TTL_SECONDS,
    );
    if (!saved.created) {
      const existing = saved.existing;
      if (!existing) throw new Error('idempotency record exists but could not be read');
      // The comparison's PBKDF2 runs on the thread pool while the job is read. The retake below
      // does not need it; it is rare enough (a failed release) not to be worth a second path.
      const [job, sameBody] = await Promise.all([
        deps.store.getJob(principal.channelId, existing.exportId),
        matchesIdempotencyRecord(existing, request, deps.hmacSecret, deps.legacyIdempotencySecrets),
      ]);
      if (job && failedToStart(job) && attempt === 0) {
        // The first attempt's export was created but never started (its caller got a 5xx): a
        // retry is what that 5xx asked for, so the key starts a new export (same or corrected
        // body) instead of replaying a dead one with 202. Normally the failed attempt freed the
        // key itself; this covers a failed release. Conditional on the dead exportId: a
        // concurrent retry's record stands.
        await deps.store.releaseIdempotencyRecord(principal.channelId, principal.managerId, idempotencyKey, existing.exportId);
        continue;
      }
      if (!sameBody) throw new IdempotencyKeyReusedError();
      exportId = existing.exportId;
      if (job) {
        // The first attempt may have stopped between creating the job and enqueueing its last
        // chunk; the chunks it did send may already have moved the job to `running`.
        if (dispatchUnfinished(job)) await deps.dispatcher.dispatch(job);
        return { job, replayed: true };
      }
      // No job yet: the first attempt crashed early (or is still running): carry on with its id.
    }
    break;
  }

  const holdKey = cooldownKey(principal.channelId, principal.managerId, request.kind);
  const windowSeconds = cooldownWindowSeconds(request.kind, deps.policy);
  let created = false;
  let audited = false;
  try {
    // Inside the try: a 429 is a refusal like any other 4xx and must free the key it took.
    if (windowSeconds > 0) await acquireCooldown(deps, principal.channelId, holdKey, exportId, windowSeconds, request);
    const keys = await deps.deriveKeys(request.password);
    // The params (password verifier, encrypted package key, their salts) would let a reader of
    // the table test password guesses offline: they are stored sealed under the package key, which
    // only the finalizer can unwrap (job-encryption.ts). Never `params` in the clear.
    let encryption: SealedJobEncryption;
    try {
      const sealedParams = sealEncryptionParams(keys.params, keys.packageKey, exportId);
      encryption = { sealedParams, wrappedKey: await deps.keyWrapper.wrap(keys.packageKey, { exportId }) };
    } finally {
      keys.packageKey.fill(0);
    }
    const { wrappedKey } = encryption;
    const plan = await deps.dispatcher.plan({ exportId, channelId: principal.channelId, request });
    const createdAt = now.toISOString();
    await deps.audit.append(requestedEvent(exportId, principal, request, createdAt, { timeZone: plan.timeZone, segmentFilter: plan.segmentFilter }, clientFacts(client)));
    audited = true;
    const job: ExportJob = {
      exportId,
      channelId: principal.channelId,
      managerId: principal.managerId,
      managerName: principal.name,
      kind: request.kind,
      request: plan.jobRequest,
      reason: request.reason,
      status: 'queued',
      createdAt,
      updatedAt: createdAt,
      chunksTotal: plan.chunksTotal,
      chunksDone: 0,
      rowsWritten: 0,
      encryption,
      timeZone: plan.timeZone,
      ...(plan.extra ?? {}),
    };
    created = await deps.store.createJob(job);
    const stored = created ? job : await deps.store.getJob(principal.channelId, exportId);
    if (!stored) throw new Error('job vanished after a lost create race');
    // A refused create is a concurrent retry's job, or this call's own create committed though
    // its answer was lost (the SDK's retry then fails the condition on it). The wrapped key
    // tells them apart: each call derives its own random package key and wraps it, so only our
    // job carries ours.
    // Taken for another's, our own job was answered as a replay, and a failure after it was
    // neither marked failed nor gave the cooldown back.
    if (!created && stored.encryption.wrappedKey === wrappedKey) created = true;
    if (stored.status === 'queued') await deps.dispatcher.dispatch(stored);
    return { job: stored, replayed: !created };
  } catch (error) {
    await undoFailedRequest(deps, principal, exportId, holdKey, { created, audited, idempotencyKey }, error);
    throw error;
  }
}

async function acquireCooldown(
  deps: ApiDeps,
  channelId: string,
  key: string, exportId: string, windowSeconds: number, request: ExportRequest): Promise<void> {
  const now = deps.clock.now();
  let result = await deps.cooldowns.acquire({ key, holder: exportId, now, durationSeconds: windowSeconds });
  let retryAfterSeconds = result.retryAfterSeconds;
  if (!result.acquired && result.holder && result.acquiredAt && result.holder !== exportId) {
    const ageSeconds = (now.getTime() - Date.parse(result.acquiredAt)) / 1000;
    // Younger than a live request can be, the holder may still be creating its export: the
    // window stands. Older and without an export, it is a crashed request's hold.
    if (ageSeconds > REQUEST_MAX_SECONDS && !(await deps.store.getJob(channelId, result.holder))) {
      if (ageSeconds > deps.staleCooldownSeconds) {
        // Conditional on the stale holder: if two requests race here, one acquire still wins.
        await deps.cooldowns.release(key, result.holder);
        result = await deps.cooldowns.acquire({ key, holder: exportId, now, durationSeconds: windowSeconds });
        retryAfterSeconds = result.retryAfterSeconds;
      } else {
        // Not the window's 30 minutes: this hold is taken over once it is stale.
        retryAfterSeconds = Math.min(retryAfterSeconds, Math.ceil(deps.staleCooldownSeconds - ageSeconds) + 1);
      }
    }
  }
  // Never longer than the window itself: a hold taken by a request whose clock ran a second
  // ahead of ours (another Lambda) would otherwise say 1801 for a 1800-second window.
  if (!result.acquired) throw cooldownActiveError(request.kind, Math.min(retryAfterSeconds, windowSeconds), deps.policy);
}

async function undoFailedRequest(
  deps: ApiDeps,
  principal: Principal,
  exportId: string,
  holdKey: string,
  done: { created: boolean; audited: boolean; idempotencyKey: string | undefined },
  cause: unknown,
): Promise<void> {
  // Best effort: the original error is what the caller must see.
  const at = deps.clock.now().toISOString();
  const failedEvent = { type: 'failed' as const, exportId, channelId: principal.channelId, at, code: 'DISPATCH_FAILED', message: 'the export could not be started' };
  // The hold is given back only once this export is known never to run: a job this call failed,
  // or no job at all and no kept Idempotency-Key whose retry may still create it. A job whose
  // failure could not be written may still run (chunks that got out, a status read's resume):
  // its hold stays, as C8 wants. A hold whose export does not
  // exist is taken over once stale, so a read that fails here locks nobody out for long.
  let ownsHold = false;
  let freeKey = false;
  try {
    if (done.created) {
      // `running` too: chunks from a dispatch's first batches may have started the job while the
      // rest were never sent. The caller gets the error and asks again; the sent chunks see the
      // failed status and stop.
      const failed =
        (await deps.store.setStatus(principal.channelId, exportId, 'failed', ['queued', 'running'], {
          error: { code: 'DISPATCH_FAILED', message: 'the export could not be started; please request it again' },
          failedAt: at,
          // The caller hears of it in this response: nothing for the bot to announce. Without
          // this a chunk that did get out would take the failure for an unannounced one and post it.
          notifyEnqueued: true,
        })) ||
        // This very write, committed though its answer was lost: still ours to audit (nothing
        // else will: `notifyEnqueued` it set stops every follow-up), and its key still to free.
        isOwnFailure(await deps.store.getJob(principal.channelId, exportId), at);
      if (failed) {
        ownsHold = true;
        // This export will never run: its key must not replay it. The retry the 5xx asks for
        // (same or corrected body) starts a new export.
        freeKey = done.idempotencyKey !== undefined;
        await deps.audit.append(failedEvent);
      }
    } else if (!(await deps.store.getJob(principal.channelId, exportId))) {
      // (Had a concurrent retry with the same Idempotency-Key created this export, it would be
      // that call's, and so would the cooldown it holds under the same exportId.)
      // Refused (4xx, a 429 too) before any export existed: a retry of the same body is refused
      // the same way, so the key holds nothing worth keeping, and a corrected body may use it
      // (as a request the schema refused never took it). A 5xx keeps it for the retry to resume.
      freeKey = done.idempotencyKey !== undefined && !done.audited && cause instanceof DomainError;
      // A kept key keeps the hold too. The hold is under this exportId, which the key's retry
      // shares: one may be running right now (the client gave up on this slow attempt), re-took
      // the hold as its own, and may create the export a moment after the read above; released
      // here, that export would run with no cooldown (C8). A retry takes the hold back as the same
      // holder; a client that never retries leaves a hold with no export, taken over once stale.
      ownsHold = done.idempotencyKey === undefined || freeKey;
      if (done.audited && done.idempotencyKey === undefined) {
        // The trail already says "requested" and no export will ever follow: say so. Not with an
        // Idempotency-Key: its retry carries on under this exportId and may still create the
        // export, and the trail's once-per-export `failed` would then stand beside it for good.
        await deps.audit.append({ ...failedEvent, message: 'the export could not be created' });
      }
    }
  } catch {
    // Best effort (above); what was decided before the error is still done below.
  }
  // Hold first, then key: a retry that takes the freed key must not find this dead export's
  // hold, young enough to count as a live request's, and get 429 for the whole window.
  // Conditional on this exportId: another request's hold or record is never touched.
  if (ownsHold) await deps.cooldowns.release(holdKey, exportId).catch(() => undefined);
  if (freeKey && done.idempotencyKey !== undefined) {
    await deps.store.releaseIdempotencyRecord(principal.channelId, principal.managerId, done.idempotencyKey, exportId).catch(() => undefined);
  }
}

function isOwnFailure(job: ExportJob | null, failedAt: string): boolean {
  return job !== null && failedToStart(job) && job.failedAt === failedAt;
}

/** A job this API created and then failed because its chunks could not be sent (undoFailedRequest). */
function failedToStart(job: ExportJob): boolean {
  return job.status === 'failed' && job.error?.code === 'DISPATCH_FAILED';
}

/**
 * The audit view of a request: everything that says what was exported and why, never the
 * password. `pinned` is what the request was resolved against: the zone every date cell and
 * date condition was read in (the channel's when the request named none), and a segment's
 * conditions as they were at this use (C4: the segment may be edited or deleted afterwards).
 */
export function requestedEvent(
  exportId: string,
  principal: Principal,
  request: ExportRequest,
  at: string,
  pinned: { timeZone: string; segmentFilter?: unknown },
  client: ClientFacts = {},
): AuditRequestedEvent {
  const { password: _password, reason, kind, ...rest } = request;
  void _password;
  const filters: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(rest)) {
    if (key === 'from' || key === 'to' || key === 'timezone' || key === 'scope') continue;
    if (key === 'userIds' && Array.isArray(value)) {
      filters.userIdsCount = value.length;
      // A small selection is useful evidence for an auditor; a large one would not fit an item.
      if (value.length <= 100) filters.userIds = value;
      continue;
    }
    filters[key] = value;
  }
  if (pinned.segmentFilter !== undefined) {
    const json = JSON.stringify(pinned.segmentFilter);
    // The digest always (it identifies the conditions, however long); the conditions themselves
    // when they fit as a request's filter may (a segment with a huge `in` list would not fit the
    // audit item).
    filters.segmentConditionsSha256 = createHash('sha256').update(json).digest('hex');
    if (Buffer.byteLength(json, 'utf8') <= MAX_FILTER_BYTES) filters.segmentConditions = pinned.segmentFilter;
  }
  const range =
    request.kind === 'cases' ? { from: request.from, to: request.to, timezone: pinned.timeZone } : { timezone: pinned.timeZone };
  return {
    type: 'requested',
    exportId,
    channelId: principal.channelId,
    at,
    managerId: principal.managerId,
    managerName: principal.name,
    kind,
    scope: request.kind === 'cases' ? 'range' : request.scope,
    filters,
    range,
    reason,
    ...client,
  };
}

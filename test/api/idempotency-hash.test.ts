import { createHmac, pbkdf2Sync } from 'node:crypto';
import { beforeEach, describe, expect, it } from 'vitest';
import { canonicalJson } from '../../shared/app/api/hmac';
import {
  IDEMPOTENCY_PASSWORD_KDF,
  idempotencyHashV1,
  idempotencyHashV2,
  matchesIdempotencyRecord,
  slowPasswordDigest,
} from '../../shared/app/api/idempotency-hash';
import { requestExport } from '../../shared/app/api/request-export';
import { parseExportRequest, type ExportRequest } from '../../shared/domain';
import type { Principal } from '../../shared/auth/principal';
import { apiCallerFor, loadEvent, type ApiCaller } from './support/api-harness';
import { createFakes, type Fakes } from './support/fakes';

const PASSWORD = 'Zq7Secr3tPw';
const KEY = 'c0ffee00-0000-4000-8000-000000000001'; // the sample event's Idempotency-Key
const secret = 'idempotency-test-secret-idempotency-test';
const principal = { channelId: 'ch-1', managerId: 'm-1', name: 'Kim', permissions: ['export:download'] } as Principal;

/** The sample contacts body, with another password when asked. */
function body(password = PASSWORD): Record<string, unknown> {
  const event = loadEvent('api-create-export-contacts.json', { TOKEN: 'unused', PASSWORD: password });
  return JSON.parse(event.body as string) as Record<string, unknown>;
}

/** The formula written independently of the code under test: HMAC over the body, then the PBKDF2-SHA512 digest. */
function expectedV2(hmacKey: Buffer, request: ExportRequest, salt: Buffer): string {
  const { password, ...rest } = request;
  const digest = pbkdf2Sync(Buffer.from(password, 'utf8'), salt, 100_000, 64, 'sha512');
  return createHmac('sha256', hmacKey).update('idempotency-body-v2').update('\0').update(`${canonicalJson(rest)}\0${digest.toString('hex')}`).digest('hex');
}

/** The previous version's formula: one HMAC over the whole body, password included. */
function v1(hmacKey: Buffer, request: ExportRequest): string {
  return createHmac('sha256', hmacKey).update('idempotency-body-v1').update('\0').update(canonicalJson(request)).digest('hex');
}

/** Counting bytes: export ids and salts differ from call to call and are the same in every run. */
function countingRandom(): (bytes: number) => Buffer {
  let next = 0;
  return (bytes) => Buffer.from(Array.from({ length: bytes }, () => next++ & 0xff));
}

let fakes: Fakes;
let api: ApiCaller;

beforeEach(() => {
  fakes = createFakes();
  fakes.deps.random = countingRandom();
  api = apiCallerFor(fakes, secret);
});

async function post(password = PASSWORD) {
  return api.call(loadEvent('api-create-export-contacts.json', { TOKEN: await api.token(), PASSWORD: password }));
}

function onlyRecord() {
  const records = [...fakes.store.idem.values()];
  expect(records).toHaveLength(1);
  return records[0]!;
}

describe('Idempotency-Key record: the password only through a slow, salted digest', () => {
  it('PBKDF2-HMAC-SHA512, 100,000 iterations (what the file key derivation spins), 16-byte salt, 64-byte digest', () => {
    expect(IDEMPOTENCY_PASSWORD_KDF).toEqual({ digest: 'sha512', iterations: 100_000, keyLength: 64, saltBytes: 16 });
  });

  it('stores a fresh salt and a hash no single HMAC of the password gives: the v2 formula, not the v1 one', async () => {
    const res = await post();
    expect(res.status).toBe(202);
    const record = onlyRecord();
    // Nothing else is stored: no field that a guess could be tested against with one HMAC.
    expect(Object.keys(record).sort()).toEqual(['channelId', 'createdAt', 'exportId', 'key', 'managerId', 'passwordSalt', 'requestHash']);
    const salt = Buffer.from(record.passwordSalt!, 'base64');
    expect(salt).toHaveLength(16);
    const request = parseExportRequest(body());
    expect(record.requestHash).not.toBe(v1(fakes.deps.hmacSecret, request));
    // The exact formula, with the PBKDF2 parameters: 99,999 or 100,001 iterations would differ.
    expect(record.requestHash).toBe(expectedV2(fakes.deps.hmacSecret, request, salt));
    expect(record.requestHash).not.toBe(
      createHmac('sha256', fakes.deps.hmacSecret)
        .update('idempotency-body-v2')
        .update('\0')
        .update(`${canonicalJson({ ...request, password: undefined })}\0${pbkdf2Sync(PASSWORD, salt, 99_999, 64, 'sha512').toString('hex')}`)
        .digest('hex'),
    );
    expect(JSON.stringify(record)).not.toContain(PASSWORD);
  });

  it('the salt comes from the deps\' random source (deterministic in tests) and differs per record', async () => {
    const a = await post();
    const other = loadEvent('api-create-export-contacts.json', { TOKEN: await api.token({ managerId: 'm-2' }), PASSWORD });
    const b = await api.call(other);
    expect([a.status, b.status]).toEqual([202, 202]);
    const salts = [...fakes.store.idem.values()].map((r) => r.passwordSalt);
    // Export id (8 bytes) then salt (16): bytes 8..23 of the counter for the first request.
    expect(salts[0]).toBe(Buffer.from(Array.from({ length: 16 }, (_v, i) => 8 + i)).toString('base64'));
    expect(new Set(salts).size).toBe(2);
    // Same body, same password, different salt: different stored hashes (no shared table of guesses).
    expect(new Set([...fakes.store.idem.values()].map((r) => r.requestHash)).size).toBe(2);
  });

  it('a replay with the same body is a 202 with the same export; its record is left as it was', async () => {
    const first = await post();
    const before = structuredClone(onlyRecord());
    const again = await post();
    expect(again.status).toBe(202);
    expect(again.body.exportId).toBe(first.body.exportId);
    expect(fakes.store.jobs.size).toBe(1);
    expect(onlyRecord()).toEqual(before);
    const direct = await requestExport(fakes.deps, principal, body(), KEY);
    expect(direct).toMatchObject({ replayed: true, job: { exportId: first.body.exportId } });
  });

  it('the same key with another password (and nothing else changed) is 422 IDEMPOTENCY_KEY_REUSED', async () => {
    expect((await post()).status).toBe(202);
    const res = await post('Another1Password');
    expect(res.status).toBe(422);
    expect(res.body.error).toMatchObject({ code: 'IDEMPOTENCY_KEY_REUSED', field: 'Idempotency-Key' });
    expect(fakes.store.jobs.size).toBe(1);
  });

  it('the same key with another reason (same password) is 422 too: the rest of the body is covered', async () => {
    expect((await requestExport(fakes.deps, principal, body(), KEY)).replayed).toBe(false);
    await expect(requestExport(fakes.deps, principal, { ...body(), reason: 'something else' }, KEY)).rejects.toMatchObject({
      code: 'IDEMPOTENCY_KEY_REUSED',
    });
  });

  it('a record from the previous version (no salt, v1 hash) still replays with the same body and refuses another', async () => {
    const request = parseExportRequest(body());
    const first = await requestExport(fakes.deps, principal, body(), undefined); // a job to replay, no key
    const exportId = first.job.exportId;
    fakes.store.idem.set(`ch-1#m-1#${KEY}`, {
      channelId: 'ch-1', managerId: 'm-1', key: KEY, exportId, createdAt: '2026-03-01T09:59:00.000Z',
      requestHash: v1(fakes.deps.hmacSecret, request),
    });
    const replay = await post();
    expect(replay.status).toBe(202);
    expect(replay.body.exportId).toBe(exportId);
    expect(fakes.store.jobs.size).toBe(1);
    const other = await post('Another1Password');
    expect(other.status).toBe(422);
    expect(other.body.error).toMatchObject({ code: 'IDEMPOTENCY_KEY_REUSED' });
  });

  it('a v1 record hashed with the key the api used before its own secret (the legacy one) still replays; unknown keys do not', async () => {
    const request = parseExportRequest(body());
    const legacy = Buffer.from('legacy-link-derived-key-0123456789abcdef');
    const record = { requestHash: v1(legacy, request) };
    expect(await matchesIdempotencyRecord(record, request, fakes.deps.hmacSecret)).toBe(false);
    expect(await matchesIdempotencyRecord(record, request, fakes.deps.hmacSecret, [legacy])).toBe(true);
    expect(await matchesIdempotencyRecord(record, parseExportRequest(body('Another1Password')), fakes.deps.hmacSecret, [legacy])).toBe(false);
    // Through the use case: the runtime passes the link-derived key as legacyIdempotencySecrets.
    const first = await requestExport(fakes.deps, principal, body(), undefined);
    fakes.store.idem.set(`ch-1#m-1#${KEY}`, {
      channelId: 'ch-1', managerId: 'm-1', key: KEY, exportId: first.job.exportId, createdAt: '2026-03-01T09:59:00.000Z', requestHash: record.requestHash,
    });
    await expect(requestExport(fakes.deps, principal, body(), KEY)).rejects.toMatchObject({ code: 'IDEMPOTENCY_KEY_REUSED' });
    fakes.deps.legacyIdempotencySecrets = [legacy];
    expect(await requestExport(fakes.deps, principal, body(), KEY)).toMatchObject({ replayed: true, job: { exportId: first.job.exportId } });
  });

  it('a v2 record is never matched by the v1 formula, nor a record whose salt is not 16 bytes', async () => {
    const request = parseExportRequest(body());
    const salt = Buffer.alloc(16, 3);
    const hash = await idempotencyHashV2(fakes.deps.hmacSecret, request, salt);
    expect(await matchesIdempotencyRecord({ requestHash: hash, passwordSalt: salt.toString('base64') }, request, fakes.deps.hmacSecret)).toBe(true);
    expect(await matchesIdempotencyRecord({ requestHash: hash }, request, fakes.deps.hmacSecret)).toBe(false);
    expect(await matchesIdempotencyRecord({ requestHash: hash, passwordSalt: salt.subarray(0, 8).toString('base64') }, request, fakes.deps.hmacSecret)).toBe(false);
    expect(idempotencyHashV1(fakes.deps.hmacSecret, request)).toBe(v1(fakes.deps.hmacSecret, request));
  });

  it('a record read back with a mangled salt is refused by the schema, not compared as v1', async () => {
    expect((await post()).status).toBe(202);
    onlyRecord().passwordSalt = 'not base64!';
    const res = await post();
    expect(res.status).toBe(500);
  });

  it('the digest runs off the event loop: timers keep firing while it is computed', async () => {
    let ticks = 0;
    const timer = setInterval(() => void ticks++, 1);
    try {
      const digest = await slowPasswordDigest(PASSWORD, Buffer.alloc(16, 1));
      expect(digest).toEqual(pbkdf2Sync(PASSWORD, Buffer.alloc(16, 1), 100_000, 64, 'sha512'));
    } finally {
      clearInterval(timer);
    }
    expect(ticks).toBeGreaterThan(0);
  });

  it('a retry after a DISPATCH_FAILED 500 still takes the key anew (same body: a new export, not a replay of the dead one)', async () => {
    fakes.dispatcher.failDispatch = true;
    expect((await post()).status).toBe(500);
    fakes.dispatcher.failDispatch = false;
    // The failed attempt freed the key; simulate a failed release by putting its record back.
    const dead = [...fakes.store.jobs.values()][0]!;
    const request = parseExportRequest(body());
    const salt = Buffer.alloc(16, 9);
    fakes.store.idem.set(`ch-1#m-1#${KEY}`, {
      channelId: 'ch-1', managerId: 'm-1', key: KEY, exportId: dead.exportId, createdAt: '2026-03-01T10:00:00.000Z',
      requestHash: await idempotencyHashV2(fakes.deps.hmacSecret, request, salt), passwordSalt: salt.toString('base64'),
    });
    const retry = await post();
    expect(retry.status).toBe(202);
    expect(retry.body.exportId).not.toBe(dead.exportId);
    expect(onlyRecord().exportId).toBe(retry.body.exportId);
    const replay = await post();
    expect(replay.body.exportId).toBe(retry.body.exportId);
  });
});

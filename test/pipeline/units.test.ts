import { createServer, request as httpRequest } from 'node:http';
import { connect, type AddressInfo } from 'node:net';
import { createHash, createHmac } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import type { APIGatewayProxyEvent } from 'aws-lambda';
import { createDownloadToken, hashDownloadToken, InvalidDownloadTokenError, verifyDownloadToken } from '../../shared/app/download-link';
import { LocalKeyWrapper } from '../../shared/adapters/local/local-key-wrapper';
import { buildChunkMessages, sortUserIdsForExport } from '../../shared/app/plan-chunks';
import { chunkMessageSchema } from '../../shared/app/messages';
import { userShardOf, USER_SHARDS } from '../../shared/app/source-keys';
import { notifyDeliveryWorstMs, parseConfig } from '../../shared/config';
import { readBody, toApiGatewayEvent, writeApiGatewayResult } from '../../infra/local/http-to-apigw';
import { buildBotEvent, notifyExport, signDelivery } from '../../shared/app/notify-export';
import { describeProgress, type ExportJob } from '../../shared/app/export-job';
import type { ExportStore } from '../../shared/ports/export-store';
import { silentLog } from '../../shared/ports/pipeline-log';
import { makeJob } from './job-fixture';
import { acceptedPartFingerprints, partFingerprint } from '../../shared/app/workspace-context';
import type { ColumnSpec } from '../../shared/xlsx';

const SECRET = 'link-secret-for-tests';

const job = makeJob;

describe('download link tokens', () => {
  const expiresAt = new Date('2025-07-08T00:00:00.000Z');

  it('verifies its own tokens and reports expiry against the given clock', () => {
    const token = createDownloadToken({ exportId: 'e1', expiresAt }, SECRET);
    expect(verifyDownloadToken(token, SECRET, new Date('2025-07-07T23:59:59.999Z'))).toEqual({ exportId: 'e1', expiresAt, expired: false });
    expect(verifyDownloadToken(token, SECRET, expiresAt).expired).toBe(true);
    // Deterministic: the notifier recomputes exactly the finalizer's token.
    expect(createDownloadToken({ exportId: 'e1', expiresAt }, SECRET)).toBe(token);
    expect(hashDownloadToken(token)).toMatch(/^[0-9a-f]{64}$/);
  });

  it('rejects another secret, a changed payload, a changed signature and junk', () => {
    const token = createDownloadToken({ exportId: 'e1', expiresAt }, SECRET);
    const [payload, signature] = token.split('.') as [string, string];
    const forged = `${Buffer.from('e2|' + expiresAt.getTime()).toString('base64url')}.${signature}`;
    const extended = `${Buffer.from('e1|' + (expiresAt.getTime() + 86_400_000)).toString('base64url')}.${signature}`;
    for (const bad of [forged, extended, `${payload}.${signature.slice(0, -2)}AA`, 'abc', '', `${token}.x`]) {
      expect(() => verifyDownloadToken(bad, SECRET, new Date(0))).toThrow(InvalidDownloadTokenError);
    }
    expect(() => verifyDownloadToken(token, 'other-secret', new Date(0))).toThrow(InvalidDownloadTokenError);
    expect(() => createDownloadToken({ exportId: 'a|b', expiresAt }, SECRET)).toThrow(/exportId/);
  });
});

describe('local key wrapper', () => {
  const wrapper = new LocalKeyWrapper(Buffer.alloc(32, 7).toString('base64'));

  it('round-trips a key and binds it to its export', async () => {
    const key = Buffer.alloc(32, 9);
    const wrapped = await wrapper.wrap(key, { exportId: 'e1' });
    expect(wrapped).not.toContain(key.toString('base64'));
    expect((await wrapper.unwrap(wrapped, { exportId: 'e1' })).equals(key)).toBe(true);
    await expect(wrapper.unwrap(wrapped, { exportId: 'e2' })).rejects.toThrow();
  });

  it('refuses a key that is not 32 bytes', () => {
    expect(() => new LocalKeyWrapper(Buffer.alloc(16).toString('base64'))).toThrow(/32 bytes/);
  });
});

describe('chunk planning', () => {
  it('cases: one chunk per UTC day touched by the range in the request time zone, bounded to the exact instants', () => {
    const messages = buildChunkMessages(job({ kind: 'cases', request: { kind: 'cases', from: '2025-07-01', to: '2025-07-02', timezone: 'Asia/Seoul' } }), {}, 100);
    // 2025-07-01 00:00 KST = 06-30 15:00Z; the range ends 2025-07-03 00:00 KST = 07-02 15:00Z.
    expect(messages.map((m) => m.source)).toEqual([
      { type: 'caseDay', day: '2025-06-30', fromIso: '2025-06-30T15:00:00.000Z', toIso: '2025-07-01T00:00:00.000Z' },
      { type: 'caseDay', day: '2025-07-01', fromIso: '2025-07-01T00:00:00.000Z', toIso: '2025-07-02T00:00:00.000Z' },
      { type: 'caseDay', day: '2025-07-02', fromIso: '2025-07-02T00:00:00.000Z', toIso: '2025-07-02T15:00:00.000Z' },
    ]);
    expect(messages.map((m) => m.chunkId)).toEqual(['cases-0', 'cases-1', 'cases-2']);
  });

  it('contacts: one chunk per key-range slice, one for a single user, id batches for a selection', () => {
    expect(buildChunkMessages(job(), {}, 100)).toHaveLength(USER_SHARDS);
    expect(buildChunkMessages(job({ request: { kind: 'contacts', scope: 'user', userId: 'u1' } }), {}, 100).map((m) => m.source)).toEqual([
      { type: 'userIds', ids: ['u1'] },
    ]);
    const ids = Array.from({ length: 250 }, (_u, i) => `u${i}`);
    const selection = buildChunkMessages(job({ request: { kind: 'contacts', scope: 'selection', userIdsCount: 250 } }), { userIds: [...ids, 'u3'] }, 100);
    expect(selection.map((m) => m.source.type)).toEqual(['userIdsObject', 'userIdsObject', 'userIdsObject']);
    // Without the ids (a dispatch resumed from the job alone): the stored batches, counted by the job.
    const resumed = buildChunkMessages(job({ request: { kind: 'contacts', scope: 'selection', userIdsCount: 250 }, chunksTotal: 3 }), {}, 100);
    expect(resumed).toEqual(selection);
    expect(() => buildChunkMessages({ ...job({ request: { kind: 'contacts', scope: 'selection', userIdsCount: 250 } }), chunksTotal: undefined } as never, {}, 100)).toThrow(
      /needs its ids or the stored batch count/,
    );
  });

  it('messages carry ids and ranges only and fit an SQS message easily', () => {
    const messages = buildChunkMessages(job({ kind: 'cases', request: { kind: 'cases', from: '2025-06-26', to: '2025-12-26' } }), {}, 100);
    // 184 calendar days in Seoul touch 185 UTC day buckets.
    expect(messages).toHaveLength(185);
    for (const m of messages) {
      expect(chunkMessageSchema.parse(m)).toEqual(m);
      expect(JSON.stringify(m).length).toBeLessThan(1024);
    }
  });

  it('orders selected ids by (shard, id), once each', () => {
    const sorted = sortUserIdsForExport(['b', 'a', 'c', 'a', 'zz', 'k1', 'k2']);
    expect(new Set(sorted).size).toBe(sorted.length);
    for (let i = 1; i < sorted.length; i++) {
      const [prev, cur] = [sorted[i - 1] ?? '', sorted[i] ?? ''];
      expect(userShardOf(prev) < userShardOf(cur) || (userShardOf(prev) === userShardOf(cur) && prev < cur)).toBe(true);
    }
  });
});

describe('configuration', () => {
  const base = {
    EXPORTS_TABLE: 'e',
    CASES_TABLE: 'c',
    USERS_TABLE: 'u',
    WORKSPACE_TABLE: 'w',
    EXPORT_BUCKET: 'b',
    CHUNK_QUEUE_URL: 'q1',
    FINALIZE_QUEUE_URL: 'q2',
    NOTIFY_QUEUE_URL: 'q3',
    KMS_KEY_ID: 'alias/k',
    PUBLIC_BASE_URL: 'https://api.example.com',
    LINK_SIGNING_SECRET_ARN: 'arn:secret',
  };

  it('names the missing variable and the broken rule', () => {
    expect(parseConfig(base).MAX_ROWS).toBe(1_000_000);
    const { EXPORT_BUCKET: _omit, ...missing } = base;
    expect(() => parseConfig(missing)).toThrow(/EXPORT_BUCKET/);
    expect(() => parseConfig({ ...base, KMS_KEY_ID: 'local' })).toThrow(/LOCAL_WRAP_KEY/);
    expect(() => parseConfig({ ...base, LINK_SIGNING_SECRET_ARN: undefined })).toThrow(/LINK_SIGNING_SECRET/);
    expect(() => parseConfig({ ...base, MAX_ROWS: 'lots' })).toThrow(/MAX_ROWS/);
  });

  it('bounds MAX_ROWS to the rows a sheet holds (1-1,048,575) and LINK_TTL_DAYS to 1-30, naming the variable', () => {
    expect(parseConfig({ ...base, MAX_ROWS: '1' }).MAX_ROWS).toBe(1);
    expect(parseConfig({ ...base, MAX_ROWS: '1048575' }).MAX_ROWS).toBe(1_048_575);
    // Past a sheet's 1,048,575 data rows the export could only fail at the finalizer's workbook.
    for (const bad of ['1048576', '5000000', '0', '', '1e9']) {
      expect(() => parseConfig({ ...base, MAX_ROWS: bad }), bad).toThrow(/^invalid environment: MAX_ROWS: /);
    }
    expect(() => parseConfig({ ...base, MAX_ROWS: '1048576' })).toThrow(/MAX_ROWS: .*1048575/);
    expect(parseConfig(base).LINK_TTL_DAYS).toBe(7);
    expect(parseConfig({ ...base, LINK_TTL_DAYS: '1' }).LINK_TTL_DAYS).toBe(1);
    expect(parseConfig({ ...base, LINK_TTL_DAYS: '30' }).LINK_TTL_DAYS).toBe(30);
    // As the CDK's linkTtlDays: a link of months, and a file kept as long, is refused at start.
    for (const bad of ['31', '365', '0', '', '7.5']) {
      expect(() => parseConfig({ ...base, LINK_TTL_DAYS: bad }), bad).toThrow(/^invalid environment: LINK_TTL_DAYS: /);
    }
    expect(() => parseConfig({ ...base, LINK_TTL_DAYS: '31' })).toThrow(/LINK_TTL_DAYS: .*30/);
  });

  it("refuses notify settings whose attempts could outlast a delivery's budget (each in range, together not)", () => {
    // 3 attempts and 250 ms (the defaults): at worst 30.75 s.
    expect(notifyDeliveryWorstMs(3, 250)).toBe(30_750);
    expect(parseConfig(base).NOTIFY_ATTEMPTS).toBe(3);
    expect(parseConfig({ ...base, NOTIFY_ATTEMPTS: '4', NOTIFY_BACKOFF_MS: '500' }).NOTIFY_ATTEMPTS).toBe(4);
    // 10 attempts of up to 10 s each: 100 s before any pause, past the notifier's 60 s timeout.
    expect(() => parseConfig({ ...base, NOTIFY_ATTEMPTS: '10' })).toThrow(/NOTIFY_ATTEMPTS and NOTIFY_BACKOFF_MS: together they may take 228 s/);
    // 4 attempts with 10 s pauses: 40 s of POSTs and 70 s of pauses.
    expect(() => parseConfig({ ...base, NOTIFY_ATTEMPTS: '4', NOTIFY_BACKOFF_MS: '10000' })).toThrow(/over the 45 s/);
  });
});

describe('HTTP to API Gateway proxy event', () => {
  it('converts method, path, headers, query and bodies, and writes the result back', async () => {
    let seen: APIGatewayProxyEvent | undefined;
    const server = createServer((req, res) => {
      void readBody(req).then((body) => {
        seen = toApiGatewayEvent(req, body);
        writeApiGatewayResult(res, {
          statusCode: 302,
          headers: { Location: 'https://s3.example/x', 'X-One': 1 },
          multiValueHeaders: { 'Set-Cookie': ['a=1', 'b=2'] },
          body: '',
        });
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
    const { port } = server.address() as AddressInfo;
    const response = await new Promise<{ status: number; headers: Record<string, unknown> }>((resolve, reject) => {
      const req = httpRequest(
        { host: '127.0.0.1', port, method: 'POST', path: '/v1/exports?a=1&a=2&b=x%20y', headers: { 'Content-Type': 'application/json', 'Idempotency-Key': 'k1', 'User-Agent': 'ua/1' } },
        (res) => {
          res.resume();
          res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers }));
        },
      );
      req.on('error', reject);
      req.end('{"kind":"contacts"}');
    });
    server.close();
    expect(response.status).toBe(302);
    expect(response.headers.location).toBe('https://s3.example/x');
    expect(response.headers['set-cookie']).toEqual(['a=1', 'b=2']);
    expect(seen?.httpMethod).toBe('POST');
    expect(seen?.path).toBe('/v1/exports');
    expect(seen?.resource).toBe('/{proxy+}');
    expect(seen?.pathParameters).toEqual({ proxy: 'v1/exports' });
    expect(seen?.headers['Idempotency-Key']).toBe('k1');
    expect(seen?.queryStringParameters).toEqual({ a: '2', b: 'x y' });
    expect(seen?.multiValueQueryStringParameters).toEqual({ a: ['1', '2'], b: ['x y'] });
    expect(seen?.body).toBe('{"kind":"contacts"}');
    expect(seen?.isBase64Encoded).toBe(false);
    expect(seen?.requestContext.identity.sourceIp).toBe('127.0.0.1');
    expect(seen?.requestContext.identity.userAgent).toBe('ua/1');
  });

  it("keeps names like Object.prototype's members as plain keys, and reads UTF-8 header bytes as UTF-8", async () => {
    let seen: APIGatewayProxyEvent | undefined;
    const server = createServer((req, res) => {
      void readBody(req).then((body) => {
        seen = toApiGatewayEvent(req, body);
        writeApiGatewayResult(res, { statusCode: 204, body: '' });
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
    const { port } = server.address() as AddressInfo;
    // Raw bytes: a JS headers object cannot carry `__proto__`, and the User-Agent's U+202E and
    // U+D55C go on the wire as their UTF-8 bytes, as a client sends them.
    const raw = Buffer.concat([
      Buffer.from('GET /v1/exports?constructor=1&__proto__=2&toString=3&toString=4 HTTP/1.1\r\nHost: x\r\nconstructor: c\r\n__proto__: p\r\nUser-Agent: ', 'latin1'),
      Buffer.from('evil\u202eAU \ud55c', 'utf8'),
      Buffer.from('\r\nX-Latin: caf\xe9\r\nConnection: close\r\n\r\n', 'latin1'),
    ]);
    const answer = await new Promise<string>((resolve, reject) => {
      const socket = connect(port, '127.0.0.1', () => socket.end(raw));
      let text = '';
      socket.on('data', (d: Buffer) => (text += d.toString('latin1')));
      socket.on('end', () => resolve(text));
      socket.on('error', reject);
    });
    server.close();
    expect(answer).toMatch(/^HTTP\/1\.1 204/);
    expect(seen?.queryStringParameters).toEqual({ constructor: '1', ['__proto__']: '2', toString: '4' });
    expect(Object.keys(seen?.multiValueQueryStringParameters ?? {})).toEqual(['constructor', '__proto__', 'toString']);
    expect(seen?.multiValueQueryStringParameters?.toString).toEqual(['3', '4']);
    expect(seen?.headers.constructor).toBe('c');
    expect(Object.getOwnPropertyDescriptor(seen?.headers, '__proto__')?.value).toBe('p');
    expect(seen?.multiValueHeaders.constructor).toEqual(['c']);
    expect(seen?.requestContext.identity.userAgent).toBe('evil\u202eAU \ud55c');
    expect(seen?.headers['User-Agent']).toBe('evil\u202eAU \ud55c');
    // Not UTF-8: kept as read (one Latin-1 letter per byte).
    expect(seen?.headers['X-Latin']).toBe('caf\xe9');
  });
});

describe('part fingerprints (what a finalizer accepts)', () => {
  const columns: ColumnSpec[] = [
    { key: 'id', header: 'id', type: 'string', width: 26 },
    { key: 'ok', header: 'ok', type: 'boolean' },
    { key: 'at', header: 'at', type: 'date' },
  ];
  const fp = partFingerprint(columns);

  it('follow what the cells depend on (keys, types, order), not headers or widths, which only the finalizer writes', () => {
    expect(partFingerprint(columns.map((c) => ({ ...c, header: `${c.header} (new)`, width: 72 })))).toBe(fp);
    expect(partFingerprint([columns[1]!, columns[0]!, columns[2]!])).not.toBe(fp);
    expect(partFingerprint(columns.map((c) => (c.key === 'ok' ? { ...c, type: 'string' as const } : c)))).not.toBe(fp);
    expect(partFingerprint([...columns, { key: 'profile.added', header: 'profile.added', type: 'string' }])).not.toBe(fp);
  });

  it('accept parts fingerprinted before cells named their styles (the whole specs) only when those specs are the same', () => {
    const legacy = (specs: ColumnSpec[]) => createHash('sha256').update(JSON.stringify(specs)).digest('hex').slice(0, 16);
    expect([...acceptedPartFingerprints(columns)]).toEqual([fp, legacy(columns)]);
    // The previous code's finalizer compares the whole specs: it never takes a part of this code.
    expect(fp).not.toBe(legacy(columns));
    expect(acceptedPartFingerprints(columns).has(legacy(columns.map((c) => ({ ...c, width: 40 }))))).toBe(false);
  });
});

describe('notifier', () => {
  const completed = job({
    status: 'completed',
    rowCount: 1234,
    fileName: 'f.xlsx',
    expiresAt: '2025-07-08T00:00:00.000Z',
  });

  it('writes the event in Korean and English with the link, or the error when failed', () => {
    const event = buildBotEvent(completed, 'export.completed', 'https://api/v1/downloads/t');
    expect(event).toMatchObject({ type: 'export.completed', exportId: 'e1', managerId: 'm1', rowCount: 1234, link: 'https://api/v1/downloads/t' });
    expect(event.message.ko).toContain('1,234행');
    expect(event.message.en).toContain('1,234 rows');
    // The link last, on a line of its own ("아래 링크" must be true; the seeds' download is at the bottom).
    expect(event.message.ko.endsWith('\n아래 링크에서 내려받으세요:\nhttps://api/v1/downloads/t')).toBe(true);
    expect(event.message.en.endsWith('\nDownload it here:\nhttps://api/v1/downloads/t')).toBe(true);
    const failed = buildBotEvent(
      job({ status: 'failed', skippedRecords: 3, error: { code: 'TOO_MANY_ROWS', message: 'the export has more than 1,000,000 rows, …', maxRows: 1_000_000 } }),
      'export.failed',
      null,
    );
    // Each code in the manager's words, both languages, the limit with separators, no repeated advice.
    expect(failed.message).toEqual({
      ko: '고객 연락처 파일을 만들지 못했습니다. 행이 한 파일에 담을 수 있는 최대 1,000,000행을 넘습니다. 필터나 선택 범위를 좁혀 다시 요청해 주세요. (오류 코드: TOO_MANY_ROWS)',
      en: 'Your customer contacts export failed. It has more than 1,000,000 rows, the most one file may hold. Please narrow the filter or the selection and try again. (Error code: TOO_MANY_ROWS)',
    });
    // The event's error is the documented {code, message}; skipped records belong to a file, not a failure.
    expect(failed.error).toEqual({ code: 'TOO_MANY_ROWS', message: 'the export has more than 1,000,000 rows, …' });
    expect(failed).not.toHaveProperty('skippedRecords');
    expect(failed.link).toBeNull();
    // The link's lifetime is the configured one, read back from the job, not a fixed 7 days.
    const threeDays = buildBotEvent(
      { ...completed, completedAt: '2026-03-01T10:00:00.000Z', expiresAt: '2026-03-04T10:00:00.000Z' },
      'export.completed',
      'https://api/v1/downloads/t',
    );
    expect(threeDays.message.ko).toContain('3일간');
    expect(threeDays.message.en).toContain('works for 3 days, until');
    expect(JSON.stringify(threeDays.message)).not.toMatch(/7일간|7 days/);
    // A job failed before the limit was stored says so without a number.
    const failedCases = buildBotEvent(job({ kind: 'cases', status: 'failed', error: { code: 'TOO_MANY_ROWS', message: 'too many' } }), 'export.failed', null);
    expect(failedCases.message.ko).toContain('행이 한 파일에 담을 수 있는 수를 넘습니다. 기간이나 필터를 좁혀 다시 요청해 주세요.');
    expect(failedCases.message.en).toContain('It has more rows than one file may hold. Please narrow the date range or the filter and try again.');
    const otherFailure = buildBotEvent(job({ status: 'failed', error: { code: 'PIPELINE_FAILED', message: 'x' } }), 'export.failed', null);
    // A failure the request did not cause does not send the manager looking for a mistake in it.
    expect(otherFailure.message.ko).toContain('같은 조건으로 다시 요청해 주세요');
    expect(otherFailure.message.en).toContain('Please request it again as it was');
    expect(JSON.stringify(otherFailure.message)).not.toMatch(/check the request|조건을 확인|좁혀/);
    // Every failure code the pipeline records has its own reason in Korean, never only the code.
    for (const code of ['COLUMNS_CHANGED', 'EXPORT_DATA_EXPIRED', 'INTERRUPTED', 'PART_MISMATCH', 'ENCRYPTION_PARAMS_INVALID', 'PIPELINE_FAILED']) {
      const text = buildBotEvent(job({ status: 'failed', error: { code, message: 'the stored message' } }), 'export.failed', null).message;
      expect(text.ko, code).toMatch(new RegExp(`^고객 연락처 파일을 만들지 못했습니다\\. \\S.+ \\(오류 코드: ${code}\\)$`));
      expect(text.ko, code).not.toContain('문제가 생겼습니다');
      expect(text.en, code).not.toContain('the stored message');
    }
    // An unknown code keeps the stored message in English, and a general reason in Korean.
    const unknown = buildBotEvent(job({ status: 'failed', error: { code: 'SOMETHING_NEW', message: 'the thing broke.' } }), 'export.failed', null);
    expect(unknown.message.en).toBe(
      "Your customer contacts export failed. The thing broke. Please request it again as it was; if it keeps failing, report the error code to the service's support. (Error code: SOMETHING_NEW)",
    );
    expect(unknown.message.ko).toContain('파일을 만드는 중에 문제가 생겼습니다.');
    // A filter or segment the chunks found invalid fails the same request again: check it.
    const badSegment = buildBotEvent(job({ status: 'failed', error: { code: 'SEGMENT_INVALID', message: 'the segment was deleted' } }), 'export.failed', null);
    expect(badSegment.message.ko).toContain('조건을 확인한 뒤 다시 요청해 주세요');
    expect(badSegment.message.en).toContain('Please check the request and try again.');
  });

  it('gives the expiry in the export\'s zone, named, in both texts (not Seoul time for a New York channel)', () => {
    const expiresAt = '2025-07-08T03:00:00.000Z';
    const ny = buildBotEvent({ ...completed, expiresAt, timeZone: 'America/New_York' }, 'export.completed', 'https://api/v1/downloads/t');
    expect(ny.message.ko).toContain('링크는 2025-07-07 23:00 (America/New_York)까지');
    expect(ny.message.en).toContain('until 2025-07-07 23:00 (America/New_York).');
    expect(ny.expiresAt).toBe(expiresAt);
    const seoul = buildBotEvent({ ...completed, expiresAt, timeZone: 'Asia/Seoul' }, 'export.completed', 'https://api/v1/downloads/t');
    expect(seoul.message.ko).toContain('링크는 2025-07-08 12:00 (Asia/Seoul)까지');
    // The minute is cut, never rounded up past the real expiry.
    const late = buildBotEvent({ ...completed, expiresAt: '2025-07-08T03:00:59.999Z', timeZone: 'UTC' }, 'export.completed', 'https://api/v1/downloads/t');
    expect(late.message.en).toContain('until 2025-07-08 03:00 (UTC).');
    // A zone Intl does not know (a hand-edited item) falls back to the product's, not a throw.
    const odd = buildBotEvent({ ...completed, expiresAt, timeZone: 'Mars/Olympus' }, 'export.completed', 'https://api/v1/downloads/t');
    expect(odd.message.ko).toContain('2025-07-08 12:00 (Asia/Seoul)');
  });

  it('writes "1 row", not "1 rows", in English (Korean has no plural)', () => {
    const one = buildBotEvent({ ...completed, rowCount: 1 }, 'export.completed', 'https://api/v1/downloads/t');
    expect(one.message.en).toContain('(1 row) is ready');
    expect(one.message.ko).toContain('(1행)');
    expect(buildBotEvent({ ...completed, rowCount: 0 }, 'export.completed', 'https://api/v1/downloads/t').message.en).toContain('(0 rows) is ready');
  });

  it('retries with backoff, signs the exact body, and throws after the last attempt', async () => {
    const posts: { body: string; headers: Record<string, string> }[] = [];
    const statuses = [500, 502, 200];
    const sleeps: number[] = [];
    const updates: unknown[] = [];
    const store = {
      getJob: async () => completed,
      updateProgress: async (_c: string, _e: string, patch: unknown) => void updates.push(patch),
      claimLease: async () => 'lease',
      releaseClaim: async () => undefined,
    } as unknown as ExportStore;
    const deps = {
      store,
      bot: { post: async (body: string, headers: Record<string, string>) => (posts.push({ body, headers }), { status: statuses.shift() ?? 500 }) },
      clock: { now: () => new Date('2025-07-01T00:00:00Z') },
      log: silentLog,
      botSigningSecret: 'bot-secret',
      linkSigningSecret: SECRET,
      publicBaseUrl: 'https://api.example.com/',
      attempts: 3,
      backoffMs: 100,
      sleep: async (ms: number) => void sleeps.push(ms),
    };
    const result = await notifyExport({ type: 'notify', exportId: 'e1', channelId: 'c1', event: 'export.completed' }, deps);
    expect(result).toEqual({ status: 'sent', attempts: 3 });
    expect(sleeps).toEqual([100, 200]);
    const last = posts[2]!;
    expect(last.headers['X-Timestamp']).toBe(String(Date.parse('2025-07-01T00:00:00Z') / 1000));
    // The key a bot dedupes on: the same on every attempt.
    expect(posts.map((p) => p.headers['X-Event-Id'])).toEqual(Array(3).fill('export.completed/e1'));
    expect(last.headers['X-Event-Type']).toBe('export.completed');
    // The timestamp is signed with the body: a replay cannot carry a fresh X-Timestamp.
    expect(last.headers['X-Signature']).toBe(
      `sha256=${createHmac('sha256', 'bot-secret').update(`${last.headers['X-Timestamp']}.${last.body}`).digest('hex')}`,
    );
    expect(last.headers['X-Signature']).toBe(signDelivery(last.headers['X-Timestamp']!, last.body, 'bot-secret'));
    expect(last.headers['X-Signature']).not.toBe(signDelivery(String(Date.parse('2025-07-01T00:05:00Z') / 1000), last.body, 'bot-secret'));
    const { link, sentAt } = JSON.parse(last.body) as { link: string; sentAt: string };
    expect(sentAt).toBe('2025-07-01T00:00:00.000Z');
    expect(link.startsWith('https://api.example.com/v1/downloads/')).toBe(true);
    expect(updates).toHaveLength(1);

    statuses.push(500, 500, 500);
    await expect(notifyExport({ type: 'notify', exportId: 'e1', channelId: 'c1', event: 'export.completed' }, deps)).rejects.toThrow(/after 3 attempts/);
  });
});

describe('progress', () => {
  const at = (over: Partial<ExportJob>) => describeProgress(makeJob(over)).percent;

  it('a cases export never goes back when its users phase is planned (20/21 was 90%, then 21/24 showed 83%)', () => {
    const seen: number[] = [];
    for (let done = 0; done <= 21; done++) seen.push(at({ kind: 'cases', status: 'running', phase: 'main', chunksDone: done, chunksTotal: 21, sheetChunks: { cases: 21, users: 0 } }));
    for (let done = 21; done <= 24; done++) seen.push(at({ kind: 'cases', status: 'running', phase: 'users', chunksDone: done, chunksTotal: 24, sheetChunks: { cases: 21, users: 3 } }));
    for (let i = 1; i < seen.length; i++) expect(seen[i]!).toBeGreaterThanOrEqual(seen[i - 1]!);
    expect(seen[0]).toBe(0);
    expect(seen[21]).toBe(80); // every case chunk done
    expect(seen.at(-1)).toBe(95); // every chunk done, the file not yet written
  });

  it('a cases export whose cases reference no user goes from 80 to 95; contacts count chunks; 100 only with the file', () => {
    expect(at({ kind: 'cases', status: 'finalizing', phase: 'users', chunksDone: 4, chunksTotal: 4, sheetChunks: { cases: 4, users: 0 } })).toBe(95);
    expect(at({ kind: 'contacts', status: 'running', chunksDone: 8, chunksTotal: 16, sheetChunks: { users: 16 } })).toBe(47);
    expect(at({ kind: 'contacts', status: 'completed', chunksDone: 16, chunksTotal: 16 })).toBe(100);
    expect(at({ kind: 'contacts', status: 'expired', chunksDone: 16, chunksTotal: 16 })).toBe(100);
  });
});

/**
 * `npm run bench:e2e`: a 100,000-row contacts export and a 100,000-row cases export through the
 * local stack (HTTP API -> SQS chunk fan-out -> finalizer -> S3), timed from POST to completed,
 * and, in the same run on the same emulator, the read floor: a bare parallel Scan of the same
 * rows (16 segments, no filter, no rendering). The difference is what the pipeline costs.
 *
 *   npm run bench:e2e [-- --users 100000 --cases 100000]
 * Results go to stdout and bench/results/e2e.json.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { cpus } from 'node:os';
import { parseArgs } from 'node:util';
import { ScanCommand } from '@aws-sdk/client-dynamodb';
import { signDevToken } from '../shared/auth';
import { startLocalStack, type LocalStack } from '../infra/local/stack';

const { values } = parseArgs({ options: { users: { type: 'string' }, cases: { type: 'string' }, segments: { type: 'string' } } });
const USERS = Number(values.users ?? 100_000);
const CASES = Number(values.cases ?? 100_000);
const SEGMENTS = Number(values.segments ?? 16);
const CHANNEL = 'bench';

async function api(stack: LocalStack, method: string, path: string, token: string, body?: unknown): Promise<any> {
  const res = await fetch(`${stack.apiUrl}${path}`, {
    method,
    headers: { Authorization: `Bearer ${token}`, ...(body ? { 'Content-Type': 'application/json' } : {}) },
    ...(body ? { body: JSON.stringify(body) } : {}),
  });
  const json = (await res.json()) as any;
  if (res.status >= 400) throw new Error(`${method} ${path}: ${res.status} ${JSON.stringify(json)}`);
  return json;
}

async function timeExport(stack: LocalStack, name: string, body: Record<string, unknown>) {
  const token = await signDevToken({ channelId: CHANNEL, managerId: `bench-${name}`, name, permissions: ['export:download'], expiresIn: '2h' });
  const started = performance.now();
  const created = await api(stack, 'POST', '/v1/exports', token, { ...body, reason: 'benchmark', password: 'Bench2026pw' });
  const accepted = performance.now();
  let job: any;
  for (;;) {
    job = await api(stack, 'GET', `/v1/exports/${created.exportId}`, token);
    if (['completed', 'failed', 'canceled'].includes(job.status)) break;
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
  const seconds = (performance.now() - started) / 1000;
  if (job.status !== 'completed') throw new Error(`${name} export ended ${job.status}: ${JSON.stringify(job.error)}`);
  return {
    name,
    rows: job.rowCount as number,
    chunks: job.progress.chunksTotal as number,
    fileBytes: job.fileSize as number,
    acceptSeconds: round((accepted - started) / 1000),
    seconds: round(seconds),
    rowsPerSecond: Math.round(job.rowCount / seconds),
  };
}

/** The emulator's read floor: every item of the table, parallel Scan segments, nothing else. */
async function readFloor(stack: LocalStack, table: string) {
  const started = performance.now();
  const counts = await Promise.all(
    Array.from({ length: SEGMENTS }, async (_unused, segment) => {
      let count = 0;
      let start: Record<string, any> | undefined;
      do {
        const page = await stack.clients.ddb.send(
          new ScanCommand({ TableName: table, Segment: segment, TotalSegments: SEGMENTS, ...(start ? { ExclusiveStartKey: start } : {}) }),
        );
        count += page.Items?.length ?? 0;
        start = page.LastEvaluatedKey;
      } while (start);
      return count;
    }),
  );
  const rows = counts.reduce((a, b) => a + b, 0);
  const seconds = (performance.now() - started) / 1000;
  return { table, rows, segments: SEGMENTS, seconds: round(seconds), rowsPerSecond: Math.round(rows / seconds) };
}

function round(n: number): number {
  return Math.round(n * 100) / 100;
}

async function main(): Promise<void> {
  const log = (line: string) => console.log(line);
  log(`e2e bench: ${USERS} users, ${CASES} cases, ${cpus().length} cores, node ${process.version}`);
  const seedStarted = performance.now();
  const stack = await startLocalStack({
    port: 0,
    seed: { channelId: CHANNEL, users: USERS, cases: CASES, seed: 1 },
    env: { POWERTOOLS_LOG_LEVEL: 'WARN', POWERTOOLS_METRICS_DISABLED: 'true' },
    log,
  });
  log(`stack up and seeded in ${round((performance.now() - seedStarted) / 1000)} s`);
  try {
    const contacts = await timeExport(stack, 'contacts', { kind: 'contacts', scope: 'all' });
    log(`contacts: ${contacts.rows} rows in ${contacts.seconds} s (${contacts.rowsPerSecond} rows/s, ${contacts.chunks} chunks, ${contacts.fileBytes} bytes)`);
    const cases = await timeExport(stack, 'cases', { kind: 'cases', from: '2025-06-26', to: '2025-12-26', timezone: 'Asia/Seoul' });
    log(`cases:    ${cases.rows} rows in ${cases.seconds} s (${cases.rowsPerSecond} rows/s, ${cases.chunks} chunks, ${cases.fileBytes} bytes)`);
    const usersFloor = await readFloor(stack, stack.tables.users);
    log(`read floor users: ${usersFloor.rows} items in ${usersFloor.seconds} s (${usersFloor.rowsPerSecond} items/s, ${SEGMENTS} segments)`);
    const casesFloor = await readFloor(stack, stack.tables.cases);
    log(`read floor cases: ${casesFloor.rows} items in ${casesFloor.seconds} s (${casesFloor.rowsPerSecond} items/s, ${SEGMENTS} segments)`);
    const result = { at: new Date().toISOString(), cores: cpus().length, node: process.version, users: USERS, cases: CASES, exports: [contacts, cases], readFloor: [usersFloor, casesFloor] };
    await mkdir(join(process.cwd(), 'bench', 'results'), { recursive: true });
    await writeFile(join(process.cwd(), 'bench', 'results', 'e2e.json'), `${JSON.stringify(result, null, 2)}\n`);
  } finally {
    await stack.stop();
  }
}

main().catch((error: unknown) => {
  console.error(error);
  process.exit(1);
});

/**
 * One benchmark scenario, run in its own process so its peak RSS is its own:
 *   node --import tsx bench/xlsx-scenario.ts '{"kind":"ours","shape":"case","rows":1000000,"out":"/tmp/x.xlsx"}'
 * Prints one JSON line with the measurements.
 */
import { createReadStream, createWriteStream } from 'node:fs';
import { mkdtemp, open, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { Worker } from 'node:worker_threads';
import { createRequire } from 'node:module';
import { z } from 'zod';
import { createPartEncoder, deriveEncryptionKeys, writeEncryptedWorkbook, type PartMeta } from '../shared/xlsx';
import { bundleWorker } from '../bin/bundle-worker';
import { columnsFor, generateRow } from './rows';

const scenarioSchema = z.object({
  kind: z.enum(['ours', 'ours-workers', 'peer', 'generate']),
  shape: z.enum(['contact', 'case']),
  rows: z.number().int().positive().max(1_000_000),
  out: z.string(),
  timeZone: z.string().default('Asia/Seoul'),
  /**
   * Row/cell `r` attributes (what ExcelJS and xlsx-populate need, and the CLI writes). The
   * pipeline's chunk parts leave them out (a chunk doesn't know its absolute row): `false`
   * measures that production form.
   */
  cellRefs: z.boolean().default(true),
});
export type Scenario = z.infer<typeof scenarioSchema>;

export type ScenarioResult = Scenario & {
  wallSeconds: number;
  renderSeconds: number;
  cpuSeconds: number;
  maxRssMb: number;
  fileBytes: number;
  rowsPerSecond: number;
  rowsPerCpuSecond: number;
  threads: number;
};

const ROWS_PER_PART = 50_000;
/** Worker-variant parts are smaller: several are in flight at once (one per worker, plus transfers). */
const ROWS_PER_WORKER_PART = 20_000;

// A fixed benchmark password, not a secret: the files are deleted after measuring.
const PASSWORD = 'Bench1234';

type StoredPart = PartMeta & { offset: number };

/** Parts go to a temp file (as they would to S3), then the finalizer step streams them. */
async function finalize(s: Scenario, work: string, partsPath: string, parts: StoredPart[]): Promise<void> {
  const { params, packageKey } = await deriveEncryptionKeys(PASSWORD);
  const sheets = [{ name: s.shape === 'case' ? 'UserChatCase data' : 'User data', columns: columnsFor(s.shape), parts }];
  await writeEncryptedWorkbook({
    sheets: sheets.map((sh) => ({ ...sh, parts: sh.parts.map(({ offset: _o, ...m }) => m) })),
    readPart: async (_s, i) => {
      const p = parts[i]!;
      return createReadStream(partsPath, { start: p.offset, end: p.offset + p.compressedLength - 1, highWaterMark: 1 << 20 });
    },
    params,
    packageKey,
    out: createWriteStream(s.out),
  });
  void work;
}

async function runOurs(s: Scenario, work: string, workerFile?: string): Promise<{ renderSeconds: number; threads: number }> {
  const partsPath = join(work, 'parts.bin');
  const file = await open(partsPath, 'w');
  const parts: StoredPart[] = [];
  const t0 = performance.now();
  let threads = 1;
  try {
    let offset = 0;
    if (s.kind === 'ours') {
      const columns = columnsFor(s.shape);
      for (let start = 0; start < s.rows; start += ROWS_PER_PART) {
        const count = Math.min(ROWS_PER_PART, s.rows - start);
        // One thread. (createAsyncPartEncoder, deflating on zlib's pool, used more CPU and was
        // no faster on this shared 2-core machine, so the plain encoder is measured.)
        const encoder = createPartEncoder(columns, { timeZone: s.timeZone, ...(s.cellRefs ? { startRow: start + 2 } : {}) });
        for (let i = start; i < start + count; i++) encoder.add(generateRow(s.shape, i));
        const { data, ...meta } = encoder.finish();
        await file.write(data);
        parts.push({ ...meta, offset });
        offset += data.length;
      }
    } else {
      threads = availableParallelism();
      if (!workerFile) throw new Error('the worker variant needs the bundled worker');
      const jobs: { partIndex: number; start: number; count: number }[] = [];
      for (let start = 0, partIndex = 0; start < s.rows; start += ROWS_PER_WORKER_PART, partIndex++) {
        jobs.push({ partIndex, start, count: Math.min(ROWS_PER_WORKER_PART, s.rows - start) });
      }
      const results: (StoredPart | undefined)[] = new Array(jobs.length);
      let next = 0;
      let writes = Promise.resolve();
      await Promise.all(
        Array.from({ length: Math.min(threads, jobs.length) }, () => {
          const worker = new Worker(workerFile, {
            workerData: { shape: s.shape, timeZone: s.timeZone, cellRefs: s.cellRefs },
            // Rows are short-lived garbage: a small young generation per thread keeps RSS down.
            resourceLimits: { maxYoungGenerationSizeMb: 16 },
          });
          return new Promise<void>((resolve, reject) => {
            const feed = (): void => {
              const job = jobs[next++];
              worker.postMessage(job ?? null);
              if (!job) resolve();
            };
            worker.on('message', (msg: { partIndex: number; meta: PartMeta; data: ArrayBuffer }) => {
              const data = Buffer.from(msg.data);
              // Parts finish out of order: each records where its bytes landed in the file.
              writes = writes.then(async () => {
                results[msg.partIndex] = { ...msg.meta, offset };
                offset += data.length;
                await file.write(data);
              });
              feed();
            });
            worker.on('error', reject);
            feed();
          });
        }),
      );
      await writes;
      parts.push(...results.map((p) => p!));
    }
    await file.close();
    const renderSeconds = (performance.now() - t0) / 1000;
    await finalize(s, work, partsPath, parts);
    return { renderSeconds, threads };
  } finally {
    await file.close().catch(() => undefined);
  }
}

/** The peer pipeline: ExcelJS's streaming writer to a file, then officecrypto-tool in memory. */
async function runPeer(s: Scenario): Promise<{ renderSeconds: number; threads: number }> {
  const columns = columnsFor(s.shape);
  const plain = `${s.out}.plain.xlsx`;
  // Imported here so our scenarios' RSS does not carry ExcelJS.
  const { default: ExcelJS } = await import('exceljs');
  const t0 = performance.now();
  const wb = new ExcelJS.stream.xlsx.WorkbookWriter({ filename: plain, useStyles: true, useSharedStrings: false });
  const ws = wb.addWorksheet('Data', { views: [{ state: 'frozen', ySplit: 1 }] });
  ws.columns = columns.map((c) => ({
    header: c.header,
    key: c.key,
    width: 20,
    style: c.type === 'date' ? { numFmt: 'yyyy-mm-dd hh:mm:ss' } : {},
  }));
  ws.getRow(1).font = { bold: true };
  const offset = 9 * 3_600_000; // Asia/Seoul has no DST: a fixed shift is the peer's fair best
  for (let i = 0; i < s.rows; i++) {
    const row = generateRow(s.shape, i);
    const values: Record<string, unknown> = {};
    for (const c of columns) {
      const v = row[c.key];
      values[c.key] = c.type === 'date' && typeof v === 'number' ? new Date(v + offset) : v;
    }
    ws.addRow(values).commit();
  }
  ws.commit();
  await wb.commit();
  const renderSeconds = (performance.now() - t0) / 1000;
  const require = createRequire(import.meta.url);
  const officeCrypto = require('officecrypto-tool') as { encrypt(input: Buffer, o: { password: string }): Buffer | Promise<Buffer> };
  const encrypted = await officeCrypto.encrypt(await readFile(plain), { password: PASSWORD });
  await writeFile(s.out, encrypted);
  await rm(plain, { force: true });
  return { renderSeconds, threads: 1 };
}

/**
 * Row generation alone (bench/rows.ts), which every other scenario also pays inside its wall
 * and CPU time: measured on its own so it can be reported separately. Each row is touched so
 * the work cannot be skipped; no file is written.
 */
async function runGenerate(s: Scenario): Promise<{ renderSeconds: number; threads: number }> {
  const t0 = performance.now();
  let keys = 0;
  for (let i = 0; i < s.rows; i++) {
    const row = generateRow(s.shape, i);
    for (const k in row) if (row[k] !== null) keys++;
  }
  if (keys === 0) throw new Error('generator produced only empty rows');
  return { renderSeconds: (performance.now() - t0) / 1000, threads: 1 };
}

async function main(): Promise<void> {
  const s = scenarioSchema.parse(JSON.parse(process.argv[2] ?? '{}'));
  const work = await mkdtemp(join(tmpdir(), 'xlsx-bench-'));
  // Bundling the worker is a build step (a deployment ships it prebuilt): done before the clock starts.
  const workerFile = s.kind === 'ours-workers' ? await bundleWorker(new URL('./render-worker.ts', import.meta.url), join(work, 'render-worker.mjs')) : undefined;
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  let measured: { renderSeconds: number; threads: number };
  try {
    measured =
      s.kind === 'peer' ? await runPeer(s) : s.kind === 'generate' ? await runGenerate(s) : await runOurs(s, work, workerFile);
  } finally {
    await rm(work, { recursive: true, force: true });
  }
  const { renderSeconds, threads } = measured;
  const wallSeconds = (performance.now() - t0) / 1000;
  const cpu = process.cpuUsage(cpu0);
  const fileBytes = s.kind === 'generate' ? 0 : (await stat(s.out)).size;
  const result: ScenarioResult = {
    ...s,
    wallSeconds,
    renderSeconds,
    cpuSeconds: (cpu.user + cpu.system) / 1e6,
    // resourceUsage().maxRSS is in kilobytes; it covers worker threads too (same process)
    maxRssMb: process.resourceUsage().maxRSS / 1024,
    fileBytes,
    rowsPerSecond: s.rows / wallSeconds,
    rowsPerCpuSecond: s.rows / ((cpu.user + cpu.system) / 1e6),
    threads,
  };
  process.stdout.write(`${JSON.stringify(result)}\n`);
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});

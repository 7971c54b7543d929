/**
 * Worker for the all-cores variant: renders the parts the main thread asks for (rows are
 * generated here from their indexes, as a chunk Lambda reads its own slice) and transfers the
 * compressed bytes back without copying.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { createPartEncoder, transferableBytes } from '../shared/xlsx/part';
import { columnsFor, generateRow, type Shape } from './rows';

type Job = { partIndex: number; start: number; count: number };
const { shape, timeZone, cellRefs } = workerData as { shape: Shape; timeZone: string; cellRefs: boolean };
const columns = columnsFor(shape);

parentPort!.on('message', (job: Job | null) => {
  if (job === null) {
    parentPort!.close();
    return;
  }
  const encoder = createPartEncoder(columns, { timeZone, ...(cellRefs ? { startRow: job.start + 2 } : {}) });
  for (let i = job.start; i < job.start + job.count; i++) encoder.add(generateRow(shape, i));
  const { data, ...meta } = encoder.finish();
  const exact = transferableBytes(data);
  parentPort!.postMessage({ partIndex: job.partIndex, meta, data: exact }, [exact]);
});

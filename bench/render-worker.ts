/**
 * Worker for the all-cores variant: renders the parts the main thread asks for (rows are
 * generated here from their indexes, as a chunk Lambda reads its own slice) and transfers the
 * compressed bytes back without copying.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { createPartEncoder } from '../shared/xlsx/part';
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
  // A Buffer may be a view into a larger pooled ArrayBuffer: transfer only an exact one.
  const exact =
    data.byteOffset === 0 && data.byteLength === data.buffer.byteLength
      ? (data.buffer as ArrayBuffer)
      : data.buffer.slice(data.byteOffset, data.byteOffset + data.byteLength);
  parentPort!.postMessage({ partIndex: job.partIndex, meta, data: exact }, [exact as ArrayBuffer]);
});

/**
 * The operator command's render workers: batches of lines in, parts out, one worker thread per
 * core. Parsing a line (JSON.parse, the field checks, the date text) costs about as much as
 * rendering and deflating it, so the command's time divides by the cores; the main thread only
 * reads the input, splits it into lines (as bytes) and writes the parts in order.
 */
import { Worker } from 'node:worker_threads';
import type { Part, PartMeta } from '../shared/xlsx';
import { InputError } from './cli-input';
import type { Batch, BatchContext } from './xlsx-rows';

export type RenderRequest = { id: number; batch: Batch };
export type RenderReply =
  | { id: number; meta: PartMeta; data: ArrayBuffer; error?: undefined }
  | { id: number; error: { message: string; input: boolean } };

export type RenderPool = {
  /** Renders a batch on the next free worker. Rejects with the batch's refusal (an InputError) or the pool's failure. */
  render(batch: Batch): Promise<Part>;
  /** Stops every worker; pending renders reject. */
  close(): Promise<void>;
};

type Waiting = { resolve: (part: Part) => void; reject: (err: Error) => void };

export function startRenderPool(workerFile: string, context: BatchContext, size: number): RenderPool {
  const queue: RenderRequest[] = [];
  const waiting = new Map<number, Waiting>();
  const idle: Worker[] = [];
  let nextId = 0;
  let failure: Error | undefined;
  let closing = false;

  const fail = (err: Error): void => {
    failure ??= err;
    for (const w of waiting.values()) w.reject(failure);
    waiting.clear();
    queue.length = 0;
  };
  const feed = (): void => {
    while (idle.length > 0 && queue.length > 0) {
      const request = queue.shift()!;
      const { batch } = request;
      // Handed over, not copied: the main thread is done with a batch once it is sent.
      idle.pop()!.postMessage(request, [batch.bytes.buffer as ArrayBuffer, batch.lines.buffer as ArrayBuffer, batch.ends.buffer as ArrayBuffer]);
    }
  };

  const workers = Array.from({ length: size }, () => {
    const worker = new Worker(workerFile, {
      workerData: context,
      // Lines and rows are short-lived garbage: a small young generation per thread keeps RSS down
      // (1,000,000 case rows on two workers: peak 266-269 MB at 4 MB, 319 MB at 16, the same time).
      resourceLimits: { maxYoungGenerationSizeMb: 4 },
    });
    worker.on('message', (reply: RenderReply) => {
      const w = waiting.get(reply.id);
      waiting.delete(reply.id);
      idle.push(worker);
      feed();
      if (!w) return;
      if (reply.error) {
        w.reject(reply.error.input ? new InputError(reply.error.message) : new Error(reply.error.message));
      } else {
        w.resolve({ ...reply.meta, data: Buffer.from(reply.data) });
      }
    });
    worker.on('error', (err) => fail(new Error('a render worker failed', { cause: err })));
    worker.on('exit', (code) => {
      if (!closing) fail(new Error(`a render worker stopped (exit code ${code})`));
    });
    idle.push(worker);
    return worker;
  });

  return {
    render(batch) {
      if (failure) return Promise.reject(failure);
      const id = nextId++;
      return new Promise<Part>((resolve, reject) => {
        waiting.set(id, { resolve, reject });
        queue.push({ id, batch });
        feed();
      });
    },
    async close() {
      closing = true;
      fail(new Error('the render workers were stopped'));
      await Promise.all(workers.map((w) => w.terminate()));
    },
  };
}

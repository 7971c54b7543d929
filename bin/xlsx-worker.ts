/**
 * A render worker of the operator command (bin/xlsx.ts): renders the batches of lines it is
 * sent into parts, exactly as the main thread would (createBatchRenderer), and hands each part's
 * bytes back without a copy. A refusal comes back as its message, marked as the operator's
 * input (exit 2) or not (exit 1); the main thread reports the first bad line of the file.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { transferableBytes } from '../shared/xlsx/part';
import { InputError } from './cli-input';
import { createBatchRenderer, type BatchContext } from './xlsx-rows';
import type { RenderReply, RenderRequest } from './xlsx-pool';

const { render } = createBatchRenderer(workerData as BatchContext);

parentPort!.on('message', ({ id, batch }: RenderRequest) => {
  let reply: RenderReply;
  let transfer: ArrayBuffer[] = [];
  try {
    const { data, ...meta } = render(batch);
    const bytes = transferableBytes(data);
    reply = { id, meta, data: bytes };
    transfer = [bytes];
  } catch (err) {
    reply = { id, error: { message: err instanceof Error ? err.message : String(err), input: err instanceof InputError } };
  }
  parentPort!.postMessage(reply, transfer);
});

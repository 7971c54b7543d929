import type { Writable } from 'node:stream';
import { createWritableSink } from './byte-sink';
import { createEncryptingSink, encryptedFileSize, type EncryptingSink, type EncryptionParams } from './crypto';
import type { ReadPart, SheetPlan, WorkbookProperties } from './types';
import { planWorkbook, writePackage } from './workbook';

export type WriteEncryptedWorkbookInput = {
  sheets: readonly SheetPlan[];
  readPart: ReadPart;
  /** Public EncryptionInfo parameters from `deriveEncryptionKeys` (no secret in them). */
  params: EncryptionParams;
  /** The 32-byte package key, unwrapped; the password itself is never needed here. */
  packageKey: Buffer;
  out: Writable;
  properties?: WorkbookProperties;
};

/**
 * Plans the package (its exact size is what the encrypted container's layout depends on),
 * streams it through the encrypting sink into `out`, and ends `out`. Resolves with the
 * encrypted file size and the package size; rejects on any stream or integrity error, after
 * destroying `out` so a half-written file is never mistaken for a finished one.
 */
export async function writeEncryptedWorkbook(
  input: WriteEncryptedWorkbookInput,
): Promise<{ size: number; packageSize: number }> {
  const layout = planWorkbook(input.sheets, { properties: input.properties });
  const size = encryptedFileSize(layout.packageSize);
  // Watches `out` for errors and ends it; the encrypting sink does the writing.
  const outSink = createWritableSink(input.out);
  let sink: EncryptingSink | undefined;
  try {
    sink = createEncryptingSink({
      params: input.params,
      packageKey: input.packageKey,
      packageSize: layout.packageSize,
      out: input.out,
    });
    await writePackage(layout, input.readPart, sink);
    await sink.finish();
    await outSink.end();
  } catch (err) {
    // A failure outside the sink (a part's stream throwing, a PartIntegrityError) leaves it
    // waiting for a write() or finish() that never comes, its worker thread holding a copy of
    // the package key. abort() zeroes the copies and resolves once the worker has stopped.
    await sink?.abort(err);
    // With the error: a consumer piped from `out` (an upload's body) sees it fail. A bare
    // destroy() ends nothing downstream, and the consumer waits for ever.
    input.out.destroy(err instanceof Error ? err : new Error(String(err)));
    throw err;
  }
  return { size, packageSize: layout.packageSize };
}

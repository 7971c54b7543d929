import type { Writable } from 'node:stream';

/** Where package bytes go: a file/S3 stream, or the encryptor. Resolves when it can take more. */
export type ByteSink = {
  write(chunk: Buffer): Promise<void>;
};

export type WritableSink = ByteSink & {
  /** Ends the stream and resolves once everything is flushed; rejects on any stream error. */
  end(): Promise<void>;
  /** Bytes accepted so far. */
  readonly bytesWritten: number;
};

/**
 * Wraps a Node Writable so writers await `drain` (backpressure) and see every stream error as
 * a rejection, including one emitted between writes.
 */
export function createWritableSink(out: Writable): WritableSink {
  let failure: Error | undefined;
  let bytes = 0;
  // Node destroys a stream whose write failed at once but emits 'error' a tick later: until
  // then only `out.errored` holds the reason (ENOSPC…), which is what the caller must see.
  const failed = (): Error | undefined => failure ?? out.errored ?? undefined;
  const waiters = new Set<(err?: Error) => void>();
  const onError = (err: Error): void => {
    failure ??= err;
    for (const w of waiters) w(err);
    waiters.clear();
  };
  out.on('error', onError);

  const waitFor = (event: 'drain' | 'finish'): Promise<void> =>
    new Promise<void>((resolve, reject) => {
      const known = failed();
      if (known) {
        reject(known);
        return;
      }
      const done = (err?: Error): void => {
        out.off(event, onEvent);
        out.off('close', onClose);
        waiters.delete(done);
        if (err) reject(err);
        else resolve();
      };
      const onEvent = (): void => done();
      // A stream destroyed without an error never emits drain/finish; do not hang on it.
      const onClose = (): void => done(failed() ?? new Error(`output stream closed before ${event}`));
      waiters.add(done);
      out.once(event, onEvent);
      out.once('close', onClose);
    });

  return {
    async write(chunk: Buffer): Promise<void> {
      const before = failed();
      if (before) throw before;
      if (out.destroyed || out.writableEnded) throw new Error('output stream is no longer writable');
      bytes += chunk.length;
      if (!out.write(chunk)) await waitFor('drain');
      const after = failed();
      if (after) throw after;
    },
    async end(): Promise<void> {
      const before = failed();
      if (before) throw before;
      const finished = out.writableFinished ? Promise.resolve() : waitFor('finish');
      out.end();
      await finished;
      const after = failed();
      if (after) throw after;
    },
    get bytesWritten() {
      return bytes;
    },
  };
}

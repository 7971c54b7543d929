import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { startLocalStack } from '../../infra/local/stack';
import { objectKeys } from '../../shared/app/messages';
import { makeJob } from './job-fixture';
import { storesFor } from './helpers';

describe('local stack restart (npm start)', () => {
  it('an export the last run stopped between the upload and the completion is failed, and its file deleted', async () => {
    const dataDir = await mkdtemp(join(tmpdir(), 'export-interrupted-file-'));
    const job = makeJob({ exportId: 'interrupted-file-1', channelId: 'disk', status: 'finalizing', chunksTotal: 1, chunksDone: 1 });
    const fileKey = objectKeys.file('disk', job.exportId, 'run1', 'Contacts_2025-07-01_interrupted-file-1.xlsx');
    // Another export's file beside it (same channel, an id that extends this one) stays.
    const otherKey = objectKeys.file('disk', `${job.exportId}0`, 'run1', 'Contacts_2025-07-01_interrupted-file-10.xlsx');
    try {
      const first = await startLocalStack({ dataDir, port: 0, pollers: false, seed: false });
      try {
        const { store, objects } = storesFor(first);
        await store.createJob(job);
        await store.createJob(makeJob({ exportId: `${job.exportId}0`, channelId: 'disk', status: 'completed' }));
        await objects.put(fileKey, Buffer.from('encrypted workbook'));
        await objects.put(otherKey, Buffer.from('another encrypted workbook'));
      } finally {
        await first.stop();
      }

      const second = await startLocalStack({ dataDir, port: 0, pollers: false, seed: false });
      try {
        const { store, objects } = storesFor(second);
        expect(await store.getJob('disk', job.exportId)).toMatchObject({ status: 'failed', error: { code: 'INTERRUPTED' } });
        // Before: the file stayed, although no link could ever reach it.
        expect(await objects.head(fileKey)).toBeNull();
        expect(await objects.head(otherKey)).not.toBeNull();
      } finally {
        await second.stop();
      }
    } finally {
      await rm(dataDir, { recursive: true, force: true });
    }
  });
});

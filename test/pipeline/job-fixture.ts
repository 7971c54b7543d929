import type { ExportJob } from '../../shared/app/export-job';

/** A valid queued contacts job for unit and store tests; each test overrides what it is about. */
export function makeJob(overrides: Partial<ExportJob> = {}): ExportJob {
  return {
    exportId: 'e1',
    channelId: 'c1',
    managerId: 'm1',
    managerName: 'Kim',
    kind: 'contacts',
    request: { kind: 'contacts', scope: 'all' },
    reason: 'r',
    status: 'queued',
    createdAt: '2025-07-01T00:00:00.000Z',
    updatedAt: '2025-07-01T00:00:00.000Z',
    chunksTotal: 0,
    chunksDone: 0,
    rowsWritten: 0,
    encryption: { sealedParams: 'x', wrappedKey: 'x' },
    timeZone: 'Asia/Seoul',
    ...overrides,
  };
}

/** A completed export whose link is valid for decades: what the notifier tests post about. */
export function makeCompletedJob(exportId: string, channelId: string): ExportJob {
  return makeJob({
    exportId,
    channelId,
    status: 'completed',
    rowCount: 5,
    fileName: 'f.xlsx',
    completedAt: '2098-12-25T00:00:00.000Z',
    expiresAt: '2099-01-01T00:00:00.000Z',
  });
}

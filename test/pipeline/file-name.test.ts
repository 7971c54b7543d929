import { describe, expect, it } from 'vitest';
import { exportFileName } from '../../shared/app/finalize-export';

describe('export file names', () => {
  const contacts = (createdAt: string, timeZone: string) =>
    exportFileName({ kind: 'contacts', request: {}, exportId: 'e1', createdAt, timeZone } as Parameters<typeof exportFileName>[0]);

  it('a contacts file is named for the request day in the export\'s zone, as every date in it is', () => {
    // 08:30 on 12-02 in Seoul: it was named for 12-01 (the UTC day).
    expect(contacts('2026-12-01T23:30:00.000Z', 'Asia/Seoul')).toBe('Contacts_2026-12-02_e1.xlsx');
    expect(contacts('2026-12-01T23:30:00.000Z', 'UTC')).toBe('Contacts_2026-12-01_e1.xlsx');
    expect(contacts('2026-12-01T05:00:00.000Z', 'Etc/GMT+12')).toBe('Contacts_2026-11-30_e1.xlsx');
  });

  it('a cases file keeps its range', () => {
    const name = exportFileName({
      kind: 'cases',
      request: { from: '2025-07-01', to: '2025-07-31' },
      exportId: 'e2',
      createdAt: '2026-12-01T23:30:00.000Z',
      timeZone: 'Asia/Seoul',
    } as Parameters<typeof exportFileName>[0]);
    expect(name).toBe('UserChatCase_2025-07-01_2025-07-31_e2.xlsx');
  });
});

import { readFile, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { z } from 'zod';

/** A second stack on a data folder another one uses: refused before any emulator opens it. */
export class DataDirBusyError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'DataDirBusyError';
  }
}

const lockSchema = z.object({ pid: z.number().int().positive(), startedAt: z.string() });
const endpointsSchema = z.object({ apiUrl: z.string() }).partial();

export const LOCK_FILE = 'stack.lock';

/** True when a process with this pid exists (EPERM: it does, under another user). */
function isRunning(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

async function readJson(file: string): Promise<unknown> {
  try {
    return JSON.parse(await readFile(file, 'utf8')) as unknown;
  } catch {
    return undefined;
  }
}

/**
 * Takes the data folder for this process. The emulators keep their LevelDB and S3 files there,
 * and a second stack on the same folder crashed deep inside dynalite ("Database is closed",
 * thrown from a callback, so no caller could catch it) while the first went on. The lock file
 * is created exclusively ('wx'); one left by a process that no longer runs (a crash, a kill -9)
 * is taken over. Returns the release, which deletes the file only if it is still ours.
 */
export async function lockDataDir(dataDir: string): Promise<() => Promise<void>> {
  const file = join(dataDir, LOCK_FILE);
  const mine = JSON.stringify({ pid: process.pid, startedAt: new Date().toISOString() });
  for (let attempt = 0; attempt < 3; attempt++) {
    try {
      await writeFile(file, mine, { flag: 'wx' });
      return async () => {
        if ((await readFile(file, 'utf8').catch(() => undefined)) === mine) await rm(file, { force: true });
      };
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
    }
    const holder = lockSchema.safeParse(await readJson(file));
    if (holder.success && isRunning(holder.data.pid)) {
      const endpoints = endpointsSchema.safeParse(await readJson(join(dataDir, 'endpoints.json')));
      const api = endpoints.success && endpoints.data.apiUrl ? `, API at ${endpoints.data.apiUrl}` : '';
      throw new DataDirBusyError(
        `another local stack (pid ${holder.data.pid}${api}, started ${holder.data.startedAt}) is using ${dataDir}: ` +
          'stop it first, or give this one another folder with LOCAL_DATA_DIR',
      );
    }
    if (!holder.success) {
      // Empty or half written: a stack starting this very moment (between its create and its
      // write) or one that crashed there. Only an old one is taken over.
      const age = Date.now() - ((await stat(file).catch(() => undefined))?.mtimeMs ?? 0);
      if (age < 10_000) throw new DataDirBusyError(`another local stack is starting on ${dataDir} (${LOCK_FILE} was just created)`);
    }
    // Stale (its process is gone) or unreadable and old (a crash mid-write): ours to take.
    await rm(file, { force: true });
  }
  throw new DataDirBusyError(`could not take ${file}: other processes keep creating it`);
}

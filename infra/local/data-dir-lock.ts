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
/** Held only while a stale lock is removed: see lockDataDir. */
export const TAKEOVER_FILE = 'stack.lock.takeover';
/** An empty or half-written lock younger than this may be a stack between its create and write. */
const FRESH_MS = 10_000;

/**
 * True when a process with this pid exists and may be a stack (a Node process). After a reboot
 * a dead stack's pid can belong to anything; where /proc tells the command, a process that is
 * not Node is not the holder. EPERM: it exists, under another user.
 */
async function isRunningStack(pid: number): Promise<boolean> {
  try {
    process.kill(pid, 0);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EPERM') return false;
  }
  const cmdline = await readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => undefined);
  return cmdline === undefined || /node|tsx/.test(cmdline);
}

async function readText(file: string): Promise<string | undefined> {
  return readFile(file, 'utf8').catch(() => undefined);
}

function parseJson(text: string | undefined): unknown {
  try {
    return text === undefined ? undefined : (JSON.parse(text) as unknown);
  } catch {
    return undefined;
  }
}

async function ageMs(file: string): Promise<number> {
  const info = await stat(file).catch(() => undefined);
  return info ? Date.now() - info.mtimeMs : Infinity;
}

/**
 * Takes the data folder for this process. The emulators keep their LevelDB and S3 files there,
 * and a second stack on the same folder crashed deep inside dynalite ("Database is closed",
 * thrown from a callback, so no caller could catch it) while the first went on.
 *
 * The lock file is created exclusively ('wx'). One left by a process that no longer runs (a
 * crash, a kill -9) is taken over, but only under a second exclusive file, the takeover guard,
 * and only if it still holds what was read as stale: two stacks starting together on a stale
 * lock could otherwise both delete it, the second deleting the first's fresh lock, and both run.
 * Returns the release, which deletes the lock only if it is still ours.
 */
export async function lockDataDir(dataDir: string): Promise<() => Promise<void>> {
  const file = join(dataDir, LOCK_FILE);
  const guard = join(dataDir, TAKEOVER_FILE);
  const mine = JSON.stringify({ pid: process.pid, startedAt: new Date().toISOString() });
  for (let attempt = 0; attempt < 5; attempt++) {
    try {
      await writeFile(file, mine, { flag: 'wx' });
      return async () => {
        if ((await readText(file)) === mine) await rm(file, { force: true });
      };
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
    }
    const seen = await readText(file);
    if (seen === undefined) continue; // released meanwhile: try again
    const holder = lockSchema.safeParse(parseJson(seen));
    if (holder.success && (await isRunningStack(holder.data.pid))) {
      const endpoints = endpointsSchema.safeParse(parseJson(await readText(join(dataDir, 'endpoints.json'))));
      const api = endpoints.success && endpoints.data.apiUrl ? `, API at ${endpoints.data.apiUrl}` : '';
      throw new DataDirBusyError(
        `another local stack (pid ${holder.data.pid}${api}, started ${holder.data.startedAt}) is using ${dataDir}: ` +
          `stop it first, or give this one another folder with LOCAL_DATA_DIR (if no stack runs, delete ${file})`,
      );
    }
    if (!holder.success && (await ageMs(file)) < FRESH_MS) {
      throw new DataDirBusyError(`another local stack is starting on ${dataDir} (${file} was just created)`);
    }
    try {
      await writeFile(guard, mine, { flag: 'wx' });
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
      // Another process is taking over right now; a guard that stays is one it died holding.
      if ((await ageMs(guard)) < FRESH_MS) {
        await new Promise((resolve) => setTimeout(resolve, 200));
        continue;
      }
      throw new DataDirBusyError(`a takeover of ${file} was interrupted: if no stack runs or starts on ${dataDir}, delete ${guard}`);
    }
    try {
      // Still the stale holder's (no one else may delete it while we hold the guard): remove it.
      if ((await readText(file)) === seen) await rm(file, { force: true });
    } finally {
      await rm(guard, { force: true });
    }
  }
  throw new DataDirBusyError(`could not take ${file}: other processes keep creating it`);
}

/**
 * A worker thread's entry as one plain ES module, bundled with esbuild. Node 20 does not carry
 * loader hooks given with --import (tsx) into worker threads, and a worker that loaded tsx itself
 * would carry the transformer in every thread's heap. Used by the operator command's render
 * workers and by the benchmark's (which bundles before its clock starts: a deployment would
 * ship the file prebuilt).
 */
import { writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

export async function bundleWorker(entry: URL, outfile: string): Promise<string> {
  const esbuild = await import('esbuild');
  let code: Uint8Array;
  try {
    // In memory, written here: esbuild builds in a process of its own, which a signal to this
    // one does not stop. Had it written the file, a SIGTERM during the build would have it
    // recreate the temp folder that the signal handler had just removed.
    const result = await esbuild.build({
      entryPoints: [fileURLToPath(entry)],
      bundle: true,
      platform: 'node',
      format: 'esm',
      target: 'node20',
      outfile,
      write: false,
      logLevel: 'error',
    });
    const output = result.outputFiles[0];
    if (!output) throw new Error(`esbuild produced no output for ${fileURLToPath(entry)}`);
    code = output.contents;
  } finally {
    // esbuild keeps its process for later builds: stopped, so it never holds this one open.
    await esbuild.stop();
  }
  // Synchronously: a signal handler (which removes the temp folder) cannot run halfway through.
  writeFileSync(outfile, code, { mode: 0o600 });
  return outfile;
}

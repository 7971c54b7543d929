/**
 * A worker thread's entry as one plain ES module, bundled with esbuild. Node 20 does not carry
 * loader hooks given with --import (tsx) into worker threads, and a worker that loaded tsx itself
 * would carry the transformer in every thread's heap. Used by the operator command's render
 * workers and by the benchmark's (which bundles before its clock starts: a deployment would
 * ship the file prebuilt).
 */
import { fileURLToPath } from 'node:url';

export async function bundleWorker(entry: URL, outfile: string): Promise<string> {
  const esbuild = await import('esbuild');
  try {
    await esbuild.build({
      entryPoints: [fileURLToPath(entry)],
      bundle: true,
      platform: 'node',
      format: 'esm',
      target: 'node20',
      outfile,
      logLevel: 'error',
    });
  } finally {
    // esbuild keeps a child process for later builds: stopped, so it never holds the process open.
    await esbuild.stop();
  }
  return outfile;
}

import { mkdtemp, rm, mkdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { AddressInfo } from 'node:net';
import dynalite from 'dynalite';
import S3rver from 's3rver';
import { startFauxqs, type FauxqsServer } from 'fauxqs';
import { closeDynaliteIteratorsOnDestroy } from './dynalite-iterators';
import { hardenPutObject, type S3rverFilesystemStore } from './s3rver-store';

export type Emulators = {
  dynamoEndpoint: string;
  s3Endpoint: string;
  sqsEndpoint: string;
  fauxqs: FauxqsServer;
  stop(): Promise<void>;
};

/**
 * dynalite (DynamoDB), s3rver (S3) and fauxqs (SQS), each on a free port of 127.0.0.1.
 * dynalite keeps its data under `dataDir/dynamodb` when a dataDir is given (npm start), in
 * memory otherwise (tests); s3rver always uses a folder (under dataDir, or a temp dir that
 * stop() removes).
 */
export async function startEmulators(options: { dataDir?: string } = {}): Promise<Emulators> {
  // Every Query page cut at 1 MB left a LevelDB iterator open (dynalite-iterators.ts).
  closeDynaliteIteratorsOnDestroy();
  const dynamo = dynalite(options.dataDir ? { path: join(options.dataDir, 'dynamodb'), createTableMs: 0 } : { createTableMs: 0 });
  await new Promise<void>((resolve, reject) => {
    dynamo.once('error', reject);
    dynamo.listen(0, '127.0.0.1', () => resolve());
  });
  const dynamoPort = (dynamo.address() as AddressInfo).port;

  let s3Dir: string;
  let removeS3Dir = false;
  if (options.dataDir) {
    s3Dir = join(options.dataDir, 's3');
    await mkdir(s3Dir, { recursive: true });
  } else {
    s3Dir = await mkdtemp(join(tmpdir(), 'export-s3-'));
    removeS3Dir = true;
  }
  const s3 = new S3rver({ address: '127.0.0.1', port: 0, silent: true, directory: s3Dir });
  // A PUT racing the delete of its folder's last object crashed the process (s3rver-store.ts).
  hardenPutObject(s3.store as S3rverFilesystemStore);
  const s3Address = await s3.run();

  const fauxqs = await startFauxqs({ port: 0, host: '127.0.0.1', logger: false, messageSpies: true });

  return {
    dynamoEndpoint: `http://127.0.0.1:${dynamoPort}`,
    s3Endpoint: `http://127.0.0.1:${s3Address.port}`,
    sqsEndpoint: `http://127.0.0.1:${fauxqs.port}`,
    fauxqs,
    async stop() {
      await fauxqs.stop().catch(() => undefined);
      await s3.close().catch(() => undefined);
      await new Promise<void>((resolve) => dynamo.close(() => resolve()));
      if (removeS3Dir) await rm(s3Dir, { recursive: true, force: true });
    },
  };
}

export type SeedOptions = {
  dataDir?: string | undefined;
  channelId?: string;
  users?: number;
  cases?: number;
  seed?: number;
  log?: (line: string) => void;
};

/** Seeds a demo workspace unless one is there. Filled in against the domain generator. */
export async function seedIfEmpty(_options: SeedOptions): Promise<{ channelId: string; users: number; cases: number } | undefined> {
  throw new Error('seeding needs the domain generator (shared/domain/generator.ts), not available yet');
}

import { createRequire } from 'node:module';

/** The part of abstract-level's iterator classes the shim touches. */
type IteratorPrototype = { close(): Promise<void>; return?: () => Promise<{ done: true; value: undefined }> };

/**
 * dynalite (the local DynamoDB) reads a Query through a stream over an abstract-level iterator,
 * and when the stream stops early (a page cut at DynamoDB's 1 MB, which is every page of a
 * large shard) its destroy() closes the iterator by `iterator.return()`, which abstract-level 3's
 * iterators do not have: each such page left an iterator open, with its LevelDB snapshot and
 * read buffers, until the database closed. A 1,000,000-row export left 48 per export, and the
 * local stack's process grew by ~100 MB an export and never shrank (a heap snapshot showed them
 * held by the database's resource set). Giving the iterators the `return()` dynalite calls,
 * closing them, keeps memory flat (and the exports faster). Local stack only: DynamoDB on AWS
 * is not this code. Resolved from dynalite's own dependencies, so it patches the copy dynalite
 * uses; idempotent.
 */
export function closeDynaliteIteratorsOnDestroy(): void {
  const fromDynalite = createRequire(createRequire(import.meta.url).resolve('dynalite'));
  const { AbstractIterator } = fromDynalite('abstract-level') as { AbstractIterator: { prototype: object } };
  // The common base of the entry, key and value iterators.
  const common = Object.getPrototypeOf(AbstractIterator.prototype) as IteratorPrototype;
  if (typeof common.return === 'function') return;
  Object.defineProperty(common, 'return', {
    configurable: true,
    writable: true,
    value: async function (this: IteratorPrototype) {
      await this.close();
      return { done: true as const, value: undefined };
    },
  });
}

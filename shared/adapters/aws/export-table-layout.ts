import { exportJobSchema } from '../../app/export-job';

/**
 * Job attributes the exports table's `gsi1` (the caller's exports, newest first) leaves out. It
 * is what a listed export never needs and what makes the item large:
 * - `definition`: the export's pinned profile schemas and segment, up to
 *   DEFINITION_INLINE_MAX_BYTES of JSON; chunks and the finalizer read it from the table itself.
 * - `doneChunks` (the completed-chunk set, not part of ExportJob) and the `*Claim` leases are
 *   store bookkeeping, left out by not being ExportJob fields.
 * Why it matters: every chunk rewrites the job item, and an index projecting ALL attributes
 * writes the whole item again per change (twice the write units of the base write on a
 * partition every chunk of the export shares); projecting less keeps those index writes small,
 * and updates that change only left-out attributes (a lease, the chunk set) write no index item.
 */
const LEFT_OUT_OF_JOB_INDEX = new Set<string>(['definition']);

/**
 * The non-key attributes gsi1 projects (INCLUDE): every ExportJob field but those above, read
 * from the schema so a field added to jobs is listed without anyone remembering this index.
 * One list for the CDK table and the local stack's table, so the two cannot differ.
 */
export const JOB_INDEX_ATTRIBUTES: readonly string[] = Object.keys(exportJobSchema.shape).filter(
  (field) => !LEFT_OUT_OF_JOB_INDEX.has(field),
);

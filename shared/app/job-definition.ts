import { createHash } from 'node:crypto';
import { DomainError, resolveSegment } from '../domain';
import type { ObjectStore } from '../ports/object-store';
import type { WorkspaceSource } from '../ports/source-data';
import { jobDefinitionSchema, type ExportJob, type JobDefinition } from './export-job';
import { objectKeys } from './messages';
import { loadProfileSchemas, loadSegment, type RowConditions } from './workspace-context';

/**
 * Largest definition kept inside the job item (UTF-8 bytes of its JSON). Every chunk of an export
 * rewrites the job item (its completion, the counters), and DynamoDB charges a write by the
 * item's whole size, one write unit a KB, all on the one partition the export's chunks share
 * (about 1,000 units a second): a 100 KB definition made each completion cost ~100 units, so
 * ~10 completions a second could land. At this size a profile schema of ~100 keys stays inline
 * (no S3 read per chunk) and the item's writes stay around 20 units. The item's budget
 * (DynamoDB: 400 KB per item, attribute names included):
 * - the request's filter: at most MAX_FILTER_BYTES (100,000) of JSON, up to ~150 KB stored
 *   (a list of one-digit numbers takes 3 bytes an element in DynamoDB, 2 in JSON);
 * - the definition: at most this, the same ~1.5x at worst;
 * - the rest (encryption params, the completed-chunk set of up to ~700 ids, a 500-character
 *   reason, names, timestamps, flags): under 25 KB.
 * A larger definition goes to S3 instead of being refused, since a workspace with a huge schema,
 * or a segment with a long `in` list, must still export; test/pipeline/job-definition.test.ts
 * measures the item with DynamoDB's size rules.
 */
export const DEFINITION_INLINE_MAX_BYTES = 16_384;

/**
 * Reads, at the request, everything the export's rows and columns depend on: the profile
 * schemas and (scope `segment`) the segment's conditions, validated (SEGMENT_NOT_FOUND,
 * SEGMENT_INVALID). The caller compiles the row predicate from it (compileRequestPredicate) to
 * refuse a filter the schema rejects before any job exists. `source` must not be a cache: this
 * copy is the one every chunk uses (C4: the segment's conditions as they are at this use).
 */
export async function resolveJobDefinition(request: RowConditions, workspace: { source: WorkspaceSource; channelId: string }): Promise<JobDefinition> {
  const segmentId = request.kind === 'contacts' && request.scope === 'segment' ? (request.segmentId ?? '') : undefined;
  const [schemas, segment] = await Promise.all([
    loadProfileSchemas(workspace.source, workspace.channelId),
    segmentId === undefined ? undefined : loadSegment(workspace.source, workspace.channelId, segmentId),
  ]);
  if (segmentId === undefined) return schemas;
  return { ...schemas, segmentFilter: resolveSegment(segment, segmentId) };
}

/**
 * Where the job keeps its definition: inline when it fits DEFINITION_INLINE_MAX_BYTES, else in
 * an S3 object written now, before the job exists (a job never points at a missing object; a
 * crash leaves an orphan that the parts/ lifecycle rule collects).
 */
export async function storeJobDefinition(
  exportId: string,
  definition: JobDefinition,
  objects: Pick<ObjectStore, 'put'>,
  maxInlineBytes = DEFINITION_INLINE_MAX_BYTES,
): Promise<Pick<ExportJob, 'definition' | 'definitionKey'>> {
  const json = JSON.stringify(definition);
  if (Buffer.byteLength(json, 'utf8') <= maxInlineBytes) return { definition };
  const key = objectKeys.definition(exportId, createHash('sha256').update(json).digest('hex'));
  await objects.put(key, json, { contentType: 'application/json' });
  return { definitionKey: key };
}

/**
 * An object a job points at under `parts/` (its definition, a selection's id batch) is gone: the
 * bucket's lifecycle rule deletes `parts/` after a day, so an export that waited longer (a
 * dispatch resumed days later, a chunk backlog through an outage) cannot be built any more. A
 * domain error, so the chunk or finalizer fails the export at once with this code instead of
 * retrying into a generic dead letter. The message (shown to the manager) names no internal key.
 */
export class ExportDataExpiredError extends DomainError {
  constructor(
    what: 'request' | 'selection',
    /** For the log. */
    readonly key: string,
  ) {
    super('EXPORT_DATA_EXPIRED', `the export waited longer than its stored ${what} is kept (1 day) and can no longer be built; request the export again`);
  }
}

/** The job's definition object is gone (ExportDataExpiredError). */
export class DefinitionMissingError extends ExportDataExpiredError {
  constructor(key: string) {
    super('request', key);
  }
}

/**
 * The definition chunks and the finalizer build the export from. A job created before
 * definitions were pinned (still in flight across a deploy) has none: its profile schemas are
 * read from the workspace now, and its segment by compileRequestPredicate, as that version did.
 * `workspace` must then be uncached, so those jobs at least see the workspace as it is (the
 * finalizer's COLUMNS_CHANGED check still catches a schema changed between its chunks).
 */
export async function loadJobDefinition(
  job: Pick<ExportJob, 'channelId' | 'definition' | 'definitionKey'>,
  deps: { objects: Pick<ObjectStore, 'getBuffer'>; workspace: WorkspaceSource },
): Promise<JobDefinition> {
  if (job.definition) return job.definition;
  if (job.definitionKey) {
    const body = await deps.objects.getBuffer(job.definitionKey);
    if (!body) throw new DefinitionMissingError(job.definitionKey);
    return jobDefinitionSchema.parse(JSON.parse(body.toString('utf8')));
  }
  return loadProfileSchemas(deps.workspace, job.channelId);
}

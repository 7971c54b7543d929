import { createHash } from 'node:crypto';
import {
  caseColumns,
  compileFilter,
  directorySchema,
  profileSchemaSchema,
  resolveSegment,
  segmentSchema,
  userColumns,
  ValidationError,
  type ChannelSettings,
  type ColumnSpec,
  type Directory,
  type Predicate,
  type ProfileSchema,
  type Segment,
} from '../domain';
import type { RawItem, WorkspaceSource } from '../ports/source-data';
import { CELL_STYLES_VERSION } from '../xlsx';
import type { ExportJob, JobDefinition, JobRequest, SheetKey } from './export-job';

/**
 * WORKSPACE_TABLE items (pk = channelId): `SETTINGS` (channel settings), `PROFILE_SCHEMA#users`,
 * `PROFILE_SCHEMA#chats`, `DIRECTORY` (teams and managers), `SEGMENT#{id}`.
 */
export const workspaceSk = {
  settings: 'SETTINGS',
  userProfileSchema: 'PROFILE_SCHEMA#users',
  chatProfileSchema: 'PROFILE_SCHEMA#chats',
  directory: 'DIRECTORY',
  segment: (id: string) => `SEGMENT#${id}`,
};

/** The two profile schemas: what an export's columns and a filter's profile field kinds come from. */
export type ProfileSchemas = { userProfileSchema: ProfileSchema; chatProfileSchema: ProfileSchema };

const EMPTY_SCHEMA: ProfileSchema = { keys: [] };

function dropSk(item: RawItem | null): RawItem | null {
  if (!item) return null;
  const { sk: _sk, ...rest } = item;
  return rest;
}

/** The two profile schemas as the workspace holds them now; a missing one has no keys. */
export async function loadProfileSchemas(source: WorkspaceSource, channelId: string): Promise<ProfileSchemas> {
  const [users, chats] = await Promise.all([
    source.getItem(channelId, workspaceSk.userProfileSchema),
    source.getItem(channelId, workspaceSk.chatProfileSchema),
  ]);
  return {
    userProfileSchema: users ? profileSchemaSchema.parse(dropSk(users)) : EMPTY_SCHEMA,
    chatProfileSchema: chats ? profileSchemaSchema.parse(dropSk(chats)) : EMPTY_SCHEMA,
  };
}

/** Team and manager names for the case rows. */
export async function loadDirectory(source: WorkspaceSource, channelId: string): Promise<Directory> {
  const item = await source.getItem(channelId, workspaceSk.directory);
  return item ? directorySchema.parse(dropSk(item)) : { teams: [], managers: [] };
}

export async function loadSegment(source: WorkspaceSource, channelId: string, segmentId: string): Promise<Segment | undefined> {
  const item = await source.getItem(channelId, workspaceSk.segment(segmentId));
  return item ? segmentSchema.parse(dropSk(item)) : undefined;
}

/** The parts of a request (as sent, or as its job keeps it) that choose the rows. */
export type RowConditions = Pick<JobRequest, 'kind' | 'scope' | 'filter' | 'segmentId' | 'query'>;

/**
 * The predicate the main sheet's rows must pass. The API compiles it to refuse a request early
 * (a filter naming a profile key the schema lacks or has archived), and every chunk compiles it
 * again from the job's definition, so all of them evaluate the same conditions against the same
 * profile schema. Throws the domain's errors. Date-only filter values are calendar days in
 * `timeZone` (S6).
 *
 * A segment's conditions come from `definition.segmentFilter`, read at the request. A job
 * created before that was pinned has none: its segment is read from `workspace` here, as it was
 * then (a segment deleted meanwhile fails with SEGMENT_NOT_FOUND).
 */
export async function compileRequestPredicate(
  request: RowConditions,
  definition: JobDefinition,
  workspace: { source: WorkspaceSource; channelId: string },
  at: { now: Date; timeZone: string },
): Promise<Predicate> {
  // Jobs keep the filter in their definition (their request holds FILTER_IN_DEFINITION, which
  // fails to compile if the definition ever lacks it); jobs created before that, in the request.
  const filter = definition.requestFilter !== undefined ? definition.requestFilter : request.filter;
  if (request.kind === 'cases') {
    return compileFilter(filter, 'cases', { now: at.now, timeZone: at.timeZone, profileSchema: definition.chatProfileSchema });
  }
  const base = { now: at.now, query: request.query, profileSchema: definition.userProfileSchema, timeZone: at.timeZone };
  switch (request.scope) {
    case 'filter':
      return compileFilter(filter, 'users', base);
    case 'segment': {
      const segmentId = request.segmentId ?? '';
      const filter =
        definition.segmentFilter !== undefined
          ? definition.segmentFilter
          : resolveSegment(await loadSegment(workspace.source, workspace.channelId, segmentId), segmentId);
      try {
        return compileFilter(filter, 'users', base);
      } catch (error) {
        throw asSegmentError(error);
      }
    }
    default:
      return compileFilter(undefined, 'users', base);
  }
}

/**
 * A segment's saved conditions that no longer fit the workspace (a key archived or retyped since
 * it was saved) are the segment's fault, not the request's: the request sent no `filter`, so the
 * error says SEGMENT_INVALID (C4) and names the paths inside the segment, as resolveSegment does
 * for a segment that no longer parses. The inner reason (and its rule, e.g. C5) stays in the
 * message and issues.
 */
function asSegmentError(error: unknown): unknown {
  if (!(error instanceof ValidationError)) return error;
  const inSegment = (path: string): string => (path.startsWith('filter') ? `segment.${path}` : path);
  const issues = error.issues.map((i) => ({ ...i, path: inSegment(i.path) }));
  const field = error.field !== undefined ? inSegment(error.field) : 'segmentId';
  return new ValidationError(`the segment's saved conditions no longer validate (rule C4): ${inSegment(error.message)}`, {
    code: 'SEGMENT_INVALID',
    field,
    rule: 'C4',
    issues,
  });
}

/** Items to store for a workspace (seeding and imports). */
export function workspaceItems(input: {
  channel: ChannelSettings;
  userProfileSchema: ProfileSchema;
  chatProfileSchema: ProfileSchema;
  directory: Directory;
  segments: readonly Segment[];
}): RawItem[] {
  return [
    { sk: workspaceSk.settings, ...input.channel },
    { sk: workspaceSk.userProfileSchema, ...input.userProfileSchema },
    { sk: workspaceSk.chatProfileSchema, ...input.chatProfileSchema },
    { sk: workspaceSk.directory, ...input.directory },
    ...input.segments.map((s) => ({ sk: workspaceSk.segment(s.id), ...s })),
  ];
}

export const SHEET_NAMES: Record<SheetKey, string> = { cases: 'UserChatCase data', users: 'User data' };

/** The sheets of a job's workbook, in order. */
export function sheetsOf(job: Pick<ExportJob, 'kind'>): SheetKey[] {
  return job.kind === 'cases' ? ['cases', 'users'] : ['users'];
}

/**
 * Columns of one sheet: chunks and the finalizer both derive them here from the job's
 * definition (job-definition.ts), so they agree.
 */
export function sheetColumns(job: Pick<ExportJob, 'request'>, sheet: SheetKey, schemas: ProfileSchemas): ColumnSpec[] {
  if (sheet === 'cases') {
    return caseColumns({ rangeStart: job.request.from ?? '9999-12-31', profileKeys: schemas.chatProfileSchema.keys });
  }
  return userColumns(schemas.userProfileSchema);
}

/**
 * A short fingerprint of what a part's bytes depend on: each column's key and type, in order, and
 * the cell styles its cells name. Stored with every part; the finalizer compares it with its own
 * and fails the export (COLUMNS_CHANGED) instead of writing misaligned cells or cells naming a
 * style its styles.xml lacks. Headers and widths are left out: only the finalizer writes them (the
 * sheet's prologue), so changing one never strands parts already rendered. With a pinned
 * definition every chunk derives the same columns; the check still guards jobs without one
 * (created before it was pinned) and parts rendered by another code version during a deploy.
 */
export function partFingerprint(columns: readonly ColumnSpec[]): string {
  return shortHash(JSON.stringify({ cells: columns.map((c) => [c.key, c.type]), cellStyles: CELL_STYLES_VERSION }));
}

/**
 * The fingerprints a finalizer of this code accepts: its own, and the one parts carried before
 * they named their cell styles (CELL_STYLES_VERSION 1: the whole column specs, headers and widths
 * included). Those parts' cells only name styles that every later styles.xml still has at the same
 * index, so they stitch as they are; parts of that kind rendered with other headers or widths (the
 * userChatUrl width changed with it) no longer match, and their export fails as COLUMNS_CHANGED.
 */
export function acceptedPartFingerprints(columns: readonly ColumnSpec[]): ReadonlySet<string> {
  return new Set([partFingerprint(columns), shortHash(JSON.stringify(columns))]);
}

function shortHash(text: string): string {
  return createHash('sha256').update(text).digest('hex').slice(0, 16);
}

import { createHash } from 'node:crypto';
import {
  caseColumns,
  channelSettingsSchema,
  compileFilter,
  directorySchema,
  profileSchemaSchema,
  resolveSegment,
  segmentSchema,
  userColumns,
  type ChannelSettings,
  type ColumnSpec,
  type Directory,
  type Predicate,
  type ProfileSchema,
  type Segment,
} from '../domain';
import type { RawItem, WorkspaceSource } from '../ports/source-data';
import type { ExportJob, JobRequest, SheetKey } from './export-job';

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

export type WorkspaceContext = {
  settings: ChannelSettings | undefined;
  userProfileSchema: ProfileSchema;
  chatProfileSchema: ProfileSchema;
  directory: Directory;
};

const EMPTY_SCHEMA: ProfileSchema = { keys: [] };

function dropSk(item: RawItem | null): RawItem | null {
  if (!item) return null;
  const { sk: _sk, ...rest } = item;
  return rest;
}

export async function loadWorkspaceContext(source: WorkspaceSource, channelId: string): Promise<WorkspaceContext> {
  const [settings, schemas, directory] = await Promise.all([
    source.getItem(channelId, workspaceSk.settings),
    loadProfileSchemas(source, channelId),
    source.getItem(channelId, workspaceSk.directory),
  ]);
  return {
    settings: settings ? channelSettingsSchema.parse(dropSk(settings)) : undefined,
    ...schemas,
    directory: directory ? directorySchema.parse(dropSk(directory)) : { teams: [], managers: [] },
  };
}

export type ProfileSchemas = Pick<WorkspaceContext, 'userProfileSchema' | 'chatProfileSchema'>;

/** The two profile schemas alone: all a row predicate needs from the workspace. */
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

export async function loadSegment(source: WorkspaceSource, channelId: string, segmentId: string): Promise<Segment | undefined> {
  const item = await source.getItem(channelId, workspaceSk.segment(segmentId));
  return item ? segmentSchema.parse(dropSk(item)) : undefined;
}

/** The parts of a request (as sent, or as its job keeps it) that choose the rows. */
export type RowConditions = Pick<JobRequest, 'kind' | 'scope' | 'filter' | 'segmentId' | 'query'>;

/** Whether the rows depend on the workspace's profile schemas or a stored segment. */
export function readsWorkspace(request: RowConditions): boolean {
  return request.kind === 'cases' ? request.filter !== undefined : request.scope === 'filter' || request.scope === 'segment';
}

/**
 * The predicate the main sheet's rows must pass, against the workspace as it is now: the API
 * compiles it to refuse a request early, and every chunk compiles it again, since the workspace
 * can change while an export runs. Throws the domain's errors (a filter the profile schema
 * rejects, a segment gone or invalid). Date-only filter values are calendar days in `timeZone` (S6).
 */
export async function compileRequestPredicate(
  request: RowConditions,
  workspace: { source: WorkspaceSource; channelId: string; schemas: ProfileSchemas },
  at: { now: Date; timeZone: string },
): Promise<Predicate> {
  if (request.kind === 'cases') {
    return compileFilter(request.filter, 'cases', { now: at.now, timeZone: at.timeZone, profileSchema: workspace.schemas.chatProfileSchema });
  }
  const base = { now: at.now, query: request.query, profileSchema: workspace.schemas.userProfileSchema, timeZone: at.timeZone };
  switch (request.scope) {
    case 'filter':
      return compileFilter(request.filter, 'users', base);
    case 'segment': {
      const segmentId = request.segmentId ?? '';
      // Segments are saved conditions, re-evaluated now (C4).
      const filter = resolveSegment(await loadSegment(workspace.source, workspace.channelId, segmentId), segmentId);
      return compileFilter(filter, 'users', base);
    }
    default:
      return compileFilter(undefined, 'users', base);
  }
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

/** Columns of one sheet: chunks and the finalizer both derive them here, so they agree. */
export function sheetColumns(job: Pick<ExportJob, 'request'>, sheet: SheetKey, ctx: WorkspaceContext): ColumnSpec[] {
  if (sheet === 'cases') {
    return caseColumns({ rangeStart: job.request.from ?? '9999-12-31', profileKeys: ctx.chatProfileSchema.keys });
  }
  return userColumns(ctx.userProfileSchema);
}

/**
 * A short fingerprint of the columns, stored with every part: if the profile schema changed
 * while an export ran, the finalizer sees parts rendered with different columns and fails the
 * export instead of writing misaligned cells.
 */
export function columnsFingerprint(columns: readonly ColumnSpec[]): string {
  return createHash('sha256').update(JSON.stringify(columns)).digest('hex').slice(0, 16);
}

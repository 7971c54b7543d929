import { createHash } from 'node:crypto';
import {
  caseColumns,
  channelSettingsSchema,
  directorySchema,
  profileSchemaSchema,
  segmentSchema,
  userColumns,
  type ChannelSettings,
  type ColumnSpec,
  type Directory,
  type ProfileSchema,
  type Segment,
} from '../domain';
import type { RawItem, WorkspaceSource } from '../ports/source-data';
import type { ExportJob, SheetKey } from './export-job';

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
  const [settings, users, chats, directory] = await Promise.all([
    source.getItem(channelId, workspaceSk.settings),
    source.getItem(channelId, workspaceSk.userProfileSchema),
    source.getItem(channelId, workspaceSk.chatProfileSchema),
    source.getItem(channelId, workspaceSk.directory),
  ]);
  return {
    settings: settings ? channelSettingsSchema.parse(dropSk(settings)) : undefined,
    userProfileSchema: users ? profileSchemaSchema.parse(dropSk(users)) : EMPTY_SCHEMA,
    chatProfileSchema: chats ? profileSchemaSchema.parse(dropSk(chats)) : EMPTY_SCHEMA,
    directory: directory ? directorySchema.parse(dropSk(directory)) : { teams: [], managers: [] },
  };
}

export async function loadSegment(source: WorkspaceSource, channelId: string, segmentId: string): Promise<Segment | undefined> {
  const item = await source.getItem(channelId, workspaceSk.segment(segmentId));
  return item ? segmentSchema.parse(dropSk(item)) : undefined;
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

export type { ApiDeps, DeriveKeys, DownloadLinks, DownloadUrlSigner, ExportDispatcher } from './deps';
export { IdempotencyKeyReusedError, LinkGoneError, queryIssues, repeatedQueryParameters, unexpectedParameterIssues, unexpectedQueryParameters } from './errors';
export { requestExport, requestedEvent, IDEMPOTENCY_TTL_SECONDS, type RequestExportResult } from './request-export';
export { cancelExport, getExport, listExports, listExportsQuerySchema } from './read-exports';
export { revokeExport } from './revoke-export';
export { checkDownloadLink, downloadFile, type DownloadRequest } from './download-file';
export { listAudit, listAuditQuerySchema, listDownloadsQuerySchema, listExportDownloads, type AuditEntryView, type AuditPageView } from './list-audit';
export { exportLinks, toExportView, type ExportView } from './view';

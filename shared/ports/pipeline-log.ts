/** Structured logging as the use cases need it (Powertools Logger fits). Never pass secrets or row data. */
export interface PipelineLog {
  info(message: string, extra?: Record<string, unknown>): void;
  warn(message: string, extra?: Record<string, unknown>): void;
  error(message: string, extra?: Record<string, unknown>): void;
}

export const silentLog: PipelineLog = { info: () => undefined, warn: () => undefined, error: () => undefined };

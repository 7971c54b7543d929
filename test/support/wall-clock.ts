const formatters = new Map<string, Intl.DateTimeFormat>();

/** Every field of a wall-clock reading to the second, on a 24-hour clock: the tests' Intl oracle options. */
export const WALL_CLOCK_FIELDS = {
  hourCycle: 'h23',
  year: 'numeric',
  month: '2-digit',
  day: '2-digit',
  hour: '2-digit',
  minute: '2-digit',
  second: '2-digit',
} as const satisfies Intl.DateTimeFormatOptions;

/**
 * Wall-clock time of an instant in a zone, as epoch ms of that wall clock read as UTC (what Excel
 * stores: a serial with no zone). Computed with Intl, independently of the engine's own offset
 * cache, so tests compare the engine against an oracle rather than against itself.
 */
export function localWallClockMs(instantMs: number, timeZone: string): number {
  let fmt = formatters.get(timeZone);
  if (!fmt) {
    fmt = new Intl.DateTimeFormat('en-US', { timeZone, ...WALL_CLOCK_FIELDS });
    formatters.set(timeZone, fmt);
  }
  const p = Object.fromEntries(fmt.formatToParts(new Date(instantMs)).map((x) => [x.type, x.value]));
  const wall = Date.UTC(Number(p.year), Number(p.month) - 1, Number(p.day), Number(p.hour), Number(p.minute), Number(p.second));
  return wall + (((instantMs % 1000) + 1000) % 1000);
}

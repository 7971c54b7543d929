import { describe, expect, it } from 'vitest';
import {
  addDays,
  calendarRangeToInstants,
  compareCalendarDates,
  compileFilter,
  formatCalendarDate,
  mulberry32,
  parseCalendarDate,
  startOfDayInZone,
  userRecordSchema,
  wallTimeToInstant,
  type CalendarDate,
} from '../../shared/domain';
import { profileDateText } from '../../shared/domain/columns/profile-values';
import { WALL_CLOCK_FIELDS } from '../support/wall-clock';
import { createZoneOffsetLookup } from '../../shared/zone-offset';

/**
 * Day starts and wall times on days where an offset change turns the clock back from just after
 * midnight into the day before, so the day's midnight comes twice (docs/domain.md: "the first
 * instant of `from`", "a repeated wall time is the earlier instant"). Expected instants were
 * checked against Python's zoneinfo (Debian tzdata); the property test below needs no oracle.
 */

const HOUR = 3_600_000;
const DAY = 86_400_000;
const iso = (ms: number | undefined) => (ms === undefined ? 'undefined' : new Date(ms).toISOString());
const date = (text: string): CalendarDate => parseCalendarDate(text)!;
const start = (day: string, zone: string) => iso(startOfDayInZone(date(day), zone));
const wall = (day: string, hour: number, minute: number, zone: string) => iso(wallTimeToInstant(date(day), hour, minute, 0, 0, zone));

describe('a day whose midnight comes twice starts at the first', () => {
  it.each([
    // +11 until 02:00 on the 5th, then +8: 00:00-02:00 shows twice.
    ['Antarctica/Casey', '2010-03-05', '2010-03-04T13:00:00.000Z'],
    // +11 (daylight) until 00:01 on the 26th, then +10.
    ['Pacific/Guam', '1969-01-26', '1969-01-25T13:00:00.000Z'],
    ['Pacific/Saipan', '1969-01-26', '1969-01-25T13:00:00.000Z'],
    // Daylight time (-2:30) ended at 00:01 each autumn 1987-2010.
    ['America/St_Johns', '1987-10-25', '1987-10-25T02:30:00.000Z'],
    ['Canada/Newfoundland', '2005-10-30', '2005-10-30T02:30:00.000Z'],
    ['America/Goose_Bay', '1990-10-28', '1990-10-28T03:00:00.000Z'],
    ['America/Moncton', '1995-10-29', '1995-10-29T03:00:00.000Z'],
    // War time (-6) ended at 00:01 on 1944-01-01, and again on 1944-10-01.
    ['America/Phoenix', '1944-01-01', '1944-01-01T06:00:00.000Z'],
    ['America/Phoenix', '1944-10-01', '1944-10-01T06:00:00.000Z'],
    ['US/Arizona', '1944-01-01', '1944-01-01T06:00:00.000Z'],
  ])('%s %s starts at %s', (zone, day, expected) => {
    expect(start(day, zone)).toBe(expected);
    // Its midnight is that instant, and a range of that day starts there too.
    expect(wall(day, 0, 0, zone)).toBe(expected);
    expect(iso(profileDateText(day, zone))).toBe(expected);
    expect(iso(calendarRangeToInstants(day, day, zone).startMs)).toBe(expected);
  });

  it('the day after such a day starts at its own (single) midnight', () => {
    expect(iso(calendarRangeToInstants('1987-10-25', '1987-10-25', 'America/St_Johns').endMsExclusive)).toBe('1987-10-26T03:30:00.000Z');
    expect(start('2010-03-06', 'Antarctica/Casey')).toBe('2010-03-05T16:00:00.000Z');
  });

  it('a repeated wall time is the earlier instant (Antarctica/Casey 2010-03-05 00:30 is 13:30Z, not 16:30Z)', () => {
    expect(wall('2010-03-05', 0, 30, 'Antarctica/Casey')).toBe('2010-03-04T13:30:00.000Z');
    expect(iso(profileDateText('2010-03-05T00:30', 'Antarctica/Casey'))).toBe('2010-03-04T13:30:00.000Z');
    expect(wall('2010-03-05', 1, 59, 'Antarctica/Casey')).toBe('2010-03-04T14:59:00.000Z');
    // 02:00 shows once, after the change.
    expect(wall('2010-03-05', 2, 0, 'Antarctica/Casey')).toBe('2010-03-04T18:00:00.000Z');
    // In St. John's only 00:00-00:01 repeats; 00:30 shows once, in standard time.
    expect(wall('1987-10-25', 0, 0, 'America/St_Johns')).toBe('1987-10-25T02:30:00.000Z');
    expect(wall('1987-10-25', 0, 30, 'America/St_Johns')).toBe('1987-10-25T04:00:00.000Z');
    expect(wall('1969-01-26', 0, 30, 'Pacific/Guam')).toBe('1969-01-25T14:30:00.000Z');
  });

  it('a date-only profile value and the same day at 00:00 are the same instant, and a filter on that day finds both', () => {
    const zone = 'America/St_Johns';
    expect(profileDateText('1987-10-25', zone)).toBe(profileDateText('1987-10-25T00:00', zone));
    const schema = { keys: [{ key: 'since', type: 'date' as const, order: 0, archived: false }] };
    const people = [
      userRecordSchema.parse({ id: 'midnight', createdAt: 0, profile: { since: '1987-10-25T00:00' } }),
      userRecordSchema.parse({ id: 'day', createdAt: 0, profile: { since: '1987-10-25' } }),
      userRecordSchema.parse({ id: 'before', createdAt: 0, profile: { since: '1987-10-24T23:59:59' } }),
    ];
    const on = (day: string) =>
      people
        .filter(
          compileFilter({ join: 'and', groups: [{ join: 'and', conditions: [{ field: 'profile.since', op: 'eq', value: day }] }] }, 'users', {
            now: new Date('2025-07-01T00:00:00Z'),
            timeZone: zone,
            profileSchema: schema,
          }),
        )
        .map((u) => u.id);
    expect(on('1987-10-25')).toEqual(['midnight', 'day']);
    expect(on('1987-10-24')).toEqual(['before']);
  });

  it('unchanged: midnight skipped (America/Santiago), a day no instant shows (Pacific/Apia), a DST gap', () => {
    expect(start('2022-09-11', 'America/Santiago')).toBe('2022-09-11T04:00:00.000Z');
    expect(start('2011-12-30', 'Pacific/Apia')).toBe('2011-12-30T10:00:00.000Z');
    expect(calendarRangeToInstants('2011-12-30', '2011-12-30', 'Pacific/Apia')).toEqual({
      startMs: Date.parse('2011-12-30T10:00:00Z'),
      endMsExclusive: Date.parse('2011-12-30T10:00:00Z'),
    });
    expect(wall('2025-03-09', 2, 30, 'America/New_York')).toBe('2025-03-09T07:30:00.000Z');
    expect(wall('2025-11-02', 1, 30, 'America/New_York')).toBe('2025-11-02T05:30:00.000Z');
  });
});

describe('property: every zone, days around each offset change 1900-2060 (Intl self-consistency)', () => {
  // Every zone's offset changes found by reading the offset every 60 days and bisecting a
  // difference to the second: cheap enough for all zones (~1,000,000 Intl calls). A summer time
  // shorter than the step (Brazil 2000, a week) is not found: 150 of ~32,000 changes. For each change, the local days just before and after it
  // and, chosen by a seeded generator, a neighbour; checked in a shuffled order, so days are
  // looked up both with and without the day before already cached.
  const STEP = 60 * DAY;
  const FIRST = Date.UTC(1900, 0, 1);
  const END = Date.UTC(2061, 0, 1);
  // Days no instant shows (a zone moving across the date line to the west of it): their start
  // is the next day's. Kanton was Enderbury until ICU 72.
  const SKIPPED = ['Pacific/Apia 2011-12-30', 'Pacific/Fakaofo 2011-12-30', 'Pacific/Kwajalein 1993-08-21', 'Pacific/Kanton 1994-12-31', 'Pacific/Enderbury 1994-12-31', 'Pacific/Kiritimati 1994-12-31'];

  it('each start shows the day, the instant before an earlier day, and nothing in the 36 h before shows the day', () => {
    const rng = mulberry32(20_240_601);
    const failures: string[] = [];
    const skipped: string[] = [];
    let days = 0;
    let transitions = 0;
    for (const zone of Intl.supportedValuesOf('timeZone')) {
      const offsetAt = createZoneOffsetLookup(zone);
      // The truth: Intl's own text, not the project's offset arithmetic. `sv-SE` is ISO-like
      // (`1987-10-25 00:00:00`), so text order is time order for four-digit years.
      const format = new Intl.DateTimeFormat('sv-SE', { timeZone: zone, ...WALL_CLOCK_FIELDS });
      const localText = (ms: number) => format.format(ms);
      const changes: number[] = [];
      let t = FIRST;
      let offset = offsetAt(t);
      while (t < END) {
        const next = offsetAt(t + STEP);
        if (next !== offset) {
          let a = t / 1000;
          let b = (t + STEP) / 1000;
          while (b - a > 1) {
            const mid = Math.floor((a + b) / 2);
            if (offsetAt(mid * 1000) === offset) a = mid;
            else b = mid;
          }
          changes.push(b * 1000);
        }
        offset = next;
        t += STEP;
      }
      transitions += changes.length;
      const picked = new Set<string>();
      for (const change of changes) {
        const before = date(localText(change - 1).slice(0, 10));
        const after = date(localText(change).slice(0, 10));
        // Both days and any between, which a change across the date line skips.
        picked.add(formatCalendarDate(before));
        for (let d = before; compareCalendarDates(d, after) < 0; d = addDays(d, 1)) picked.add(formatCalendarDate(addDays(d, 1)));
        picked.add(formatCalendarDate(after));
        picked.add(formatCalendarDate(addDays(rng() < 0.5 ? before : after, rng() < 0.5 ? -1 : 1)));
      }
      const order = [...picked];
      for (let i = order.length - 1; i > 0; i--) {
        const j = Math.floor(rng() * (i + 1));
        [order[i], order[j]] = [order[j]!, order[i]!];
      }
      for (const ds of order) {
        days++;
        const day = date(ds);
        const s = startOfDayInZone(day, zone);
        const startText = localText(s);
        const shown = startText.slice(0, 10);
        const before = localText(s - 1).slice(0, 10);
        const fail = (what: string) => failures.push(`${zone} ${ds}: ${what} (start ${iso(s)} shows ${startText})`);
        if (shown !== ds) {
          if (shown > ds && before < ds) skipped.push(`${zone} ${ds}`);
          else fail('start does not show the day');
        }
        if (!(before < ds)) fail(`1 ms before shows ${before}`);
        // Local time only rises between offset changes, so within [s - 36 h, s) the latest local
        // day is shown just before a change or at s - 1: none of them may reach the day.
        for (const change of changes) {
          if (change > s - 36 * HOUR && change < s && !(localText(change - 1).slice(0, 10) < ds)) fail(`${iso(change - 1)} shows ${localText(change - 1)}`);
        }
        // The day's midnight, when it shows, is the day's first instant: the earlier of two.
        if (startText.endsWith(' 00:00:00') && wallTimeToInstant(day, 0, 0, 0, 0, zone) !== s) fail(`00:00 is ${iso(wallTimeToInstant(day, 0, 0, 0, 0, zone))}`);
        if (startOfDayInZone(addDays(day, 1), zone) < s) fail('the next day starts earlier');
      }
    }
    expect(failures.slice(0, 20)).toEqual([]);
    expect(skipped).toContain('Pacific/Apia 2011-12-30');
    for (const day of skipped) expect(SKIPPED).toContain(day);
    // The scan found the changes (about 32,000 in ICU's data), so the test tested something.
    expect(transitions).toBeGreaterThan(25_000);
    expect(days).toBeGreaterThan(60_000);
  });
});

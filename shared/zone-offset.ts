/**
 * Zone offsets and civil day numbers, with no dependencies: the xlsx engine (date cells) and the
 * domain (calendar days, profile date text) both read them, and the engine imports nothing from
 * the domain.
 */

const DAY_MS = 86_400_000;

export function isLeapYear(year: number): boolean {
  return (year % 4 === 0 && year % 100 !== 0) || year % 400 === 0;
}

/** Days in a month (1-12) of a proleptic Gregorian year. */
export function daysInMonth(year: number, month: number): number {
  if (month === 2) return isLeapYear(year) ? 29 : 28;
  return month === 4 || month === 6 || month === 9 || month === 11 ? 30 : 31;
}

/**
 * Days since 1970-01-01 of a proleptic Gregorian date, by arithmetic (H. Hinnant's
 * days_from_civil). Not Date.UTC: it reads years 0-99 as 1900-1999, so `0001-01-01` would
 * become a date in 1900.
 */
export function daysFromCivil(year: number, month: number, day: number): number {
  const y = month <= 2 ? year - 1 : year;
  const era = Math.floor(y / 400);
  const yoe = y - era * 400;
  const doy = Math.floor((153 * (month > 2 ? month - 3 : month + 9) + 2) / 5) + day - 1;
  const doe = yoe * 365 + Math.floor(yoe / 4) - Math.floor(yoe / 100) + doy;
  return era * 146_097 + doe - 719_468;
}

/**
 * Offset of a zone from UTC at an instant, in ms, exact to the second (LMT offsets have seconds).
 * Reads `format()`'s text (`9/9/2001 AD, 10:46:40`) rather than `formatToParts`, which costs
 * ~4x as much; the text's field order is checked against formatToParts once per zone, and if a
 * runtime's locale data ever orders them differently, formatToParts is used throughout.
 */
export function createZoneOffsetLookup(timeZone: string): (epochMs: number) => number {
  const format = new Intl.DateTimeFormat('en-US', {
    timeZone,
    hourCycle: 'h23',
    era: 'short',
    year: 'numeric',
    month: 'numeric',
    day: 'numeric',
    hour: 'numeric',
    minute: 'numeric',
    second: 'numeric',
  });
  const fields = [0, 0, 0, 0, 0, 0]; // month, day, year, hour, minute, second
  const fromText = (whole: number): boolean => {
    const text = format.format(whole);
    let k = 0;
    let n = -1;
    for (let i = 0; i < text.length; i++) {
      const c = text.charCodeAt(i);
      if (c >= 48 && c <= 57) n = (n < 0 ? 0 : n * 10) + (c - 48);
      else if (n >= 0) {
        if (k < 6) fields[k] = n;
        k++;
        n = -1;
      }
    }
    if (n >= 0) {
      if (k < 6) fields[k] = n;
      k++;
    }
    if (k !== 6) return false;
    if (text.includes('BC')) fields[2] = 1 - fields[2]!;
    return true;
  };
  const fromParts = (whole: number): void => {
    let bc = false;
    for (const p of format.formatToParts(whole)) {
      switch (p.type) {
        case 'month': fields[0] = Number(p.value); break;
        case 'day': fields[1] = Number(p.value); break;
        case 'year': fields[2] = Number(p.value); break;
        case 'hour': fields[3] = Number(p.value); break;
        case 'minute': fields[4] = Number(p.value); break;
        case 'second': fields[5] = Number(p.value); break;
        case 'era': bc = p.value === 'BC'; break;
        default: break;
      }
    }
    if (bc) fields[2] = 1 - fields[2]!;
  };
  const local = (): number =>
    daysFromCivil(fields[2]!, fields[0]!, fields[1]!) * DAY_MS + ((fields[3]! * 60 + fields[4]!) * 60 + fields[5]!) * 1000;
  let textWorks = true;
  for (const probe of [Date.UTC(2001, 8, 9, 10, 46, 40), Date.UTC(-1200, 1, 15, 22, 41, 12)]) {
    fromParts(probe);
    const expected = local();
    if (!fromText(probe) || local() !== expected) textWorks = false;
  }
  return (epochMs: number): number => {
    const whole = Math.floor(epochMs / 1000) * 1000;
    if (!textWorks || !fromText(whole)) fromParts(whole);
    return local() - whole;
  };
}

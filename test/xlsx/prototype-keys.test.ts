import { describe, expect, it } from 'vitest';
import { CellValueError } from '../../shared/xlsx/errors';
import { compileRowRenderer } from '../../shared/xlsx/render-row';
import { createRowEncoder } from '../../shared/xlsx/row-encoder';
import type { CellValue, ColumnSpec, ColumnType, Row } from '../../shared/xlsx/types';

// Column keys that name members of Object.prototype. A row is a plain object, so `row[key]`
// finds the inherited member (a function, or Object.prototype itself for `__proto__`) when the
// row lacks the key; docs/engine.md says a missing value is an empty cell, and both row paths
// (the generated reader of the byte encoder and the reference renderer) must agree on it.

/** Every name a plain object inherits, read from the runtime so a new one is covered too. */
const INHERITED_KEYS = Object.getOwnPropertyNames(Object.prototype);

const TYPES: ColumnType[] = ['string', 'number', 'boolean', 'date', 'duration'];

/** A valid value of each type, as JSON would carry it, and the cell tail it renders as. */
const SAMPLE: Record<ColumnType, { value: CellValue; tail: string }> = {
  string: { value: 'Ferrari', tail: ' t="inlineStr"><is><t>Ferrari</t></is></c>' },
  number: { value: 42, tail: '><v>42</v></c>' },
  boolean: { value: true, tail: ' s="3" t="b"><v>1</v></c>' },
  // 1970-01-01T00:00Z is Excel serial 25569.
  date: { value: '1970-01-01T00:00:00Z', tail: ' s="2"><v>25569</v></c>' },
  duration: { value: 5, tail: '><v>5</v></c>' },
};

const col = (key: string, type: ColumnType): ColumnSpec => ({ key, header: key, type });

/** A trailing ordinary column, so a missing cell before it must hold its place as `<c/>`. */
const TAIL = col('z', 'string');
const TAIL_CELL = '<c t="inlineStr"><is><t>end</t></is></c>';

type RowPath = { name: string; render: (row: Row) => string };

/** Both row paths over the same columns; each call renders one row to its XML text. */
function paths(columns: ColumnSpec[], startRow?: number): RowPath[] {
  const encoder = createRowEncoder(columns, { timeZone: 'UTC', startRow });
  const renderer = compileRowRenderer(columns, { timeZone: 'UTC', startRow });
  return [
    {
      name: 'encoder',
      render: (row) => {
        encoder.encode(row);
        return encoder.take().toString('utf8');
      },
    },
    { name: 'renderer', render: renderer },
  ];
}

/** A row with one own property, as JSON.parse builds it (an own `__proto__` included). */
function jsonRow(key: string, value: CellValue): Row {
  return JSON.parse(`{${JSON.stringify(key)}:${JSON.stringify(value)},"z":"end"}`) as Row;
}

describe('column keys named like Object.prototype members', () => {
  it('the list covers the names the bug report names', () => {
    for (const k of ['constructor', 'toString', 'valueOf', 'hasOwnProperty', '__proto__', 'isPrototypeOf', 'propertyIsEnumerable', 'toLocaleString', '__defineGetter__']) {
      expect(INHERITED_KEYS).toContain(k);
    }
  });

  for (const type of TYPES) {
    it(`a ${type} column is an empty cell when the row lacks the key`, () => {
      for (const key of INHERITED_KEYS) {
        for (const path of paths([col(key, type), TAIL])) {
          expect(path.render({ z: 'end' }), `${path.name} ${key}`).toBe(`<row><c/>${TAIL_CELL}</row>`);
          expect(path.render({}), `${path.name} ${key}`).toBe('<row></row>');
        }
        for (const path of paths([col(key, type), TAIL], 2)) {
          expect(path.render({ z: 'end' }), `${path.name} ${key} with r`).toBe(`<row r="2"><c r="B2"${TAIL_CELL.slice(2)}</row>`);
          expect(path.render({}), `${path.name} ${key} with r`).toBe('<row r="3"></row>');
        }
      }
    });

    it(`a ${type} column renders the row's own value under the key`, () => {
      for (const key of INHERITED_KEYS) {
        const row = jsonRow(key, SAMPLE[type].value);
        expect(Object.hasOwn(row, key)).toBe(true);
        for (const path of paths([col(key, type), TAIL])) {
          expect(path.render(row), `${path.name} ${key}`).toBe(`<row><c${SAMPLE[type].tail}${TAIL_CELL}</row>`);
        }
      }
    });
  }

  for (const type of TYPES) {
    it(`JSON rows with and without the keys, in one stream, render alike in both paths (${type})`, () => {
      // Every inherited key as a column between ordinary ones: the generated reader mixes
      // own-property reads with plain loads, and must match the renderer byte for byte.
      const columns = [col('id', 'string'), ...INHERITED_KEYS.map((k) => col(k, type)), TAIL];
      const v = JSON.stringify(SAMPLE[type].value);
      const rows: Row[] = [
        { id: 'a', z: 'end' },
        JSON.parse(`{"constructor":${v},"__proto__":${v},"toString":${v}}`) as Row,
        {},
        JSON.parse(`{"id":"b","valueOf":${v},"hasOwnProperty":${v},"z":"end"}`) as Row,
      ];
      for (const startRow of [undefined, 2]) {
        const [encoder, renderer] = paths(columns, startRow);
        for (const row of rows) expect(encoder!.render(row)).toBe(renderer!.render(row));
      }
      // The expected cells of the second row, spelled out: own keys hold the value, the rest
      // hold their places as <c/>, and trailing empty cells are dropped.
      const cells = columns.map((c) => (Object.hasOwn(rows[1]!, c.key) ? `<c${SAMPLE[type].tail}` : '<c/>'));
      const expected = `<row>${cells.join('').replace(/(<c\/>)+$/, '')}</row>`;
      for (const path of paths(columns)) expect(path.render(rows[1]!), path.name).toBe(expected);
    });
  }

  it('rows made with Object.create(null) read own values and treat absent keys as empty', () => {
    const columns = [col('id', 'string'), col('constructor', 'string'), col('toString', 'number'), col('__proto__', 'string'), TAIL];
    const full = Object.assign(Object.create(null) as Record<string, CellValue>, { id: 'x', constructor: 'c', toString: 7, z: 'end' });
    // An own `__proto__` on a null-prototype object is a plain data property.
    Object.defineProperty(full, '__proto__', { value: 'p', enumerable: true });
    const bare = Object.assign(Object.create(null) as Record<string, CellValue>, { id: 'y' });
    for (const path of paths(columns)) {
      expect(path.render(full), path.name).toBe(
        '<row><c t="inlineStr"><is><t>x</t></is></c><c t="inlineStr"><is><t>c</t></is></c><c><v>7</v></c>' +
          `<c t="inlineStr"><is><t>p</t></is></c>${TAIL_CELL}</row>`,
      );
      expect(path.render(bare), path.name).toBe('<row><c t="inlineStr"><is><t>y</t></is></c></row>');
      expect(path.render(Object.create(null) as Row), path.name).toBe('<row></row>');
    }
  });
});

describe('values of a type no column accepts', () => {
  // Rows come from JSON and from callers' objects; a function or a plain object in a cell must
  // fail as the engine's CellValueError naming the column, never as a raw TypeError.
  const WRONG: { what: string; value: unknown; got: string }[] = [
    { what: 'a function', value: () => 'SECRET', got: 'a function' },
    { what: 'a plain object', value: { toString: () => 'SECRET' }, got: 'an object' },
    { what: 'an array', value: ['SECRET'], got: 'an object' },
    { what: 'a symbol', value: Symbol('SECRET'), got: 'a symbol' },
  ];
  const EXPECTED: Record<ColumnType, string> = {
    string: 'text, a number, a boolean or a Date',
    number: 'a number',
    duration: 'a number',
    boolean: 'a boolean',
    date: 'a Date, epoch milliseconds or ISO-8601 text',
  };

  for (const type of TYPES) {
    it(`a ${type} column refuses them with a CellValueError naming the column, in both paths`, () => {
      for (const key of ['s', 'constructor', '__proto__']) {
        for (const startRow of [undefined, 2]) {
          const columns = [TAIL, col(key, type)];
          const encoder = createRowEncoder(columns, { timeZone: 'UTC', startRow });
          const renderer = compileRowRenderer(columns, { timeZone: 'UTC', startRow });
          for (const { what, value, got } of WRONG) {
            // An own property even for `__proto__`, as JSON.parse would make it.
            const row = Object.defineProperty({ z: 'end' }, key, { value, enumerable: true }) as unknown as Row;
            const message = `column "${key}" (${type}) must be ${EXPECTED[type]}, got ${got}`;
            for (const [name, render] of [
              ['encoder', () => encoder.encode(row)],
              ['renderer', () => renderer(row)],
            ] as const) {
              let caught: unknown;
              try {
                render();
              } catch (err) {
                caught = err;
              }
              expect(caught, `${name} ${key} ${what}`).toBeInstanceOf(CellValueError);
              const e = caught as CellValueError;
              expect(e.message, `${name} ${key} ${what}`).toBe(message);
              expect(e.field).toBe(key);
              expect(e.rule).toBe('type');
              // The value stays out of the message: cells may hold personal data.
              expect(e.message).not.toContain('SECRET');
            }
            // Nothing of the refused row is left behind, and its row number is not used up.
            expect(encoder.length).toBe(0);
          }
          const good: Row = { z: 'end', [key]: null };
          encoder.encode(good);
          expect(encoder.take().toString('utf8')).toBe(renderer(good));
        }
      }
    });
  }
});

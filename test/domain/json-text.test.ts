import { describe, expect, it } from 'vitest';
import { findJsonDepthProblem, findJsonStructureProblem, jsonStringEnd, scanJsonBeforeParse } from '../../shared/json-text';
import { findMalformedText } from '../../shared/text-rules';

describe('findJsonStructureProblem (what JSON.parse does not check)', () => {
  it('names a key given twice by its path inside its object, at any depth, decoding escaped keys', () => {
    expect(findJsonStructureProblem('{"kind":"c","kind":"d"}', 32)).toEqual({ rule: 'duplicate-key', path: ['kind'] });
    expect(findJsonStructureProblem('{"a":{"b":1,"b":2}}', 32)).toEqual({ rule: 'duplicate-key', path: ['a', 'b'] });
    expect(findJsonStructureProblem('{"f":{"g":[{"c":[{"v":1},{"v":2,"v":3}]}]}}', 32)).toEqual({ rule: 'duplicate-key', path: ['f', 'g', 0, 'c', 1, 'v'] });
    // `\u0061` is "a": the same key written two ways.
    expect(findJsonStructureProblem('{"\\u0061":1,"a":2}', 32)).toEqual({ rule: 'duplicate-key', path: ['a'] });
  });

  it('does not take strings for structure, nor the same key in two objects for a repeat', () => {
    expect(findJsonStructureProblem('{"a":"}\\"{,[","b":{"a":1},"c":["a","a"]}', 32)).toBeUndefined();
    expect(findJsonStructureProblem('[{"a":1},{"a":1}]', 32)).toBeUndefined();
    expect(findJsonStructureProblem(' { "a" : [ 1 , { "a" : 2 } ] , "b" : "\\\\" } ', 32)).toBeUndefined();
  });

  it('stops at the first container past maxDepth, with a path only that deep', () => {
    expect(findJsonStructureProblem('{"a":[[1]]}', 2)).toEqual({ rule: 'max-depth', path: ['a', 0] });
    expect(findJsonStructureProblem('{"a":[[1]]}', 3)).toBeUndefined();
    const deep = `{"x":${'['.repeat(200_000)}${']'.repeat(200_000)}}`;
    const problem = findJsonStructureProblem(deep, 32);
    expect(problem?.rule).toBe('max-depth');
    expect(problem?.path).toHaveLength(32);
  });

  it('jsonStringEnd skips escaped quotes and refuses an unterminated string', () => {
    expect(jsonStringEnd('"a\\"b"', 0)).toBe(5);
    expect(jsonStringEnd('"a\\\\"', 0)).toBe(4);
    expect(() => jsonStringEnd('"abc', 0)).toThrow(/unterminated/);
  });
});

describe('findJsonDepthProblem (before JSON.parse: the text may be malformed)', () => {
  it('finds the first level too deep, with its path, in text that is never closed', () => {
    expect(findJsonDepthProblem(`{"a":{"b":[1,${'['.repeat(100_000)}`, 4)).toEqual({ rule: 'max-depth', path: ['a', 'b', 1, 0] });
    expect(findJsonDepthProblem('{"a":[[[]]]}', 4)).toBeUndefined();
    // Brackets inside strings are text, and an escaped quote does not end one.
    expect(findJsonDepthProblem('{"a":"[[[[[\\"[[[["}', 2)).toBeUndefined();
  });

  it('leaves malformed text to JSON.parse: an unterminated string ends the scan, a key with a bad escape is kept as written', () => {
    expect(findJsonDepthProblem('{"a":"[[[[[[', 2)).toBeUndefined();
    expect(findJsonDepthProblem('{"k\\q":[[[', 2)).toEqual({ rule: 'max-depth', path: ['k\\q', 0] });
    // It never reports a repeated key: that waits for valid JSON (findJsonStructureProblem).
    expect(findJsonDepthProblem('{"a":1,"a":2}', 4)).toBeUndefined();
  });
});

describe('scanJsonBeforeParse (the API body: both rules in one pass, before JSON.parse)', () => {
  it('records a repeated key and goes on, so a level too deep after it still stops the scan (the body is never parsed)', () => {
    expect(scanJsonBeforeParse('{"a":1,"a":2}', 4)).toEqual({ repeatedKey: { rule: 'duplicate-key', path: ['a'] } });
    expect(scanJsonBeforeParse(`{"a":1,"a":2,"x":${'['.repeat(100_000)}`, 4)).toEqual({
      repeatedKey: { rule: 'duplicate-key', path: ['a'] },
      tooDeep: { rule: 'max-depth', path: ['x', 0, 0, 0] },
    });
    // Malformed text is left to JSON.parse; the first repeat is the one reported.
    expect(scanJsonBeforeParse('{"a":1,"a":2,"a":3,"b":"open', 4)).toEqual({ repeatedKey: { rule: 'duplicate-key', path: ['a'] } });
    expect(scanJsonBeforeParse('{"a":[1,{"b":2}]}', 4)).toEqual({});
  });
});

describe('findMalformedText', () => {
  it('gives the path of the first lone surrogate, however deep (each level links to its parent, no path copies)', () => {
    expect(findMalformedText({ a: [1, { b: 'ok', c: 'x\ud800' }] })).toEqual(['a', 1, 'c']);
    expect(findMalformedText({ ['k\udc00']: 1 })).toEqual([]);
    expect(findMalformedText({ a: ['fine', '\ud83d\udcca'] })).toBeUndefined();
    let deep: unknown = '\ud800';
    for (let i = 0; i < 100_000; i++) deep = [deep];
    const path = findMalformedText({ x: deep });
    expect(path).toHaveLength(100_001);
    expect(path?.[0]).toBe('x');
  });
});

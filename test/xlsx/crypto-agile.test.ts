import ExcelJS from 'exceljs';
import officeCrypto from 'officecrypto-tool';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  ENCRYPTION_INFO_SIZE,
  EncryptionInputError,
  buildEncryptionInfo,
  createEncryptingSink,
  deriveEncryptionKeys,
  encryptedFileSize,
  encryptionParamsSchema,
  type EncryptionParams,
} from '../../shared/xlsx/crypto/index';
import { deriveBlockKey } from '../../shared/xlsx/crypto/agile-keys';
import {
  bufferSource,
  collectingWritable,
  msoffcryptoGate,
  msoffcryptoDecrypt,
  msoffcryptoRecoverKey,
  readCompoundFile,
} from './crypto-test-support';

// xlsx-populate ships no type declarations; a non-literal specifier keeps it `any` on purpose.
const xlsxPopulateModule = 'xlsx-populate';
const loadXlsxPopulate = async (): Promise<any> => (await import(xlsxPopulateModule)).default;

const PASSWORD = 'Tr0ub4dor3';
const WRONG_PASSWORD = 'tr0ub4dor3';

const { hasMsoffcrypto, interopIt, requireMsoffcrypto } = msoffcryptoGate();

const EPOCH = new Date(Date.UTC(2025, 6, 17, 9, 30, 0));

async function buildWorkbook(rows: number): Promise<Buffer> {
  const workbook = new ExcelJS.Workbook();
  const sheet = workbook.addWorksheet('Contacts');
  sheet.addRow(['name', 'count', 'member', 'since']);
  for (let i = 0; i < rows; i += 1) {
    sheet.addRow([i % 3 === 0 ? `고객 ${i}` : `customer ${i} <&>`, i * 1.5, i % 2 === 0, new Date(EPOCH.getTime() + i * 86_400_000)]);
  }
  return Buffer.from(await workbook.xlsx.writeBuffer());
}

/** Encrypts through the sink in deliberately awkward chunk sizes. */
async function encryptInOddChunks(
  plain: Buffer,
  keys: { params: EncryptionParams; packageKey: Buffer },
  cfbVersion?: 3 | 4,
): Promise<Buffer> {
  const { out, result } = collectingWritable();
  const sink = createEncryptingSink({ ...keys, packageSize: plain.length, out, cfbVersion });
  const sizes = [1, 7, 4095, 4097, 333, 8192, 17];
  let offset = 0;
  for (let i = 0; offset < plain.length; i += 1) {
    const size = sizes[i % sizes.length] as number;
    await sink.write(plain.subarray(offset, offset + size));
    offset += size;
  }
  await sink.finish();
  return result();
}

describe('deriveEncryptionKeys', () => {
  it('returns JSON-safe params that hold neither the password nor the package key', async () => {
    const started = performance.now();
    const keys = await deriveEncryptionKeys(PASSWORD);
    const elapsed = performance.now() - started;
    console.info(`key derivation (SHA-512 x 100,000): ${elapsed.toFixed(0)} ms`);

    expect(keys.packageKey).toHaveLength(32);
    expect(keys.params.spinCount).toBe(100_000);
    const json = JSON.stringify(keys.params);
    expect(encryptionParamsSchema.parse(JSON.parse(json))).toEqual(keys.params);
    for (const secret of [
      PASSWORD,
      Buffer.from(PASSWORD, 'utf16le').toString('base64'),
      Buffer.from(PASSWORD, 'utf8').toString('base64'),
      keys.packageKey.toString('base64'),
      keys.packageKey.toString('hex'),
    ]) {
      expect(json).not.toContain(secret);
    }
  });

  it("leaves no copy of the password, nor of the password's hash, in Node's shared buffer pool", async () => {
    // Small Buffer.from/concat results are slices of one shared 8 KiB pool that outlives the call
    // (a warm Lambda's next invocations): a copy there is never wiped.
    const pool = () => Buffer.from(Buffer.allocUnsafe(1).buffer);
    const password = `Pw${randomBytes(6).toString('hex')}`;
    await deriveEncryptionKeys(password, { spinCount: 1_000 });
    const needle = Buffer.alloc(password.length * 2); // not Buffer.from: that would put it in the pool
    needle.write(password, 'utf16le');
    expect(pool().indexOf(needle)).toBe(-1);
    const passwordHash = randomBytes(64);
    deriveBlockKey(passwordHash, Buffer.from([0xfe, 0xa7, 0xd2, 0x76, 0x3b, 0x4b, 0x9e, 0x79]));
    expect(pool().indexOf(passwordHash)).toBe(-1);
  });

  it('draws fresh salts and a fresh package key on every call', async () => {
    const [a, b] = await Promise.all([
      deriveEncryptionKeys(PASSWORD, { spinCount: 1000 }),
      deriveEncryptionKeys(PASSWORD, { spinCount: 1000 }),
    ]);
    expect(a.packageKey.equals(b.packageKey)).toBe(false);
    expect(a.params.passwordSalt).not.toBe(b.params.passwordSalt);
    expect(a.params.keyDataSalt).not.toBe(b.params.keyDataSalt);
    expect(a.params.encryptedHmacKey).not.toBe(b.params.encryptedHmacKey);
  });

  it.each([
    ['', 'password', 'length'],
    ['x'.repeat(256), 'password', 'length'],
  ])('refuses a bad password (case %#) without echoing it', async (password, field, rule) => {
    const error = await deriveEncryptionKeys(password).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(EncryptionInputError);
    expect(error).toMatchObject({ field, rule });
    if (password.length > 0) expect((error as Error).message).not.toContain(password);
  });

  it('accepts the longest allowed password, counted in UTF-16 units', async () => {
    const keys = await deriveEncryptionKeys('가'.repeat(255), { spinCount: 10 });
    expect(keys.packageKey).toHaveLength(32);
    // An astral character is two UTF-16 units: 128 of them exceed 255.
    await expect(deriveEncryptionKeys('😀'.repeat(128), { spinCount: 10 })).rejects.toMatchObject({ field: 'password' });
  });

  it('refuses a non-string password', async () => {
    await expect(deriveEncryptionKeys(42 as unknown as string)).rejects.toMatchObject({ field: 'password', rule: 'type' });
  });

  it.each([0, -1, 1.5, 10_000_001, Number.NaN, '100' as unknown as number])(
    'refuses spinCount %s',
    async (spinCount) => {
      await expect(deriveEncryptionKeys(PASSWORD, { spinCount })).rejects.toMatchObject({
        name: 'EncryptionInputError',
        field: 'spinCount',
        rule: 'range',
      });
    },
  );

  interopIt('produces a verifier and key that msoffcrypto-tool accepts for the right password only', async () => {
    requireMsoffcrypto();
    const keys = await deriveEncryptionKeys(PASSWORD, { spinCount: 5000 });
    const right = msoffcryptoRecoverKey(keys.params, PASSWORD);
    expect(right.verified).toBe(true);
    expect(right.packageKeyHex).toBe(keys.packageKey.toString('hex'));
    const wrong = msoffcryptoRecoverKey(keys.params, WRONG_PASSWORD);
    expect(wrong.verified).toBe(false);
    expect(wrong.packageKeyHex).not.toBe(keys.packageKey.toString('hex'));
  });
});

describe('EncryptionInfo', () => {
  it('has the same length for every spin count, so the layout can be fixed before the data', async () => {
    const lengths = new Set<number>();
    for (const spinCount of [1, 99, 100_000, 10_000_000]) {
      const { params } = await deriveEncryptionKeys(PASSWORD, { spinCount: Math.min(spinCount, 1000) });
      lengths.add(buildEncryptionInfo({ ...params, spinCount }, Buffer.alloc(64)).length);
    }
    expect([...lengths]).toEqual([ENCRYPTION_INFO_SIZE]);
  });

  it('starts with version 4.4 and flags 0x40, then well-formed agile XML', async () => {
    const { params } = await deriveEncryptionKeys(PASSWORD, { spinCount: 1000 });
    const info = buildEncryptionInfo(params, Buffer.alloc(64, 7));
    expect([...info.subarray(0, 8)]).toEqual([4, 0, 4, 0, 0x40, 0, 0, 0]);
    const xml = info.subarray(8).toString('utf8');
    expect(xml).toMatch(/^<\?xml version="1\.0" encoding="UTF-8" standalone="yes"\?>\r\n<encryption /);
    expect(xml).toContain(`<keyData saltSize="16" blockSize="16" keyBits="256" hashSize="64" cipherAlgorithm="AES" cipherChaining="ChainingModeCBC" hashAlgorithm="SHA512" saltValue="${params.keyDataSalt}"/>`);
    expect(xml).toContain(`encryptedHmacValue="${Buffer.alloc(64, 7).toString('base64')}"`);
    expect(xml).toContain('<keyEncryptor uri="http://schemas.microsoft.com/office/2006/keyEncryptor/password"><p:encryptedKey spinCount="1000" ');
    expect(xml.endsWith('</keyEncryptors></encryption>')).toBe(true);
  });
});

describe('encrypted workbook round trip', () => {
  let dir: string;
  let plain: Buffer;
  let keys: { params: EncryptionParams; packageKey: Buffer };
  let encrypted: Buffer;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'crypto-agile-'));
    plain = await buildWorkbook(300);
    keys = await deriveEncryptionKeys(PASSWORD);
    encrypted = await encryptInOddChunks(plain, keys);
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('writes exactly encryptedFileSize(packageSize) bytes as a valid compound file', () => {
    expect(encrypted.length).toBe(encryptedFileSize(plain.length));
    const cfb = readCompoundFile(bufferSource(encrypted), encrypted.length);
    expect(cfb.findEntry(['EncryptedPackage']).size).toBe(8 + Math.ceil(plain.length / 16) * 16);
    expect(cfb.readStream(['EncryptedPackage']).readBigUInt64LE(0)).toBe(BigInt(plain.length));
    expect(cfb.readStream(['EncryptionInfo'])).toHaveLength(ENCRYPTION_INFO_SIZE);
  });

  it('decrypts with xlsx-populate and reads back the cells', async () => {
    const XlsxPopulate = await loadXlsxPopulate();
    const workbook = await XlsxPopulate.fromDataAsync(encrypted, { password: PASSWORD });
    const sheet = workbook.sheet('Contacts');
    expect(sheet.cell('A1').value()).toBe('name');
    expect(sheet.cell('A2').value()).toBe('고객 0');
    expect(sheet.cell('A3').value()).toBe('customer 1 <&>');
    expect(sheet.cell('B301').value()).toBe(299 * 1.5);
    // Row r holds i = r - 2; even i is a member.
    expect(sheet.cell('C300').value()).toBe(true);
    expect(sheet.cell('C301').value()).toBe(false);
  });

  it('decrypts with officecrypto-tool to the original bytes, which ExcelJS reads', async () => {
    const decrypted = await officeCrypto.decrypt(encrypted, { password: PASSWORD });
    expect(decrypted.equals(plain)).toBe(true);
    const workbook = new ExcelJS.Workbook();
    await workbook.xlsx.load(decrypted as unknown as ArrayBuffer);
    const sheet = workbook.getWorksheet('Contacts');
    expect(sheet?.getCell('A2').value).toBe('고객 0');
    expect(sheet?.getCell('D11').value).toEqual(new Date(EPOCH.getTime() + 9 * 86_400_000));
  });

  it('is refused by xlsx-populate and officecrypto-tool with the wrong password', async () => {
    const XlsxPopulate = await loadXlsxPopulate();
    await expect(XlsxPopulate.fromDataAsync(encrypted, { password: WRONG_PASSWORD })).rejects.toThrow();
    await expect(officeCrypto.decrypt(encrypted, { password: WRONG_PASSWORD })).rejects.toThrow(/password/i);
  });

  interopIt('decrypts with msoffcrypto-tool to the exact original bytes, HMAC verified', () => {
    requireMsoffcrypto();
    const input = join(dir, 'enc.xlsx');
    const output = join(dir, 'dec.xlsx');
    writeFileSync(input, encrypted);
    const result = msoffcryptoDecrypt(input, output, PASSWORD);
    expect(result.stderr).toBe('');
    expect(result.status).toBe(0);
    expect(readFileSync(output).equals(plain)).toBe(true);
  });

  interopIt('is refused by msoffcrypto-tool with the wrong password', () => {
    requireMsoffcrypto();
    const input = join(dir, 'enc-wrong.xlsx');
    writeFileSync(input, encrypted);
    const result = msoffcryptoDecrypt(input, join(dir, 'never.xlsx'), WRONG_PASSWORD);
    expect(result.status).not.toBe(0);
    expect(result.stderr).toMatch(/InvalidKeyError|verification failed/);
  });

  interopIt('fails msoffcrypto-tool integrity verification when one encrypted byte changes', () => {
    requireMsoffcrypto();
    const tampered = Buffer.from(encrypted);
    const cfb = readCompoundFile(bufferSource(tampered), tampered.length);
    const firstDataSector = cfb.findEntry(['EncryptedPackage']).start;
    // Flip a byte in the middle of the first encrypted segment (after the 8-byte StreamSize).
    const at = cfb.sectorSize * (1 + firstDataSector) + 100;
    tampered.writeUInt8(tampered.readUInt8(at) ^ 0x01, at);
    const input = join(dir, 'tampered.xlsx');
    writeFileSync(input, tampered);
    const result = msoffcryptoDecrypt(input, join(dir, 'tampered-out.xlsx'), PASSWORD);
    expect(result.status).not.toBe(0);
    expect(result.stderr).toContain('Payload integrity verification failed');
  });

  it('encrypts with a custom spin count that all three decryptors honour', async () => {
    const custom = await deriveEncryptionKeys(PASSWORD, { spinCount: 1234 });
    const file = await encryptInOddChunks(plain, custom);
    const XlsxPopulate = await loadXlsxPopulate();
    const workbook = await XlsxPopulate.fromDataAsync(file, { password: PASSWORD });
    expect(workbook.sheet('Contacts').cell('A2').value()).toBe('고객 0');
    expect((await officeCrypto.decrypt(file, { password: PASSWORD })).equals(plain)).toBe(true);
    if (hasMsoffcrypto) {
      const input = join(dir, 'spin.xlsx');
      writeFileSync(input, file);
      expect(msoffcryptoDecrypt(input, join(dir, 'spin-out.xlsx'), PASSWORD).status).toBe(0);
      expect(readFileSync(join(dir, 'spin-out.xlsx')).equals(plain)).toBe(true);
    }
  });

  it('writes a version 4 (4096-byte sector) file on request that decryptors also read', async () => {
    const file = await encryptInOddChunks(plain, keys, 4);
    expect(file.readUInt16LE(26)).toBe(4);
    expect(file.length).toBe(encryptedFileSize(plain.length, { cfbVersion: 4 }));
    readCompoundFile(bufferSource(file), file.length);
    const XlsxPopulate = await loadXlsxPopulate();
    const workbook = await XlsxPopulate.fromDataAsync(file, { password: PASSWORD });
    expect(workbook.sheet('Contacts').cell('A3').value()).toBe('customer 1 <&>');
    expect((await officeCrypto.decrypt(file, { password: PASSWORD })).equals(plain)).toBe(true);
    if (hasMsoffcrypto) {
      const input = join(dir, 'v4.xlsx');
      writeFileSync(input, file);
      expect(msoffcryptoDecrypt(input, join(dir, 'v4-out.xlsx'), PASSWORD)).toEqual({ status: 0, stderr: '' });
      expect(readFileSync(join(dir, 'v4-out.xlsx')).equals(plain)).toBe(true);
    }
  });
});

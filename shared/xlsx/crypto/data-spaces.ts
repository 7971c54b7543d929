/**
 * The `\x06DataSpaces` storage that MS-OFFCRYPTO 2.1 / 2.3.4.1-2.3.4.3 requires in an encrypted
 * ECMA-376 file. Its content is the same for every file: it only says "the EncryptedPackage
 * stream is transformed by the StrongEncryptionTransform". Built from the structure definitions:
 * lengths are little-endian uint32, strings are UNICODE-LP-P4 (uint32 byte length, UTF-16LE,
 * padded to a multiple of 4 bytes).
 */

const DATA_SPACES = '\u0006DataSpaces';
const DATA_SPACE_NAME = 'StrongEncryptionDataSpace';
const TRANSFORM_NAME = 'StrongEncryptionTransform';
/** TransformInfoHeader values for the encryption transform (MS-OFFCRYPTO 2.3.4.3). */
const ENCRYPTION_TRANSFORM_ID = '{FF9A3F03-56EF-4613-BDD5-5A41C1D07246}';
const ENCRYPTION_TRANSFORM_CLASS = 'Microsoft.Container.EncryptionTransform';

function uint32(value: number): Buffer {
  const buffer = Buffer.alloc(4);
  buffer.writeUInt32LE(value, 0);
  return buffer;
}

/** UNICODE-LP-P4 (MS-OFFCRYPTO 2.1.2). */
function unicodeLpP4(text: string): Buffer {
  const chars = Buffer.from(text, 'utf16le');
  const padding = (4 - (chars.length % 4)) % 4;
  return Buffer.concat([uint32(chars.length), chars, Buffer.alloc(padding)]);
}

/** Version structure triple reader/updater/writer = 1.0 (MS-OFFCRYPTO 2.1.4). */
function versions10(): Buffer {
  const one = Buffer.from([0x01, 0x00, 0x00, 0x00]);
  return Buffer.concat([one, one, one]);
}

/** \x06DataSpaces\Version: DataSpaceVersionInfo (2.1.5). */
function dataSpaceVersionInfo(): Buffer {
  return Buffer.concat([unicodeLpP4('Microsoft.Container.DataSpaces'), versions10()]);
}

/** \x06DataSpaces\DataSpaceMap: one entry mapping the EncryptedPackage stream to the data space (2.1.6). */
function dataSpaceMap(): Buffer {
  const referenceComponent = Buffer.concat([uint32(0 /* stream */), unicodeLpP4('EncryptedPackage')]);
  const body = Buffer.concat([uint32(1 /* ReferenceComponentCount */), referenceComponent, unicodeLpP4(DATA_SPACE_NAME)]);
  // DataSpaceMapEntry.Length counts the whole entry, its own 4 bytes included.
  const entry = Buffer.concat([uint32(body.length + 4), body]);
  return Buffer.concat([uint32(8 /* HeaderLength */), uint32(1 /* EntryCount */), entry]);
}

/** \x06DataSpaces\DataSpaceInfo\StrongEncryptionDataSpace: DataSpaceDefinition (2.1.7). */
function dataSpaceDefinition(): Buffer {
  return Buffer.concat([uint32(8 /* HeaderLength */), uint32(1 /* TransformReferenceCount */), unicodeLpP4(TRANSFORM_NAME)]);
}

/**
 * \x06DataSpaces\TransformInfo\StrongEncryptionTransform\x06Primary: TransformInfoHeader (2.1.8)
 * followed by EncryptionTransformInfo (2.1.9) whose name is empty and whose block size and
 * cipher mode are 0 for ECMA-376 encryption (the real parameters live in EncryptionInfo);
 * its Reserved field MUST be 4.
 */
function primaryTransformInfo(): Buffer {
  const transformId = unicodeLpP4(ENCRYPTION_TRANSFORM_ID);
  // TransformLength = bytes before TransformName: itself, TransformType and TransformID.
  const header = Buffer.concat([
    uint32(4 + 4 + transformId.length),
    uint32(1 /* TransformType */),
    transformId,
    unicodeLpP4(ENCRYPTION_TRANSFORM_CLASS),
    versions10(),
  ]);
  const encryptionTransformInfo = Buffer.concat([
    uint32(0 /* EncryptionName: empty UTF-8-LP-P4 */),
    uint32(0 /* EncryptionBlockSize */),
    uint32(0 /* CipherMode */),
    uint32(4 /* Reserved */),
  ]);
  return Buffer.concat([header, encryptionTransformInfo]);
}

export interface FixedStream {
  /** Storage names from the root, then the stream name. */
  path: readonly string[];
  data: Buffer;
}

/** The four fixed streams, in the order they are written into the mini stream. */
export function buildDataSpacesStreams(): FixedStream[] {
  return [
    { path: [DATA_SPACES, 'Version'], data: dataSpaceVersionInfo() },
    { path: [DATA_SPACES, 'DataSpaceMap'], data: dataSpaceMap() },
    { path: [DATA_SPACES, 'DataSpaceInfo', DATA_SPACE_NAME], data: dataSpaceDefinition() },
    { path: [DATA_SPACES, 'TransformInfo', TRANSFORM_NAME, '\u0006Primary'], data: primaryTransformInfo() },
  ];
}

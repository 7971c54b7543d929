/**
 * A write-once compound file (MS-CFB) whose whole layout is computed from the stream sizes
 * before the first byte is written, so it can be streamed front to back exactly once:
 *
 *   header | regular streams | mini stream container | MiniFAT | FAT | DIFAT | directory
 *
 * Regular streams (>= 4096 bytes) come first because the large one (EncryptedPackage) is
 * produced while the file streams out; everything after it is small or computed. Every chain is
 * contiguous, so FAT, MiniFAT and DIFAT entries are generated on the fly from a few ranges: no
 * table proportional to the file size is ever held in memory.
 */

export type CfbVersion = 3 | 4;

export const MINI_SECTOR_SIZE = 64;
export const MINI_STREAM_CUTOFF = 4096;
export const DIRECTORY_ENTRY_SIZE = 128;
export const HEADER_DIFAT_ENTRIES = 109;

export const MAXREGSECT = 0xfffffffa;
export const DIFSECT = 0xfffffffc;
export const FATSECT = 0xfffffffd;
export const ENDOFCHAIN = 0xfffffffe;
export const FREESECT = 0xffffffff;
export const NOSTREAM = 0xffffffff;

/** MS-CFB 2.6.3: a version 3 stream (and the mini stream) may hold at most 2 GB. */
export const MAX_V3_STREAM_SIZE = 0x80000000;

const SIGNATURE = Buffer.from('d0cf11e0a1b11ae1', 'hex');
const OBJECT_STORAGE = 1;
const OBJECT_STREAM = 2;
const OBJECT_ROOT = 5;
const COLOR_BLACK = 1;
const MAX_NAME_UNITS = 31;

export interface CfbStreamInput {
  /** Storage names from the root, then the stream name. */
  path: readonly string[];
  size: number;
}

export interface PlannedStream {
  path: readonly string[];
  size: number;
  inMiniStream: boolean;
  /** First sector (regular) or mini sector (mini stream); ENDOFCHAIN for an empty stream. */
  start: number;
  /** Sectors or mini sectors the stream occupies. */
  sectorCount: number;
  /** Zero bytes the writer emits right after the stream's data. */
  paddingAfter: number;
}

interface DirectoryEntry {
  name: string;
  type: number;
  left: number;
  right: number;
  child: number;
  start: number;
  size: number;
}

export interface CfbPlan {
  version: CfbVersion;
  sectorSize: number;
  /** Bytes before sector 0 (the header, padded to a whole sector in version 4). */
  headerSize: number;
  /** In data order: regular streams first, then the mini streams. */
  streams: PlannedStream[];
  miniStreamSize: number;
  miniStreamStart: number;
  miniStreamSectors: number;
  miniFatStart: number;
  miniFatSectors: number;
  fatStart: number;
  fatSectors: number;
  difatStart: number;
  difatSectors: number;
  directoryStart: number;
  directorySectors: number;
  totalSectors: number;
  /** File offset where the MiniFAT/FAT/DIFAT/directory tail begins. */
  tailOffset: number;
  fileSize: number;
  directory: DirectoryEntry[];
}

const ceilDiv = (a: number, b: number): number => Math.ceil(a / b);

/** MS-CFB 2.6.4 sibling order: shorter names first, then code-unit compare after simple upper-casing. */
export function compareEntryNames(a: string, b: string): number {
  if (a.length !== b.length) return a.length - b.length;
  for (let i = 0; i < a.length; i += 1) {
    const ca = upperUnit(a.charCodeAt(i));
    const cb = upperUnit(b.charCodeAt(i));
    if (ca !== cb) return ca - cb;
  }
  return 0;
}

function upperUnit(unit: number): number {
  const upper = String.fromCharCode(unit).toUpperCase();
  // Only one-to-one mappings count; a mapping that expands (e.g. U+00DF) leaves the unit alone.
  return upper.length === 1 ? upper.charCodeAt(0) : unit;
}

function validateName(name: string): void {
  if (name.length < 1 || name.length > MAX_NAME_UNITS || /[/\\:!]/.test(name)) {
    throw new RangeError(`invalid compound file entry name ${JSON.stringify(name)}: 1..31 units, no / \\ : !`);
  }
}

interface TreeNode {
  name: string;
  stream?: PlannedStream;
  children: TreeNode[];
  id: number;
}

/** Builds a balanced binary tree of siblings; all nodes black is valid per MS-CFB 2.6.4. */
function linkSiblings(sorted: TreeNode[], entries: DirectoryEntry[]): number {
  if (sorted.length === 0) return NOSTREAM;
  const middle = Math.floor(sorted.length / 2);
  const node = sorted[middle] as TreeNode;
  const entry = entries[node.id] as DirectoryEntry;
  entry.left = linkSiblings(sorted.slice(0, middle), entries);
  entry.right = linkSiblings(sorted.slice(middle + 1), entries);
  return node.id;
}

function buildDirectory(streams: PlannedStream[], root: Omit<DirectoryEntry, 'name' | 'type' | 'left' | 'right' | 'child'>): DirectoryEntry[] {
  const rootNode: TreeNode = { name: 'Root Entry', children: [], id: 0 };
  for (const stream of streams) {
    if (stream.path.length === 0) throw new RangeError('stream path must not be empty');
    let parent = rootNode;
    stream.path.forEach((name, depth) => {
      validateName(name);
      const isLeaf = depth === stream.path.length - 1;
      const existing = parent.children.find((child) => compareEntryNames(child.name, name) === 0);
      if (existing) {
        if (isLeaf || existing.stream) throw new RangeError(`duplicate compound file entry ${JSON.stringify(name)}`);
        parent = existing;
        return;
      }
      const node: TreeNode = { name, children: [], id: -1, ...(isLeaf ? { stream } : {}) };
      parent.children.push(node);
      parent = node;
    });
  }

  const entries: DirectoryEntry[] = [];
  const assignIds = (node: TreeNode): void => {
    node.id = entries.length;
    const isRoot = node === rootNode;
    entries.push({
      name: node.name,
      type: isRoot ? OBJECT_ROOT : node.stream ? OBJECT_STREAM : OBJECT_STORAGE,
      left: NOSTREAM,
      right: NOSTREAM,
      child: NOSTREAM,
      // Storages other than the root carry zero start and size (MS-CFB 2.6.3).
      start: isRoot ? root.start : node.stream ? node.stream.start : 0,
      size: isRoot ? root.size : node.stream ? node.stream.size : 0,
    });
    node.children.sort((a, b) => compareEntryNames(a.name, b.name));
    node.children.forEach(assignIds);
  };
  assignIds(rootNode);

  const linkChildren = (node: TreeNode): void => {
    (entries[node.id] as DirectoryEntry).child = linkSiblings(node.children, entries);
    node.children.forEach(linkChildren);
  };
  linkChildren(rootNode);
  return entries;
}

/** Lays out a compound file holding `streams` (regular streams must precede the small ones). */
export function planCompoundFile(streams: readonly CfbStreamInput[], version: CfbVersion): CfbPlan {
  const sectorSize = version === 3 ? 512 : 4096;
  const entriesPerSector = sectorSize / 4;

  let sector = 0;
  let miniSector = 0;
  let seenMini = false;
  const planned: PlannedStream[] = streams.map((input) => {
    if (!Number.isSafeInteger(input.size) || input.size < 0) {
      throw new RangeError(`stream size must be a non-negative safe integer (${input.path.join('/')})`);
    }
    if (version === 3 && input.size > MAX_V3_STREAM_SIZE) {
      throw new RangeError('a version 3 compound file stream must not exceed 2 GB');
    }
    const inMiniStream = input.size < MINI_STREAM_CUTOFF;
    if (!inMiniStream && seenMini) {
      // The writer emits data in input order and the mini stream container follows the regular streams.
      throw new RangeError('regular (>= 4096 byte) streams must come before small streams');
    }
    seenMini ||= inMiniStream;
    const unit = inMiniStream ? MINI_SECTOR_SIZE : sectorSize;
    const sectorCount = ceilDiv(input.size, unit);
    const start = sectorCount === 0 ? ENDOFCHAIN : inMiniStream ? miniSector : sector;
    if (inMiniStream) miniSector += sectorCount;
    else sector += sectorCount;
    return {
      path: input.path,
      size: input.size,
      inMiniStream,
      start,
      sectorCount,
      paddingAfter: sectorCount * unit - input.size,
    };
  });

  const miniStreamSize = miniSector * MINI_SECTOR_SIZE;
  if (version === 3 && miniStreamSize > MAX_V3_STREAM_SIZE) throw new RangeError('mini stream too large');
  const miniStreamSectors = ceilDiv(miniStreamSize, sectorSize);
  // The container's last sector is padded after the last mini stream's own padding.
  const lastMini = [...planned].reverse().find((stream) => stream.inMiniStream);
  if (lastMini) lastMini.paddingAfter += miniStreamSectors * sectorSize - miniStreamSize;

  const regularSectors = sector;
  const miniStreamStart = miniStreamSectors > 0 ? regularSectors : ENDOFCHAIN;
  const miniFatSectors = ceilDiv(miniSector * 4, sectorSize);
  const miniFatStart = miniFatSectors > 0 ? regularSectors + miniStreamSectors : ENDOFCHAIN;

  const directoryPreview = buildDirectory(planned, { start: 0, size: 0 });
  const directorySectors = ceilDiv(directoryPreview.length * DIRECTORY_ENTRY_SIZE, sectorSize);

  // FAT must also describe the FAT and DIFAT sectors themselves: iterate to the fixed point.
  const base = regularSectors + miniStreamSectors + miniFatSectors + directorySectors;
  let fatSectors = 0;
  let difatSectors = 0;
  for (;;) {
    const nextFat = ceilDiv(base + fatSectors + difatSectors, entriesPerSector);
    const nextDifat =
      nextFat > HEADER_DIFAT_ENTRIES ? ceilDiv(nextFat - HEADER_DIFAT_ENTRIES, entriesPerSector - 1) : 0;
    if (nextFat === fatSectors && nextDifat === difatSectors) break;
    fatSectors = nextFat;
    difatSectors = nextDifat;
  }
  const fatStart = regularSectors + miniStreamSectors + miniFatSectors;
  const difatStart = difatSectors > 0 ? fatStart + fatSectors : ENDOFCHAIN;
  const directoryStart = fatStart + fatSectors + difatSectors;
  const totalSectors = directoryStart + directorySectors;
  if (totalSectors > MAXREGSECT) throw new RangeError('compound file too large for 32-bit sector numbers');

  const headerSize = sectorSize;
  return {
    version,
    sectorSize,
    headerSize,
    streams: planned,
    miniStreamSize,
    miniStreamStart,
    miniStreamSectors,
    miniFatStart,
    miniFatSectors,
    fatStart,
    fatSectors,
    difatStart,
    difatSectors,
    directoryStart,
    directorySectors,
    totalSectors,
    tailOffset: headerSize + fatStart * sectorSize - miniFatSectors * sectorSize,
    fileSize: headerSize + totalSectors * sectorSize,
    directory: buildDirectory(planned, { start: miniStreamStart, size: miniStreamSize }),
  };
}

/** The header sector (MS-CFB 2.2), padded to 4096 bytes for version 4. */
export function buildHeader(plan: CfbPlan): Buffer {
  const header = Buffer.alloc(plan.headerSize);
  SIGNATURE.copy(header, 0);
  header.writeUInt16LE(0x003e, 24); // minor version
  header.writeUInt16LE(plan.version, 26);
  header.writeUInt16LE(0xfffe, 28); // little-endian byte order mark
  header.writeUInt16LE(plan.version === 3 ? 9 : 12, 30); // sector shift
  header.writeUInt16LE(6, 32); // mini sector shift
  header.writeUInt32LE(plan.version === 3 ? 0 : plan.directorySectors, 40); // MUST be 0 in version 3
  header.writeUInt32LE(plan.fatSectors, 44);
  header.writeUInt32LE(plan.directoryStart, 48);
  header.writeUInt32LE(0, 52); // transaction signature
  header.writeUInt32LE(MINI_STREAM_CUTOFF, 56);
  header.writeUInt32LE(plan.miniFatStart, 60);
  header.writeUInt32LE(plan.miniFatSectors, 64);
  header.writeUInt32LE(plan.difatStart, 68);
  header.writeUInt32LE(plan.difatSectors, 72);
  for (let i = 0; i < HEADER_DIFAT_ENTRIES; i += 1) {
    header.writeUInt32LE(i < plan.fatSectors ? plan.fatStart + i : FREESECT, 76 + i * 4);
  }
  return header;
}

/** Accumulates uint32 entries into sector-sized pieces, handing out at most `batchBytes` at a time. */
class SectorPacker {
  private buffer: Buffer;
  private offset = 0;

  constructor(private readonly batchBytes: number) {
    this.buffer = Buffer.alloc(batchBytes);
  }

  push(value: number): Buffer | undefined {
    this.buffer.writeUInt32LE(value, this.offset);
    this.offset += 4;
    if (this.offset < this.batchBytes) return undefined;
    return this.take();
  }

  take(): Buffer {
    const full = this.buffer.subarray(0, this.offset);
    this.buffer = Buffer.alloc(this.batchBytes);
    this.offset = 0;
    return full;
  }

  get pending(): number {
    return this.offset;
  }
}

/** FAT entries in sector order: a few contiguous ranges, so nothing is stored per sector. */
function* fatEntries(plan: CfbPlan): Generator<number> {
  function* chain(start: number, count: number): Generator<number> {
    for (let i = 1; i < count; i += 1) yield start + i;
    if (count > 0) yield ENDOFCHAIN;
  }
  for (const stream of plan.streams) {
    if (!stream.inMiniStream) yield* chain(stream.start, stream.sectorCount);
  }
  yield* chain(plan.miniStreamStart, plan.miniStreamSectors);
  yield* chain(plan.miniFatStart, plan.miniFatSectors);
  for (let i = 0; i < plan.fatSectors; i += 1) yield FATSECT;
  for (let i = 0; i < plan.difatSectors; i += 1) yield DIFSECT;
  yield* chain(plan.directoryStart, plan.directorySectors);
}

function* miniFatEntries(plan: CfbPlan): Generator<number> {
  for (const stream of plan.streams) {
    if (!stream.inMiniStream) continue;
    for (let i = 1; i < stream.sectorCount; i += 1) yield stream.start + i;
    if (stream.sectorCount > 0) yield ENDOFCHAIN;
  }
}

function* packSectors(entries: Iterable<number>, sectors: number, sectorSize: number, batchBytes: number): Generator<Buffer> {
  if (sectors === 0) return;
  const packer = new SectorPacker(Math.min(batchBytes, sectors * sectorSize));
  let written = 0;
  const total = (sectors * sectorSize) / 4;
  for (const entry of entries) {
    const full = packer.push(entry);
    written += 1;
    if (full) yield full;
  }
  for (; written < total; written += 1) {
    const full = packer.push(FREESECT);
    if (full) yield full;
  }
  if (packer.pending > 0) yield packer.take();
}

function* difatSectorsOf(plan: CfbPlan, batchBytes: number): Generator<Buffer> {
  const perSector = plan.sectorSize / 4 - 1;
  function* entries(): Generator<number> {
    for (let k = 0; k < plan.difatSectors; k += 1) {
      for (let j = 0; j < perSector; j += 1) {
        const fatIndex = HEADER_DIFAT_ENTRIES + k * perSector + j;
        yield fatIndex < plan.fatSectors ? plan.fatStart + fatIndex : FREESECT;
      }
      yield k + 1 < plan.difatSectors ? plan.difatStart + k + 1 : ENDOFCHAIN;
    }
  }
  yield* packSectors(entries(), plan.difatSectors, plan.sectorSize, batchBytes);
}

function directorySectorsOf(plan: CfbPlan): Buffer {
  const buffer = Buffer.alloc(plan.directorySectors * plan.sectorSize);
  for (let slot = 0; slot * DIRECTORY_ENTRY_SIZE < buffer.length; slot += 1) {
    const at = slot * DIRECTORY_ENTRY_SIZE;
    const entry = plan.directory[slot];
    if (!entry) {
      // Unused slots are zero except the three links (MS-CFB 2.6.3).
      buffer.writeUInt32LE(NOSTREAM, at + 68);
      buffer.writeUInt32LE(NOSTREAM, at + 72);
      buffer.writeUInt32LE(NOSTREAM, at + 76);
      continue;
    }
    const name = Buffer.from(`${entry.name}\u0000`, 'utf16le');
    name.copy(buffer, at);
    buffer.writeUInt16LE(name.length, at + 64);
    buffer.writeUInt8(entry.type, at + 66);
    buffer.writeUInt8(COLOR_BLACK, at + 67);
    buffer.writeUInt32LE(entry.left, at + 68);
    buffer.writeUInt32LE(entry.right, at + 72);
    buffer.writeUInt32LE(entry.child, at + 76);
    // CLSID, state bits and timestamps stay zero: allowed, and keeps output deterministic.
    buffer.writeUInt32LE(entry.start, at + 116);
    buffer.writeBigUInt64LE(BigInt(entry.size), at + 120);
  }
  return buffer;
}

/** MiniFAT, FAT, DIFAT and directory sectors, in file order, in pieces of at most `batchBytes`. */
export function* buildTail(plan: CfbPlan, batchBytes = 64 * 1024): Generator<Buffer> {
  const batch = Math.max(plan.sectorSize, batchBytes - (batchBytes % plan.sectorSize));
  yield* packSectors(miniFatEntries(plan), plan.miniFatSectors, plan.sectorSize, batch);
  yield* packSectors(fatEntries(plan), plan.fatSectors, plan.sectorSize, batch);
  yield* difatSectorsOf(plan, batch);
  yield directorySectorsOf(plan);
}

// FAT names: an 8.3 short name for every file, plus long-name (VFAT LFN) entries when the name does not
// fit 8.3 exactly. Names that are 8.3 but lower case use the NT case bits instead, as Linux and Windows do.

export interface ShortName {
  /** 11 bytes: base padded to 8, extension padded to 3. */
  bytes: Buffer;
  /** Needs long-name entries before the short entry. */
  lfn: boolean;
  /** NT "lower case" bits (0x08 base, 0x10 extension) for all-lower-case 8.3 names. */
  caseFlags: number;
}

const SHORT_OK = /^[A-Z0-9!#$%&'()\-@^_`{}~]+$/;

export function assignShortNames(names: string[]): ShortName[] {
  const taken = new Set<string>();
  const result: (ShortName | undefined)[] = names.map((name) => {
    const exact = exactShort(name);
    if (exact) taken.add(exact.bytes.toString('latin1'));
    return exact;
  });
  return names.map((name, i) => {
    const done = result[i];
    if (done) return done;
    const { base, ext } = basis(name);
    for (let n = 1; n < 1_000_000; n++) {
      const tail = `~${n}`;
      const cand = base.slice(0, 8 - tail.length) + tail;
      const key = cand.padEnd(8, ' ') + ext.padEnd(3, ' ');
      if (!taken.has(key)) {
        taken.add(key);
        return { bytes: Buffer.from(key, 'latin1'), lfn: true, caseFlags: 0 };
      }
    }
    throw new Error(`FAT: no short name left for ${name}`);
  });
}

/** The name as a plain 8.3 entry, when it is one (upper case, or all lower case in base and extension). */
function exactShort(name: string): ShortName | undefined {
  if (name === '.' || name === '..') return undefined;
  const dot = name.lastIndexOf('.');
  const base = dot < 0 ? name : name.slice(0, dot);
  const ext = dot < 0 ? '' : name.slice(dot + 1);
  if (base.length < 1 || base.length > 8 || ext.length > 3 || (dot >= 0 && ext.length === 0))
    return undefined;
  let caseFlags = 0;
  for (const [part, flag] of [
    [base, 0x08],
    [ext, 0x10],
  ] as const) {
    if (part === '') continue;
    if (part === part.toUpperCase()) {
      // upper case (or no letters): as is
    } else if (part === part.toLowerCase()) caseFlags |= flag;
    else return undefined;
    if (!SHORT_OK.test(part.toUpperCase())) return undefined;
  }
  const bytes = Buffer.from(base.toUpperCase().padEnd(8, ' ') + ext.toUpperCase().padEnd(3, ' '), 'latin1');
  if (bytes[0] === 0xe5) return undefined;
  return { bytes, lfn: false, caseFlags };
}

function basis(name: string): { base: string; ext: string } {
  const clean = (s: string) =>
    s
      .toUpperCase()
      .replace(/[ .]/g, '')
      .replace(/[^A-Z0-9!#$%&'()\-@^_`{}~]/g, '_');
  const dot = name.lastIndexOf('.');
  const base = clean(dot > 0 ? name.slice(0, dot) : name).slice(0, 6) || '_';
  const ext = dot > 0 ? clean(name.slice(dot + 1)).slice(0, 3) : '';
  return { base, ext };
}

function checksum(short: Buffer): number {
  let sum = 0;
  for (let i = 0; i < 11; i++) sum = ((((sum & 1) << 7) | (sum >> 1)) + short[i]!) & 0xff;
  return sum & 0xff;
}

/** The long-name entries for `name`, in on-disk order (last piece first), for the given short name. */
export function lfnEntries(name: string, short: Buffer): Buffer[] {
  const units = Buffer.from(name, 'utf16le');
  const count = Math.ceil(units.length / 2 / 13);
  if (count > 20) throw new Error(`FAT: name longer than 255 characters: ${name}`);
  const sum = checksum(short);
  const out: Buffer[] = [];
  for (let seq = count; seq >= 1; seq--) {
    const e = Buffer.alloc(32);
    e[0] = seq | (seq === count ? 0x40 : 0);
    e[11] = 0x0f;
    e[13] = sum;
    const slots = [1, 3, 5, 7, 9, 14, 16, 18, 20, 22, 24, 28, 30];
    slots.forEach((off, k) => {
      const idx = (seq - 1) * 13 + k;
      const nUnits = units.length / 2;
      const v = idx < nUnits ? units.readUInt16LE(idx * 2) : idx === nUnits ? 0x0000 : 0xffff;
      e.writeUInt16LE(v, off);
    });
    out.push(e);
  }
  return out;
}

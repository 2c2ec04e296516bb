// The architecture of a program from its ELF header (e_machine), named as `uname -m` names it.

export interface ElfInfo {
  arch: string;
  /** The raw e_machine value. */
  machine: number;
  bits: 32 | 64;
  endian: 'little' | 'big';
}

/** Bytes needed: e_ident (16) + e_type (2) + e_machine (2). */
export const ELF_HEADER_BYTES = 20;

function archName(machine: number, bits: 32 | 64, endian: 'little' | 'big'): string | undefined {
  switch (machine) {
    case 3:
      return 'i386';
    case 62:
      return 'x86_64';
    case 183:
      return 'aarch64';
    case 40:
      return endian === 'little' ? 'arm' : 'armeb';
    case 243:
      return bits === 64 ? 'riscv64' : 'riscv32';
    case 21:
      return endian === 'little' ? 'ppc64le' : 'ppc64';
    case 20:
      return 'ppc';
    case 22:
      return bits === 64 ? 's390x' : 's390';
    case 8:
      return endian === 'little' ? 'mipsel' : 'mips';
    case 258:
      return 'loongarch64';
    default:
      return undefined;
  }
}

/** Reads an ELF header; undefined when `head` is not one or names a machine we do not know. */
export function parseElfHeader(head: Buffer): ElfInfo | undefined {
  if (head.length < ELF_HEADER_BYTES) return undefined;
  if (head[0] !== 0x7f || head[1] !== 0x45 || head[2] !== 0x4c || head[3] !== 0x46) return undefined;
  const bits = head[4] === 1 ? 32 : head[4] === 2 ? 64 : undefined;
  const endian = head[5] === 1 ? 'little' : head[5] === 2 ? 'big' : undefined;
  if (bits === undefined || endian === undefined) return undefined;
  const machine = endian === 'little' ? head.readUInt16LE(18) : head.readUInt16BE(18);
  const arch = archName(machine, bits, endian);
  return arch === undefined ? undefined : { arch, machine, bits, endian };
}

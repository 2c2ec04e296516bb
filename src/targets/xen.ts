// The `xl.cfg` (xl.cfg(5)) that boots a built disk under Xen. HVM boots the disk's own firmware path
// (SeaBIOS, or OVMF for a UEFI-only disk). PVH and PV boot the kernel and initrd from dom0 (extracted
// beside the disk) with `kernel=`/`ramdisk=`/`extra=`, so nothing in the guest is parsed in dom0 (pygrub
// would be).

export type XenMode = 'hvm' | 'pvh' | 'pv';
export const XEN_MODES: readonly XenMode[] = ['hvm', 'pvh', 'pv'];

export interface XlConfigOptions {
  name: string;
  mode: XenMode;
  /** Absolute path of the disk. */
  disk: string;
  /** xl-disk-configuration(5) format. */
  diskFormat: 'raw' | 'qcow2' | 'vhd';
  /** HVM: which firmware boots the disk. */
  firmware?: 'bios' | 'uefi';
  /** PVH/PV: absolute paths of the kernel and initrd, and the kernel command line. */
  kernel?: string | undefined;
  ramdisk?: string | undefined;
  extra?: string | undefined;
  memoryMiB?: number;
  vcpus?: number;
}

/** A value of xl.cfg: strings are double-quoted (with `\` and `"` escaped), lists in brackets. */
type XlValue = string | number | string[];

export function xlConfig(o: XlConfigOptions): string {
  const entries: [string, XlValue][] = [
    ['name', o.name],
    ['type', o.mode],
    ['memory', o.memoryMiB ?? 1024],
    ['vcpus', o.vcpus ?? 2],
  ];
  if (o.mode === 'hvm') {
    entries.push(['bios', o.firmware === 'uefi' ? 'ovmf' : 'seabios']);
    entries.push(['serial', 'pty']);
  } else {
    if (!o.kernel) throw new Error('internal error: a PV/PVH xl.cfg needs a kernel');
    entries.push(['kernel', o.kernel]);
    if (o.ramdisk) entries.push(['ramdisk', o.ramdisk]);
    entries.push(['extra', o.extra ?? '']);
  }
  // PV and PVH guests see the disk through blkfront as xvda; HVM also gets the emulated IDE disk.
  entries.push(['disk', [`format=${o.diskFormat}, vdev=xvda, access=rw, target=${o.disk}`]]);
  entries.push(['vif', ['']]);
  entries.push(['on_reboot', 'restart']);
  entries.push(['on_crash', 'destroy']);
  const lines = entries.map(([k, v]) => `${k} = ${formatValue(v)}`);
  return `# xl.cfg written by cloudlets build --target xen (${o.mode}); start with: xl create THIS_FILE\n${lines.join('\n')}\n`;
}

function formatValue(v: XlValue): string {
  if (typeof v === 'number') return String(v);
  if (Array.isArray(v)) return `[ ${v.map(quote).join(', ')} ]`;
  return quote(v);
}

function quote(s: string): string {
  if (/[\n\r]/.test(s)) throw new Error('internal error: a newline in an xl.cfg string');
  return `"${s.replaceAll('\\', '\\\\').replaceAll('"', '\\"')}"`;
}

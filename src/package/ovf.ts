// The OVF 1.0 descriptor of an OVA holding one streamOptimized VMDK: one virtual system with CPU,
// memory, a disk controller, the disk and a NIC. Two flavours: VMware's (vmx hardware version, VMware
// controller and NIC names, firmware via vmw:Config) and VirtualBox's (SATA AHCI, E1000, vbox:OSType,
// a vbox:uuid on the disk). RASD and VSSD elements are written in the schema's (alphabetical) order,
// which ovftool checks. Every id is fixed or derived from the build's seed, so the XML is reproducible.
import { deriveUuid } from '../disk/partition/guid.js';

export type OvfFlavour = 'vmware' | 'virtualbox';
/** VMware disk controllers, each with the Linux driver its boot disk needs in the initramfs. */
export type Controller = 'pvscsi' | 'lsilogic' | 'sata' | 'ide';
export const CONTROLLER_DRIVERS: Record<Controller, string> = {
  pvscsi: 'vmw_pvscsi',
  lsilogic: 'mptspi',
  sata: 'ahci',
  ide: 'ata_piix',
};
/** Preference order: the paravirtual controller first, the slow emulated IDE last. */
const PREFERENCE: Controller[] = ['pvscsi', 'lsilogic', 'sata', 'ide'];

/**
 * The best controller whose driver the initramfs has (`has`), or LSI Logic (VMware's default for
 * Linux) with `found: false` when none is seen: it may be built into the kernel.
 */
export function chooseController(has: (driver: string) => boolean): {
  controller: Controller;
  found: boolean;
} {
  const controller = PREFERENCE.find((c) => has(CONTROLLER_DRIVERS[c]));
  return controller ? { controller, found: true } : { controller: 'lsilogic', found: false };
}

export interface OvfOptions {
  flavour: OvfFlavour;
  /** Virtual machine name. */
  name: string;
  /** The VMDK's member name in the OVA and its size in bytes. */
  diskFile: string;
  diskFileSize: number;
  /** Virtual size of the disk in bytes (a whole number of MiB). */
  capacity: number;
  /** Bytes of the disk that hold data, when known. */
  populatedSize?: number | undefined;
  /** VMware flavour; VirtualBox's always uses SATA. Default lsilogic. */
  controller?: Controller;
  firmware: 'bios' | 'efi';
  /** Default 2. */
  cpus?: number;
  /** Default 1024. */
  memoryMiB?: number;
  seed: string;
}

const NS = {
  xmlns: 'http://schemas.dmtf.org/ovf/envelope/1',
  'xmlns:ovf': 'http://schemas.dmtf.org/ovf/envelope/1',
  'xmlns:rasd': 'http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_ResourceAllocationSettingData',
  'xmlns:vssd': 'http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_VirtualSystemSettingData',
  'xmlns:xsi': 'http://www.w3.org/2001/XMLSchema-instance',
};

/** OVF's operating system id 101: "Linux 64-Bit" (CIM_OperatingSystem.OsType). */
const CIM_LINUX_64 = 101;
/** VMware's guest id for a 64-bit Linux 3.x or later, known to ESXi 5.5 onwards. */
const VMWARE_GUEST = 'other3xLinux64Guest';
/** Hardware version 13: ESXi 6.5, Workstation 14 and later. */
const VMX_VERSION = 'vmx-13';

type Rasd = Partial<Record<(typeof RASD_ORDER)[number], string | number | boolean>>;
const RASD_ORDER = [
  'Address',
  'AddressOnParent',
  'AllocationUnits',
  'AutomaticAllocation',
  'Caption',
  'Connection',
  'Description',
  'ElementName',
  'HostResource',
  'InstanceID',
  'Parent',
  'ResourceSubType',
  'ResourceType',
  'VirtualQuantity',
] as const;

export function ovfDescriptor(o: OvfOptions): string {
  const vmware = o.flavour === 'vmware';
  const cpus = o.cpus ?? 2;
  const memory = o.memoryMiB ?? 1024;
  const network = vmware ? 'VM Network' : 'NAT';
  const controller: Controller = vmware ? (o.controller ?? 'lsilogic') : 'sata';
  const envelopeAttrs: Record<string, string> = { 'ovf:version': '1.0', 'xml:lang': 'en-US', ...NS };
  if (vmware) envelopeAttrs['xmlns:vmw'] = 'http://www.vmware.com/schema/ovf';
  else envelopeAttrs['xmlns:vbox'] = 'http://www.virtualbox.org/ovf/machine';

  const diskAttrs: Record<string, string | number> = {
    'ovf:capacity': o.capacity / 2 ** 20,
    'ovf:capacityAllocationUnits': 'byte * 2^20',
    'ovf:diskId': 'vmdisk1',
    'ovf:fileRef': 'file1',
    'ovf:format': 'http://www.vmware.com/interfaces/specifications/vmdk.html#streamOptimized',
  };
  if (o.populatedSize !== undefined) diskAttrs['ovf:populatedSize'] = o.populatedSize;
  if (!vmware) diskAttrs['vbox:uuid'] = deriveUuid(o.seed, 'ovf-disk');

  const items: Rasd[] = [
    {
      AllocationUnits: 'hertz * 10^6',
      Description: 'Number of Virtual CPUs',
      ElementName: `${cpus} virtual CPU(s)`,
      InstanceID: 1,
      ResourceType: 3,
      VirtualQuantity: cpus,
    },
    {
      AllocationUnits: 'byte * 2^20',
      Description: 'Memory Size',
      ElementName: `${memory}MB of memory`,
      InstanceID: 2,
      ResourceType: 4,
      VirtualQuantity: memory,
    },
    { Address: 0, ElementName: 'Disk controller 0', InstanceID: 3, ...controllerRasd(controller, vmware) },
    {
      AddressOnParent: 0,
      ElementName: 'Hard disk 1',
      HostResource: 'ovf:/disk/vmdisk1',
      InstanceID: 4,
      Parent: 3,
      ResourceType: 17,
    },
    {
      AddressOnParent: vmware ? 7 : 0,
      AutomaticAllocation: true,
      Connection: network,
      ElementName: 'Network adapter 1',
      InstanceID: 5,
      ResourceSubType: vmware ? 'VmxNet3' : 'E1000',
      ResourceType: 10,
    },
  ];

  const x: string[] = ['<?xml version="1.0" encoding="UTF-8"?>', `<Envelope${attrs(envelopeAttrs)}>`];
  x.push('  <References>');
  x.push(`    <File${attrs({ 'ovf:href': o.diskFile, 'ovf:id': 'file1', 'ovf:size': o.diskFileSize })}/>`);
  x.push('  </References>');
  x.push('  <DiskSection>', '    <Info>Virtual disk information</Info>');
  x.push(`    <Disk${attrs(diskAttrs)}/>`, '  </DiskSection>');
  x.push('  <NetworkSection>', '    <Info>The list of logical networks</Info>');
  x.push(`    <Network${attrs({ 'ovf:name': network })}>`);
  x.push(
    `      <Description>The ${esc(network)} network</Description>`,
    '    </Network>',
    '  </NetworkSection>',
  );
  x.push(`  <VirtualSystem${attrs({ 'ovf:id': o.name })}>`, '    <Info>A virtual machine</Info>');
  x.push(`    <Name>${esc(o.name)}</Name>`);
  const osAttrs: Record<string, string | number> = { 'ovf:id': CIM_LINUX_64 };
  if (vmware) osAttrs['vmw:osType'] = VMWARE_GUEST;
  x.push(`    <OperatingSystemSection${attrs(osAttrs)}>`);
  x.push('      <Info>The kind of installed guest operating system</Info>');
  x.push('      <Description>Linux 64-Bit</Description>');
  if (!vmware) x.push('      <vbox:OSType ovf:required="false">Linux26_64</vbox:OSType>');
  x.push('    </OperatingSystemSection>');
  x.push('    <VirtualHardwareSection>', '      <Info>Virtual hardware requirements</Info>');
  x.push('      <System>');
  x.push('        <vssd:ElementName>Virtual Hardware Family</vssd:ElementName>');
  x.push('        <vssd:InstanceID>0</vssd:InstanceID>');
  x.push(`        <vssd:VirtualSystemIdentifier>${esc(o.name)}</vssd:VirtualSystemIdentifier>`);
  x.push(
    `        <vssd:VirtualSystemType>${vmware ? VMX_VERSION : 'virtualbox-2.2'}</vssd:VirtualSystemType>`,
  );
  x.push('      </System>');
  for (const item of items) {
    x.push('      <Item>');
    for (const key of RASD_ORDER) {
      const v = item[key];
      if (v !== undefined) x.push(`        <rasd:${key}>${esc(String(v))}</rasd:${key}>`);
    }
    x.push('      </Item>');
  }
  if (vmware && o.firmware === 'efi') {
    x.push('      <vmw:Config ovf:required="false" vmw:key="firmware" vmw:value="efi"/>');
  }
  x.push('    </VirtualHardwareSection>', '  </VirtualSystem>', '</Envelope>', '');
  return x.join('\n');
}

function controllerRasd(c: Controller, vmware: boolean): Rasd {
  switch (c) {
    case 'pvscsi':
      return { ResourceSubType: 'VirtualSCSI', ResourceType: 6 };
    case 'lsilogic':
      return { ResourceSubType: 'lsilogic', ResourceType: 6 };
    case 'sata':
      return { ResourceSubType: vmware ? 'vmware.sata.ahci' : 'AHCI', ResourceType: 20 };
    case 'ide':
      return { ResourceSubType: 'PIIX4', ResourceType: 5 };
  }
}

function attrs(a: Record<string, string | number>): string {
  return Object.entries(a)
    .map(([k, v]) => ` ${k}="${esc(String(v))}"`)
    .join('');
}

function esc(s: string): string {
  return s.replace(/[<>&"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

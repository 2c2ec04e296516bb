// The EC2 side of a built disk: after `aws ec2 import-snapshot` of the disk, `aws ec2 register-image
// --cli-input-json file://THIS` registers it. The snapshot id is the one value only the import knows.
import type { BootMode } from '../build/index.js';

/** EC2's AMI boot modes; a hybrid disk boots both ways, so `uefi-preferred` (UEFI where the type has it). */
export function ec2BootMode(boot: BootMode): 'uefi' | 'legacy-bios' | 'uefi-preferred' {
  return boot === 'bios' ? 'legacy-bios' : boot === 'uefi' ? 'uefi' : 'uefi-preferred';
}

export interface RegisterImageOptions {
  name: string;
  boot: BootMode;
  /** Virtual size of the disk in bytes (the root volume size is a whole GiB, at least this). */
  size: number;
  /**
   * EnaSupport; default true: Nitro instance types refuse an image without it, and ENA is a network
   * driver, usually loaded from the root filesystem after the initramfs (which is why a missing ENA
   * module in the initramfs is a warning, not a reason to clear this).
   */
  ena?: boolean;
  description?: string;
}

/** RegisterImage parameters (the AWS API's names, as `--cli-input-json` takes them). */
export function registerImageInput(o: RegisterImageOptions): Record<string, unknown> {
  return {
    Name: o.name,
    Description: o.description ?? `${o.name}, built by cloudlets`,
    Architecture: 'x86_64',
    BootMode: ec2BootMode(o.boot),
    EnaSupport: o.ena ?? true,
    RootDeviceName: '/dev/xvda',
    VirtualizationType: 'hvm',
    BlockDeviceMappings: [
      {
        DeviceName: '/dev/xvda',
        Ebs: {
          SnapshotId: 'snap-REPLACE-WITH-THE-IMPORTED-SNAPSHOT',
          VolumeSize: Math.ceil(o.size / 2 ** 30),
          VolumeType: 'gp3',
          DeleteOnTermination: true,
        },
      },
    ],
  };
}

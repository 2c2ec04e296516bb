#!/bin/bash
# The reference pipeline the disk benchmarks compare `cloudlets build` against: the usual way to make a
# bootable disk image from a directory without mounting anything. A sparse raw file, GPT (BIOS boot
# partition, ESP, root) by sgdisk, the root filesystem by `mkfs.ext4 -d` at its offset, a FAT ESP with
# GRUB EFI, GRUB BIOS (boot.img + core.img), then `qemu-img convert` to the container (raw: kept as is).
#
#   reference-disk.sh TREE OUT SIZE_MIB FORMAT [qemu-img -o options]
set -euo pipefail
tree=$1 out=$2 size=$3 format=$4 opts=${5:-}
raw="$out.raw"
work=$(mktemp -d)
trap 'rm -rf "$work" "$raw"' EXIT
truncate -s "${size}M" "$raw"
sgdisk -q -n 1:2048:4095 -t 1:EF02 -n 2:4096:135167 -t 2:EF00 -n 3:135168:0 -t 3:8300 "$raw"
root_start=135168
root_sectors=$(( size * 2048 - 34 - root_start ))
mkfs.ext4 -q -F -d "$tree" -E offset=$((root_start * 512)) "$raw" "$((root_sectors / 2))k"
mkfs.fat -F 32 -s 1 --offset=4096 "$raw" 65536 >/dev/null 2>&1
grub-mkimage -O x86_64-efi -o "$work/bootx64.efi" -p /EFI/BOOT part_gpt fat ext2 linux normal search
MTOOLS_SKIP_CHECK=1 mmd -i "$raw@@$((4096 * 512))" ::/EFI ::/EFI/BOOT
MTOOLS_SKIP_CHECK=1 mcopy -i "$raw@@$((4096 * 512))" "$work/bootx64.efi" ::/EFI/BOOT/BOOTX64.EFI
grub-mkimage -O i386-pc -o "$work/core.img" -p '(hd0,gpt3)/boot/grub' biosdisk part_gpt ext2 linux normal
dd if=/usr/lib/grub/i386-pc/boot.img of="$raw" bs=440 count=1 conv=notrunc status=none
dd if="$work/core.img" of="$raw" bs=512 seek=2048 conv=notrunc status=none
if [ "$format" = raw ]; then
  mv "$raw" "$out"
else
  qemu-img convert -f raw -O "$format" ${opts:+-o "$opts"} "$raw" "$out"
fi

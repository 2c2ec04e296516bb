#!/usr/bin/env bash
# Installs everything cloudlets and its tests need on Debian 12, then builds. Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."

# Debian packages: the programs our tests use as real consumers (GNU tar, bsdtar, e2fsck, qemu...) and the
# few the tool itself calls (getfattr/setfattr for xattrs, GNU find for directory listings, zstd on Node 20,
# grub-mkimage for boot images).
PACKAGES=(
  attr findutils libarchive-tools tar zstd gzip git mercurial time
  e2fsprogs dosfstools mtools fdisk gdisk
  grub-pc-bin grub-efi-amd64-bin grub2-common
  qemu-system-x86 qemu-utils ovmf busybox-static cpio xorriso libxml2-utils xz-utils
)

sudo_cmd=()
[ "$(id -u)" -eq 0 ] || sudo_cmd=(sudo)

missing=()
for pkg in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || missing+=("$pkg")
done
if [ "${#missing[@]}" -gt 0 ]; then
  echo "setup: installing ${missing[*]}" >&2
  "${sudo_cmd[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# Node.js 20.15 or newer (zlib.crc32); Debian 12's own nodejs package is 18, too old.
if ! node -e 'const [a, b] = process.versions.node.split(".").map(Number); process.exit(a > 20 || (a === 20 && b >= 15) ? 0 : 1)' 2>/dev/null; then
  echo "setup: Node.js 20.15 or newer is needed (found: $(node -v 2>/dev/null || echo none))" >&2
  exit 1
fi

npm ci --no-audit --no-fund --loglevel=error
npm run --silent build

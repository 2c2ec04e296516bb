#!/usr/bin/env bash
# The main job on the embedded example: export examples/sample.cloudlet as a configured tar archive,
# list it, and show what the templates became.
set -euo pipefail
cd "$(dirname "$0")/.."
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
config='{"args":{"hostname":"web1"},"dns":{"nameservers":["192.0.2.53"]}}'
node dist/cli/main.cjs tar examples/sample.cloudlet --config "$config" -o "$out/sample.tar"
echo "== cloudlets tar examples/sample.cloudlet --config '$config' (volatile /tmp and /var/log/syslog left out)"
tar -tvf "$out/sample.tar"
for f in etc/hostname etc/hosts etc/resolv.conf etc/motd; do
  echo "== rendered /$f"
  tar -xOf "$out/sample.tar" "./$f"
done

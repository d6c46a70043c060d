#!/usr/bin/env bash
# Install the pinned Debian packages that are missing (see debian-packages.txt); never upgrades what is there.
set -euo pipefail
pins=${1:-toolchain/debian-packages.txt}
missing=()
while read -r pkg version _; do
  [[ -z "$pkg" || "$pkg" == \#* ]] && continue
  dpkg-query -W -f '${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" && continue
  missing+=("$pkg=$version")
done < "$pins"
[[ ${#missing[@]} -eq 0 ]] && exit 0
if [[ "$(id -u)" != 0 ]]; then
  echo "missing Debian packages: ${missing[*]} (run: sudo apt-get install ${missing[*]})" >&2
  exit 1
fi
apt-get update -qq
if ! apt-get install -y -qq --no-install-recommends "${missing[@]}"; then
  echo "pinned versions not in the archive; installing its current versions of: ${missing[*]%%=*}" >&2
  apt-get install -y -qq --no-install-recommends "${missing[@]%%=*}"
fi

#!/bin/sh
# Builds a Debian root filesystem image with compilers and interpreters for judge workloads:
#   rootfs/debian.sh <dir> [suite]
# Uses debootstrap (apt-get install debootstrap) and Debian's own mirrors; takes a few minutes
# and about 600 MB. Run boxes on it with `sandcell run --image <dir> -- ...` or
# `run({ image: dir, ... })`; add `--writable` for a copy-on-write layer. Or into the image
# store: `sandcell image build rootfs/debian.sh --name debian-gcc [-- suite]`.
set -eu
dir=${1:?usage: rootfs/debian.sh <dir> [suite]}
suite=${2:-bookworm}
command -v debootstrap >/dev/null || { echo "debootstrap not found: apt-get install debootstrap" >&2; exit 1; }
debootstrap --variant=minbase --include=gcc,g++,python3,ca-certificates "$suite" "$dir"
# Nothing in the image needs these at run time; the box provides its own /proc, /dev and /tmp.
rm -rf "$dir/var/cache/apt/archives"/*.deb
printf 'sandbox:x:65534:65534:sandbox:/work:/bin/sh\n' >> "$dir/etc/passwd"
chmod a+rX "$dir"

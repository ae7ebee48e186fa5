#!/bin/sh
# Builds a tiny root filesystem image from Debian's static busybox:
#   rootfs/busybox.sh <dir>
# The image is a directory: /bin/busybox and one symlink per applet, an /etc with passwd and
# group. Needs the busybox-static package (apt-get install busybox-static). Or into the image
# store: `sandcell image build rootfs/busybox.sh --name busybox`, then `--image busybox`.
set -eu
dir=${1:?usage: rootfs/busybox.sh <dir>}
busybox=$(command -v busybox || true)
if [ -z "$busybox" ] || ! file -L "$busybox" 2>/dev/null | grep -q 'statically linked'; then
  busybox=/bin/busybox
fi
[ -x "$busybox" ] || { echo "busybox not found: apt-get install busybox-static" >&2; exit 1; }
mkdir -p "$dir/bin" "$dir/etc"
cp "$busybox" "$dir/bin/busybox"
for applet in $("$dir/bin/busybox" --list); do
  [ "$applet" = busybox ] || ln -sf busybox "$dir/bin/$applet"
done
printf 'root:x:0:0:root:/:/bin/sh\nsandbox:x:65534:65534:sandbox:/work:/bin/sh\n' > "$dir/etc/passwd"
printf 'root:x:0:\nsandbox:x:65534:\n' > "$dir/etc/group"
chmod -R a+rX "$dir"
# Owned by the host id sandcell maps the box's root to (100000), so that a program running as
# root in the box (user: { uid: 0 }) owns the image's files, as it would on a real system. With
# `writable`, it can then change anything: the changes land in the box's overlay, never here.
chown -R 100000:100000 "$dir"

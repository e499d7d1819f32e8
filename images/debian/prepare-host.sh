#!/bin/sh
# prepare-host.sh USER -- one-time, root-only host preparation so that USER can
# build the Debian image (husk build FROM debian:bookworm, images/debian/build.sh)
# and run the benchmark
# (tests/bench/run) without any privilege.
#
#  * installs mmdebstrap + uidmap (unprivileged rootfs builds), squashfs-tools
#    (mksquashfs), python3-numpy (the "native" column of the benchmark) and,
#    when available, squashfs-tools-ng, fuse3, charliecloud-runtime, hyperfine
#    and busybox-static;
#  * creates USER if it does not exist;
#  * gives USER a subordinate uid and gid range (65536 ids) in /etc/subuid and
#    /etc/subgid if it has none;
#  * makes /dev/fuse mode 0666 (what Debian's fuse3 package normally does).
set -eu

die() { echo "prepare-host.sh: $*" >&2; exit 1; }

[ $# -eq 1 ] || die "usage: prepare-host.sh USER"
user=$1
[ "$(id -u)" -eq 0 ] || die "must run as root (it installs packages and edits /etc/subuid)"

required="mmdebstrap uidmap squashfs-tools python3-numpy"
optional="squashfs-tools-ng fuse3 squashfuse charliecloud-runtime hyperfine busybox-static"

missing=""
for p in $required $optional; do
    dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q '^install ok installed$' \
        || missing="$missing $p"
done
if [ -n "$missing" ]; then
    echo "prepare-host.sh: installing:$missing"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q >/dev/null
    # Required ones must succeed; optional ones are tried one by one.
    apt-get install -y -q --no-install-recommends $required >/dev/null
    for p in $optional; do
        apt-get install -y -q --no-install-recommends "$p" >/dev/null 2>&1 \
            || echo "prepare-host.sh: note: optional package $p not installed"
    done
fi

if ! id "$user" >/dev/null 2>&1; then
    echo "prepare-host.sh: creating user $user"
    useradd --create-home --shell /bin/bash "$user"
fi

# First free subordinate id start at or above 100000 across both files.
next_free() {
    awk -F: 'BEGIN { m = 100000 }
             NF >= 3 { e = $2 + $3; if (e > m) m = e }
             END { print m }' /etc/subuid /etc/subgid 2>/dev/null
}
for f in /etc/subuid /etc/subgid; do
    [ -e "$f" ] || { : > "$f"; chmod 0644 "$f"; }
done
uid=$(id -u "$user")
has_range() { grep -Eq "^($user|$uid):[0-9]+:[0-9]+$" "$1"; }
if ! has_range /etc/subuid || ! has_range /etc/subgid; then
    start=$(next_free)
    end=$((start + 65535))
    has_range /etc/subuid || usermod --add-subuids "$start-$end" "$user"
    has_range /etc/subgid || usermod --add-subgids "$start-$end" "$user"
    echo "prepare-host.sh: $user gets subordinate ids $start-$end"
fi

if [ -c /dev/fuse ]; then
    chmod 0666 /dev/fuse
fi

echo "prepare-host.sh: done; as $user run: images/debian/build.sh OUTDIR"

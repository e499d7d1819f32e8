#!/bin/bash
# build.sh OUTDIR -- build the husk Debian 12 (bookworm) test/benchmark image
# as an ordinary user.
#
# Produces:
#   OUTDIR/debian/       directory rootfs (all files owned by the caller)
#   OUTDIR/debian.sqfs   SquashFS of the same tree (mksquashfs -all-root)
#
# Contents: python3, python3-numpy, openmpi-bin, libopenmpi-dev, gcc,
# libc6-dev, and /data/blob.bin (40 MiB of random data, for read benchmarks).
#
# How: `mmdebstrap --mode=unshare` writes a tarball inside a user namespace
# (needs newuidmap/newgidmap from the uidmap package and subordinate id ranges
# in /etc/subuid and /etc/subgid); the tarball is unpacked as the caller with
# ownership dropped and permissions normalised, so every file stays readable
# and removable without privilege.  One-time host setup (as root):
#   images/debian/prepare-host.sh USER
#
# Environment:
#   HUSK_SQFS_COMP       mksquashfs compressor: gzip (default), zstd, xz, lz4, lzo
#   HUSK_DEBIAN_MIRROR   Debian mirror URL; default: the bookworm entries of
#                        this machine's /etc/apt/sources.list(.d)
#   HUSK_DEBIAN_EXTRA    extra packages, comma separated
#   HUSK_KEEP_TAR=1      keep OUTDIR/debian.tar
set -euo pipefail

prog=build.sh
die() { echo "$prog: error: $*" >&2; exit 1; }
say() { echo "$prog: $*" >&2; }

[ $# -eq 1 ] || { echo "usage: $prog OUTDIR" >&2; exit 2; }
outdir=$1
suite=bookworm
comp=${HUSK_SQFS_COMP:-gzip}
packages="python3,python3-numpy,openmpi-bin,libopenmpi-dev,gcc,libc6-dev"
[ -n "${HUSK_DEBIAN_EXTRA:-}" ] && packages="$packages,$HUSK_DEBIAN_EXTRA"

me=$(id -un)
fix="as root, run: images/debian/prepare-host.sh $me"

# ---- preconditions, each with the fix named ---------------------------------
[ "$(id -u)" -ne 0 ] || die "run this as an ordinary user, not root (the point is an unprivileged build); e.g. su - husk-test -c '$0 $outdir'"
command -v mmdebstrap >/dev/null || die "mmdebstrap not found (package mmdebstrap); $fix"
command -v newuidmap >/dev/null && command -v newgidmap >/dev/null \
    || die "newuidmap/newgidmap not found (package uidmap); $fix"
command -v mksquashfs >/dev/null || die "mksquashfs not found (package squashfs-tools); $fix"
subrange() {   # prints the id count of $me's range in $1, or nothing
    awk -F: -v n="$me" -v u="$(id -u)" '($1 == n || $1 == u) && $3 >= 65536 { print $3; exit }' "$1" 2>/dev/null
}
[ -n "$(subrange /etc/subuid)" ] || die "no subordinate uid range of 65536 ids for $me in /etc/subuid; $fix"
[ -n "$(subrange /etc/subgid)" ] || die "no subordinate gid range of 65536 ids for $me in /etc/subgid; $fix"
unshare --user --map-root-user true 2>/dev/null \
    || die "unprivileged user namespaces are disabled (sysctl user.max_user_namespaces / kernel.unprivileged_userns_clone, or an AppArmor restriction)"
case $comp in gzip|zstd|xz|lz4|lzo|lzma) ;; *) die "HUSK_SQFS_COMP=$comp: use gzip, zstd, xz, lz4 or lzo" ;; esac
mksquashfs -help 2>&1 | grep -qw "$comp" || die "this mksquashfs does not support $comp"

# ---- mirror: from this machine's apt configuration ---------------------------
# Prints one-line "deb URI SUITE COMPONENTS" entries for bookworm, taken from
# one-line .list files and deb822 .sources files alike.
host_sources() {
    local f
    for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
        [ -r "$f" ] || continue
        sed -e 's/#.*//' -e 's/\[[^]]*\]//' "$f" | awk '$1 == "deb" && NF >= 4 { print }'
    done
    for f in /etc/apt/sources.list.d/*.sources; do
        [ -r "$f" ] || continue
        awk '
            function flush(   i, j, nu, ns, u, s) {
                if (types ~ /(^| )deb( |$)/ && enabled != "no" && uris != "" && suites != "") {
                    nu = split(uris, u, " "); ns = split(suites, s, " ")
                    for (i = 1; i <= nu; i++) for (j = 1; j <= ns; j++)
                        print "deb " u[i] " " s[j] " " (comps == "" ? "main" : comps)
                }
                types = uris = suites = comps = enabled = ""
            }
            /^[ \t]*#/ { next }
            /^[ \t]*$/ { flush(); next }
            {
                key = tolower($1); sub(/:$/, "", key)
                val = $0; sub(/^[^:]*:[ \t]*/, "", val)
                if (key == "types") types = val
                else if (key == "uris") uris = val
                else if (key == "suites") suites = val
                else if (key == "components") comps = val
                else if (key == "enabled") enabled = tolower(val)
            }
            END { flush() }' "$f"
    done
}
mirrors=()
if [ -n "${HUSK_DEBIAN_MIRROR:-}" ]; then
    mirrors=("deb $HUSK_DEBIAN_MIRROR $suite main" "deb $HUSK_DEBIAN_MIRROR $suite-updates main")
else
    while IFS= read -r line; do
        # keep bookworm, bookworm-updates, bookworm-security; main only
        s=$(echo "$line" | awk '{ print $3 }')
        case $s in "$suite"|"$suite"-updates|"$suite"-security|"$suite"/updates) ;; *) continue ;; esac
        echo "$line" | grep -qw main || continue
        line=$(echo "$line" | awk '{ print $1, $2, $3, "main" }')
        mirrors+=("$line")
    done < <(host_sources | awk '!seen[$0]++')
fi
[ ${#mirrors[@]} -gt 0 ] || die "no '$suite' Debian entry found in /etc/apt/sources.list(.d); set HUSK_DEBIAN_MIRROR=http://your.debian.mirror/debian"

# Carry over the host's apt decision on Release-file expiry (snapshot mirrors).
aptopts=()
if apt-config dump 2>/dev/null | grep -qi '^Acquire::Check-Valid-Until "false"'; then
    aptopts+=(--aptopt='Acquire::Check-Valid-Until "false"')
fi

# ---- build -------------------------------------------------------------------
mkdir -p "$outdir"
outdir=$(cd "$outdir" && pwd)
tar=$outdir/debian.tar
new=$outdir/debian.new.$$
trap 'rm -rf "$new" "$outdir/debian.sqfs.new.$$"; [ "${HUSK_KEEP_TAR:-0}" = 1 ] || rm -f "$tar"' EXIT

t0=$(date +%s.%N)
say "mirrors: ${mirrors[*]}"
say "mmdebstrap --mode=unshare $suite ($packages) -> $tar"
mmdebstrap --mode=unshare --variant=apt --format=tar --quiet \
    --include="$packages" "${aptopts[@]}" \
    --customize-hook='echo husk > "$1/etc/hostname"' \
    --customize-hook=': > "$1/etc/resolv.conf"' \
    --customize-hook='[ -e "$1/etc/hosts" ] || printf "127.0.0.1\tlocalhost\n::1\tlocalhost\n" > "$1/etc/hosts"' \
    --customize-hook='rm -rf "$1"/var/lib/apt/lists/* "$1"/var/cache/apt/*.bin' \
    "$suite" "$tar" "${mirrors[@]}" \
    || die "mmdebstrap failed (see above)"
t1=$(date +%s.%N)

say "unpacking as $me (ownership dropped, permissions normalised) -> $outdir/debian"
mkdir "$new"
# Device nodes cannot be created without privilege; launchers provide /dev.
tar -x -f "$tar" -C "$new" --no-same-owner --no-same-permissions \
    --exclude='./dev/*' --warning=no-unknown-keyword
chmod -R u+rwX,go+rX,go-w "$new"
mkdir -p "$new/data" "$new/dev" "$new/proc" "$new/sys" "$new/tmp" "$new/home" "$new/mnt"
chmod 1777 "$new/tmp"
head -c $((40 * 1024 * 1024)) /dev/urandom > "$new/data/blob.bin"
chmod 0644 "$new/data/blob.bin"
if [ -e "$outdir/debian" ]; then
    chmod -R u+rwX "$outdir/debian" 2>/dev/null || true
    rm -rf "$outdir/debian"
fi
mv "$new" "$outdir/debian"
t2=$(date +%s.%N)

say "mksquashfs -comp $comp -> $outdir/debian.sqfs"
mksquashfs "$outdir/debian" "$outdir/debian.sqfs.new.$$" \
    -all-root -noappend -comp "$comp" -no-progress -quiet >/dev/null
mv "$outdir/debian.sqfs.new.$$" "$outdir/debian.sqfs"
t3=$(date +%s.%N)

du_dir=$(du -sm "$outdir/debian" | cut -f1)
sz_sqfs=$(( $(stat -c %s "$outdir/debian.sqfs") / 1024 / 1024 ))
awk -v a="$t0" -v b="$t1" -v c="$t2" -v d="$t3" -v u="$du_dir" -v s="$sz_sqfs" -v z="$comp" 'BEGIN {
    printf "build.sh: done: mmdebstrap %.0f s, unpack %.0f s, mksquashfs %.0f s, total %.0f s\n", b-a, c-b, d-c, d-a
    printf "build.sh: debian/ %d MiB, debian.sqfs %d MiB (%s)\n", u, s, z }' >&2

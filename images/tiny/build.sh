#!/bin/bash
# Build the tiny test images, as an ordinary user, in seconds.
#
# usage: images/tiny/build.sh OUTDIR PROBE HUSK
#
# OUTDIR/tiny.sqfs       `HUSK build images/tiny/recipe`: static busybox, the
#                          probe, a minimal /etc, an image environment
# OUTDIR/tiny/           the same tree as a directory image (unsquashfs)
# OUTDIR/hostile/        an image whose symlinks point out of the image, for the
# OUTDIR/hostile.sqfs      safety tests: a launcher must resolve them inside the image
#                          (always mksquashfs: a careful builder may refuse such links)
# OUTDIR/corrupt.sqfs    tiny.sqfs with its inode and directory tables overwritten
#                          (the superblock stays valid, so it still looks like SquashFS)
# OUTDIR/truncated.sqfs  the first half of tiny.sqfs
# OUTDIR/notanimage      a text file
#
# BUSYBOX (default /bin/busybox, from Debian's busybox-static) must be static:
# the image has no libc.
set -euo pipefail

die() { echo "build.sh: $*" >&2; exit 1; }

[ $# -eq 3 ] || die "usage: build.sh OUTDIR PROBE HUSK"
OUTDIR=$1
PROBE=$2
HUSK=$3
RECIPE=${TINY_RECIPE:-$(cd "$(dirname "$0")" && pwd)/recipe}
BUSYBOX=${BUSYBOX:-/bin/busybox}

[ -x "$PROBE" ] || die "probe '$PROBE' is not an executable file"
[ -x "$HUSK" ] || die "husk '$HUSK' is not an executable file"
[ -r "$RECIPE" ] || die "recipe '$RECIPE' not found (images/tiny/recipe, or set TINY_RECIPE)"
[ -x "$BUSYBOX" ] || die "busybox '$BUSYBOX' not found (install busybox-static)"
command -v mksquashfs >/dev/null || die "mksquashfs not found (install squashfs-tools)"
if command -v readelf >/dev/null && readelf -l "$BUSYBOX" 2>/dev/null | grep -q 'INTERP'; then
	die "busybox '$BUSYBOX' is dynamically linked; the image needs busybox-static"
fi

mkdir -p "$OUTDIR"
OUTDIR=$(cd "$OUTDIR" && pwd)
umask 022

# Remove a previous tree even if parts of it were made read-only.
clean() {
	if [ -e "$1" ] || [ -L "$1" ]; then
		chmod -R u+w "$1" 2>/dev/null || true
		rm -rf "$1"
	fi
}

# The tiny image is defined by images/tiny/recipe and made by husk build;
# the directory form is the same tree, unpacked from it.
build_tiny() {
	local ctx=$OUTDIR/tiny.context

	clean "$ctx"
	clean "$OUTDIR/tiny"
	mkdir -p "$ctx"
	cp "$BUSYBOX" "$ctx/busybox"
	cp "$PROBE" "$ctx/probe"
	rm -f "$OUTDIR/tiny.sqfs"
	"$HUSK" build -q --context "$ctx" "$RECIPE" "$OUTDIR/tiny.sqfs" >/dev/null
	unsquashfs -q -no-xattrs -d "$OUTDIR/tiny" "$OUTDIR/tiny.sqfs" >/dev/null
	# unsquashfs keeps setuid bits only when run by root
	chmod 4755 "$OUTDIR/tiny/probe-suid"
	clean "$ctx"
}

# The tiny image plus symlinks that lead out of the image when followed on the
# host: absolute, relative with too many "..", a loop, on the very paths a
# launcher mounts over (/tmp, /home, /dev, /etc/hosts, /etc/resolv.conf, ...).
build_hostile() {
	local root=$OUTDIR/hostile

	clean "$root"
	cp -a "$OUTDIR/tiny" "$root"
	rm -rf "$root/tmp" "$root/home" "$root/dev" "$root/root" "$root/etc/hosts" "$root/etc/resolv.conf"
	ln -s /etc "$root/tmp"
	ln -s / "$root/home"
	ln -s ../../.. "$root/dev"
	ln -s /root "$root/root"
	ln -s ../../../../ "$root/evil"
	ln -s / "$root/abs"
	ln -s loop "$root/loop"
	ln -s /etc/shadow "$root/etc/hosts"
	ln -s ../../../../../etc/shadow "$root/etc/resolv.conf"
	rm -f "$root/etc/group"
	ln -s ../../../../../etc/gshadow "$root/etc/group"
}

make_sqfs() {
	rm -f "$2"
	mksquashfs "$1" "$2" -all-root -noappend -quiet -no-progress -comp gzip >/dev/null
}

# Read a little-endian unsigned 64-bit field of the SquashFS superblock.
sb_u64() {
	od -An -t u8 -j "$2" -N 8 "$1" | tr -d ' '
}

build_broken() {
	local good=$OUTDIR/tiny.sqfs size inode_start frag_start len

	# Garbage over the inode and directory tables (superblock offsets 64 and
	# 80: inode_table_start and fragment_table_start): detection by magic
	# still succeeds, so the failure must come from mounting or setup.
	cp "$good" "$OUTDIR/corrupt.sqfs"
	inode_start=$(sb_u64 "$good" 64)
	frag_start=$(sb_u64 "$good" 80)
	size=$(stat -c %s "$good")
	if [ "$frag_start" -le "$inode_start" ] || [ "$frag_start" -gt "$size" ]; then
		frag_start=$size # no fragment table: garbage to the end
	fi
	len=$((frag_start - inode_start))
	[ "$len" -gt 0 ] || die "cannot locate the inode table of $good"
	{ yes 'husk-corrupt-garbage' || true; } | head -c "$len" |
		dd of="$OUTDIR/corrupt.sqfs" bs=1 seek="$inode_start" conv=notrunc status=none

	head -c $((size / 2)) "$good" >"$OUTDIR/truncated.sqfs"
	echo "This is a text file, not a husk image." >"$OUTDIR/notanimage"
}

build_tiny
build_hostile
make_sqfs "$OUTDIR/hostile" "$OUTDIR/hostile.sqfs"
build_broken

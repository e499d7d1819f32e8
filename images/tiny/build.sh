#!/bin/bash
# Build the tiny test images, as an ordinary user, in seconds.
#
# usage: images/tiny/build.sh OUTDIR PROBE [HUSK]
#
# OUTDIR/tiny/           directory image: static busybox, the probe, a minimal /etc
# OUTDIR/tiny.sqfs       the same as SquashFS (all files owned by root), made
#                          with `HUSK build` when HUSK is given, else mksquashfs
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

[ $# -eq 2 ] || [ $# -eq 3 ] || die "usage: build.sh OUTDIR PROBE [HUSK]"
OUTDIR=$1
PROBE=$2
HUSK=${3:-}
BUSYBOX=${BUSYBOX:-/bin/busybox}

[ -x "$PROBE" ] || die "probe '$PROBE' is not an executable file"
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

APPLETS="sh ash ls cat echo id env sleep true false mkdir touch grep sed kill ps stat
	readlink pwd test [ printf wc head tail mount umount rm cp mv ln chmod find
	uname hostname cut tr sort date dd basename dirname which tee xargs"

build_tiny() {
	local root=$OUTDIR/tiny

	clean "$root"
	mkdir -p "$root"
	for d in bin sbin usr/bin usr/local/bin proc sys dev tmp home etc root var .husk; do
		mkdir -p "$root/$d"
	done
	chmod 1777 "$root/tmp"
	chmod 0700 "$root/root"

	cp "$BUSYBOX" "$root/bin/busybox"
	chmod 0755 "$root/bin/busybox"
	for a in $APPLETS; do
		ln -s busybox "$root/bin/$a"
	done

	cp "$PROBE" "$root/probe"
	chmod 0755 "$root/probe"
	# A setuid copy: inside a container it must run with the caller's euid.
	cp "$PROBE" "$root/probe-suid"
	chmod 4755 "$root/probe-suid"

	# Not executable: running it must give status 126.
	printf '#!/bin/sh\necho "noexec.sh ran"\n' >"$root/bin/noexec.sh"
	chmod 0644 "$root/bin/noexec.sh"

	cat >"$root/etc/passwd" <<-'EOF'
	root:x:0:0:root:/root:/bin/sh
	nobody:x:65534:65534:nobody:/nonexistent:/bin/false
	EOF
	cat >"$root/etc/group" <<-'EOF'
	root:x:0:
	nogroup:x:65534:
	EOF

	cat >"$root/.husk/environment" <<-'EOF'
	# Environment of the tiny test image (read by husk at launch).
	IMAGE_VAR=from-image
	PATH=/usr/local/bin:/usr/bin:/bin:/sbin
	OVERRIDE_ME=image
	EOF
}

# The tiny image plus symlinks that lead out of the image when followed on the
# host: absolute, relative with too many "..", a loop, on the very paths a
# launcher mounts over (/tmp, /home, /dev, /etc/hosts, /etc/resolv.conf, ...).
build_hostile() {
	local root=$OUTDIR/hostile

	clean "$root"
	cp -a "$OUTDIR/tiny" "$root"
	rm -rf "$root/tmp" "$root/home" "$root/dev" "$root/root"
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
if [ -n "$HUSK" ]; then
	rm -f "$OUTDIR/tiny.sqfs"
	"$HUSK" build -q "$OUTDIR/tiny" "$OUTDIR/tiny.sqfs" >/dev/null
else
	make_sqfs "$OUTDIR/tiny" "$OUTDIR/tiny.sqfs"
fi
build_hostile
make_sqfs "$OUTDIR/hostile" "$OUTDIR/hostile.sqfs"
build_broken

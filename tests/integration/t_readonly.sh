#!/bin/bash
# The image is read-only; --writable-tmpfs makes it writable for one run only.
. "$(dirname "$0")/lib.sh"

cp "$IMG_SQFS" "$SCRATCH/tiny.sqfs.copy"

# write_all IMG [OPTION...]: try writes in the image, one probe per path.
write_all() {
	local img=$1
	shift
	run_husk run "$@" "$img" -- sh -c \
		'for p in /usr/bin/x /etc/x /husk-x /bin/busybox; do echo "path=$p"; /probe write "$p"; done'
}

for kind in $KINDS; do
	img=$(img_of "$kind")
	case_begin "the image is read-only (EROFS) [$kind]"
	write_all "$img"
	want_status 0
	# Each "path=" line is followed by that write's result.
	for p in /usr/bin/x /etc/x /husk-x /bin/busybox; do
		res=$(grep -Fx -A1 "path=$p" "$OUT" | sed -n 2p)
		if [ "$res" != "write=EROFS" ]; then
			case_fail "writing $p gave '$res', want write=EROFS"
		fi
	done
	case_end

	# The image's files belong to its root, which is only the caller with
	# --fake-root; ordinary permissions still apply under --writable-tmpfs.
	case_begin "--writable-tmpfs makes the image writable [$kind]"
	run_husk run --writable-tmpfs --fake-root "$img" -- sh -c \
		'/probe write /usr/bin/x; /probe write /etc/x; /probe write /husk-x; cat /usr/bin/x'
	want_status 0
	want_count 3 "write=ok"
	want_line "written by probe"
	case_end

	case_begin "nothing written with --writable-tmpfs persists [$kind]"
	run_husk run "$img" -- sh -c 'for p in /usr/bin/x /etc/x /husk-x; do test -e $p && echo "persisted=$p"; done; echo checked'
	want_status 0
	want_line "checked"
	want_no_re '^persisted='
	if [ "$kind" = dir ]; then
		for p in usr/bin/x etc/x husk-x; do
			want_true "$IMG_DIR/$p exists on the host" test ! -e "$IMG_DIR/$p"
		done
	fi
	case_end

	case_begin "the image is mounted nosuid and nodev [$kind]"
	run_husk run "$img" -- /probe setuid-info
	want_status 0
	want_line "nosuid=yes"
	want_line "nodev=yes"
	want_line "ro=yes"
	case_end
done

# -v ends with what the kernel asked of husk's SquashFS server; push-ahead
# and prefetch are off so that every page comes from a read the kernel made.
served_reads() {
	sed -n 's/.*image served: .* \([0-9][0-9]*\) reads (.*/\1/p' "$ERR"
}

case_begin "pages of the SquashFS image stay cached from one open to the next"
loop='i=0; while [ $i -lt $0 ]; do cat /bin/busybox >/dev/null; i=$((i + 1)); done'
HUSK_NO_PUSH=1 HUSK_NO_PREFETCH=1 run_husk run -v "$IMG_SQFS" -- /bin/sh -c "$loop" 1
want_status 0
once=$(served_reads)
HUSK_NO_PUSH=1 HUSK_NO_PREFETCH=1 run_husk run -v "$IMG_SQFS" -- /bin/sh -c "$loop" 5
want_status 0
five=$(served_reads)
diag "reads for one cat of /bin/busybox: $once; for five: $five"
if [ -z "$once" ] || [ -z "$five" ]; then
	case_fail "no 'image served' line with -v"
elif [ "$once" -lt 4 ]; then
	case_fail "only $once reads for a 2 MB file: is push-ahead still on?"
elif [ "$five" -gt $((once + 2)) ]; then
	case_fail "five reads of one file made $five reads of the image, one made $once: the page cache was dropped"
fi
case_end

# One serving thread to start with; concurrent readers must get more (-v
# says how many served, of how many it may start: at least 2): 8 readers of
# 8 files of their own, so that their reads queue up at once. Push-ahead and
# prefetch off: with them pages are often there before a reader asks, and
# one thread answers the few reads left.
case_begin "concurrent readers of a SquashFS image are served by more than one thread"
rm -rf "$SCRATCH/eight"
cp -a "$IMG_DIR" "$SCRATCH/eight"
for n in 1 2 3 4 5 6 7 8; do
	seq -f "file $n line %g of a compressible file" 30000 >"$SCRATCH/eight/f$n"
done
mksquashfs "$SCRATCH/eight" "$SCRATCH/eight.sqfs" -noappend -quiet -no-progress -all-root \
	>/dev/null 2>&1 || case_fail "mksquashfs failed"
HUSK_NO_PUSH=1 HUSK_NO_PREFETCH=1 run_husk run -v "$SCRATCH/eight.sqfs" -- /bin/sh -c \
	'for i in 1 2 3 4 5 6 7 8; do cat /f$i >/dev/null & done; wait'
want_status 0
want_re 'image served: .*, [2-8] of [2-8] threads$' "$ERR"
case_end

case_begin "file contents through the server are the image's, for compressed and stored blocks, at any offset"
# Random bytes do not compress: mksquashfs stores those blocks as they are
# (the server reads them straight into its reply); text compresses.
rm -rf "$SCRATCH/mixed"
cp -a "$IMG_DIR" "$SCRATCH/mixed"
head -c 1500000 /dev/urandom >"$SCRATCH/mixed/random"
for i in $(seq 40000); do echo "line $i of a compressible file"; done >"$SCRATCH/mixed/text"
mksquashfs "$SCRATCH/mixed" "$SCRATCH/mixed.sqfs" -noappend -quiet -no-progress -all-root \
	>/dev/null 2>&1 || case_fail "mksquashfs failed"
want=""
for f in random text; do
	want="$want$(sha256sum <"$SCRATCH/mixed/$f" | cut -c1-64)
$(dd if="$SCRATCH/mixed/$f" bs=4097 skip=13 count=70 2>/dev/null | sha256sum | cut -c1-64)
$(dd if="$SCRATCH/mixed/$f" bs=1 skip=131000 count=500 2>/dev/null | sha256sum | cut -c1-64)
"
done
run_husk run "$SCRATCH/mixed.sqfs" -- /bin/sh -c '
	for f in random text; do
		busybox sha256sum </$f | cut -c1-64
		dd if=/$f bs=4097 skip=13 count=70 2>/dev/null | busybox sha256sum | cut -c1-64
		dd if=/$f bs=1 skip=131000 count=500 2>/dev/null | busybox sha256sum | cut -c1-64
	done'
want_status 0
[ "$(cat "$OUT")" = "$(printf '%s' "$want")" ] ||
	{ case_fail "contents differ"; diag_file stdout "$OUT"; }
case_end

case_begin "the SquashFS file is unchanged"
want_true "tiny.sqfs changed during the runs" cmp -s "$IMG_SQFS" "$SCRATCH/tiny.sqfs.copy"
case_end

case_begin "no leftovers after the read-only runs"
check_leftovers
case_end

done_testing

#!/bin/bash
# Image digests: `husk run IMAGE@sha256:HEX` runs only the image pinned (the
# digest of the file husk opened and serves), a changed image is refused even
# when its size and mtime were put back, `husk verify`, and the per-user
# digest cache.
. "$(dirname "$0")/lib.sh"

export XDG_CACHE_HOME=$STAGE/cache
CACHE=$XDG_CACHE_HOME/husk/digests

mk_sqfs() { # DIR IMAGE
	rm -f "$2"
	mksquashfs "$1" "$2" -all-root -noappend -quiet -no-progress >/dev/null
}

sha() { sha256sum "$1" | cut -d' ' -f1; }

cp -a "$IMG_DIR" "$STAGE/tree"
echo "pinned-image-mark" >"$STAGE/tree/mark"
IMG=$STAGE/pin.sqfs
mk_sqfs "$STAGE/tree" "$IMG"
D=$(sha "$IMG")
WRONG=$(printf '%s' "$D" | tr '0-9a-f' '1-9a-f0')
MARK=$STAGE/ran

case_begin "a pinned run with the image's digest runs"
run_husk run "$IMG@sha256:$D" -- cat /mark
want_status 0
want_line "pinned-image-mark"
case_end

case_begin "husk shell takes a pinned image"
printf 'cat /mark\n' >"$STAGE/shell-input"
SHELL=/bin/sh run_husk_stdin "$STAGE/shell-input" shell "$IMG@sha256:$D"
want_status 0
want_line "pinned-image-mark"
case_end

case_begin "a pinned run with another digest is refused (125) and runs nothing"
rm -f "$MARK"
run_husk run "$IMG@sha256:$WRONG" -- /probe write "$MARK"
want_status 125
want_husk_error
want_re "^husk: image '.*pin\.sqfs': digest sha256:$D does not match the pinned sha256:$WRONG; " "$ERR"
want_true "the command ran although the digest differs" test ! -e "$MARK"
case_end

case_begin "the digest is checked in --dry-run too"
run_husk run --dry-run "$IMG@sha256:$WRONG" -- true
want_status 125
want_husk_error
case_end

case_begin "--dry-run shows the pinned digest"
run_husk run --dry-run "$IMG@sha256:$D" -- true
want_status 0
want_line "digest: sha256:$D (pinned: it matches)"
case_end

for bad in "${D^^}" "${D:0:63}" "${D}0" "sha256:$D" "" "${D:0:63}g"; do
	case_begin "a malformed digest is a usage error (125): '@sha256:${bad:0:12}...'"
	rm -f "$MARK"
	run_husk run "$IMG@sha256:$bad" -- /probe write "$MARK"
	want_status 125
	want_husk_error
	want_re "64 lowercase hex digits" "$ERR"
	want_true "the command ran" test ! -e "$MARK"
	case_end
done

case_begin "a directory image cannot be pinned (125)"
run_husk run "$IMG_DIR@sha256:$D" -- true
want_status 125
want_husk_error
want_re "a directory cannot be pinned" "$ERR"
case_end

case_begin "an '@' that starts no digest is part of the path"
cp "$IMG" "$STAGE/app@v1.sqfs"
run_husk run "$STAGE/app@v1.sqfs" -- cat /mark
want_status 0
want_line "pinned-image-mark"
case_end

case_begin "a path with '@' can be pinned too"
run_husk run "$STAGE/app@v1.sqfs@sha256:$D" -- cat /mark
want_status 0
want_line "pinned-image-mark"
case_end

# --- husk verify ---------------------------------------------------------

case_begin "verify IMAGE@sha256:HEX: exit 0 and one OK line"
run_husk verify "$IMG@sha256:$D"
want_status 0
want_line "$IMG: OK sha256:$D"
want_count 1 "$IMG: OK sha256:$D"
case_end

case_begin "verify IMAGE --digest sha256:HEX"
run_husk verify "$IMG" --digest "sha256:$D"
want_status 0
want_line "$IMG: OK sha256:$D"
case_end

case_begin "verify: a mismatch exits 1 with one husk: line"
run_husk verify "$IMG" --digest "sha256:$WRONG"
want_status 1
want_husk_error
want_re "digest sha256:$D does not match sha256:$WRONG" "$ERR"
want_no_re "OK"
case_end

case_begin "verify: an unreadable file is husk's failure (125)"
cp "$IMG" "$STAGE/unreadable.sqfs"
chmod 000 "$STAGE/unreadable.sqfs"
run_husk verify "$STAGE/unreadable.sqfs@sha256:$D"
want_status 125
want_husk_error
want_re "Permission denied" "$ERR"
case_end

case_begin "verify: a missing file is husk's failure (125)"
run_husk verify "$STAGE/no-such.sqfs@sha256:$D"
want_status 125
want_husk_error
case_end

case_begin "verify: a directory is husk's failure (125)"
run_husk verify "$IMG_DIR" --digest "sha256:$D"
want_status 125
want_husk_error
case_end

case_begin "verify: no digest given is a usage error (125)"
run_husk verify "$IMG"
want_status 125
want_husk_error
case_end

case_begin "verify: two different digests are a usage error (125)"
run_husk verify "$IMG@sha256:$D" --digest "sha256:$WRONG"
want_status 125
want_husk_error
case_end

# --- the cache, and a changed image ------------------------------------------

# An entry is written only for a file unchanged for 2 s (timestamps are
# coarse): wait until the image is that old.
age=$(($(date +%s) - $(stat -c %Z "$IMG")))
[ "$age" -ge 3 ] || sleep $((3 - age))

case_begin "a pinned run caches the digest in a private entry"
rm -rf "$CACHE"
run_husk run "$IMG@sha256:$D" -- true
want_status 0
n=$(find "$CACHE" -type f 2>/dev/null | wc -l)
want_true "want 1 cache entry, found $n" test "$n" = 1
entry=$(find "$CACHE" -type f 2>/dev/null | head -n 1)
want_true "the entry does not hold the digest" grep -q "sha256=$D\$" "$entry"
want_true "the entry's mode is $(stat -c %a "$entry" 2>/dev/null), want 600" \
	test "$(stat -c %a "$entry" 2>/dev/null)" = 600
case_end

case_begin "verify -v takes the digest from the cache"
run_husk verify -v "$IMG@sha256:$D"
want_status 0
want_re "from the cache" "$ERR"
case_end

# Change one byte of the padding after the filesystem (the image still works)
# and put size and mtime back, as `touch -d` allows anyone to.
case_begin "a changed image with its size and mtime restored is refused (125)"
used=$(od -An -t u8 -j 40 -N 8 "$IMG" | tr -d ' ')
size=$(stat -c %s "$IMG")
mtime=$(stat -c %.9Y "$IMG")
if [ "$used" -lt "$size" ]; then
	printf 'X' | dd of="$IMG" bs=1 seek="$used" conv=notrunc status=none
	touch -d "@$mtime" "$IMG"
	want_true "size or mtime not restored" test "$(stat -c %s/%.9Y "$IMG")" = "$size/$mtime"
	D2=$(sha "$IMG")
	want_true "the image did not change" test "$D2" != "$D"
	rm -f "$MARK"
	run_husk run "$IMG@sha256:$D" -- /probe write "$MARK"
	want_status 125
	want_husk_error
	want_re "digest sha256:$D2 does not match the pinned sha256:$D" "$ERR"
	want_true "the command ran" test ! -e "$MARK"
	run_husk verify "$IMG@sha256:$D"
	want_status 1
	# Only the digest stands in the way: unpinned, the image still runs.
	run_husk run "$IMG" -- cat /mark
	want_status 0
	want_line "pinned-image-mark"
	run_husk run "$IMG@sha256:$D2" -- cat /mark
	want_status 0
else
	case_fail "the image has no padding to change (bytes_used $used, size $size)"
fi
case_end

case_begin "without XDG_CACHE_HOME the cache is ~/.cache/husk/digests"
cp "$IMG" "$STAGE/home-cache.sqfs"
touch -d "@$mtime" "$STAGE/home-cache.sqfs"
sleep 2.2
H=$(sha "$STAGE/home-cache.sqfs")
ls "$HOME/.cache/husk/digests" >"$STAGE/before" 2>/dev/null
XDG_CACHE_HOME= run_husk verify "$STAGE/home-cache.sqfs@sha256:$H"
want_status 0
ls "$HOME/.cache/husk/digests" >"$STAGE/after" 2>/dev/null
new=$(comm -13 "$STAGE/before" "$STAGE/after")
want_true "no new entry in ~/.cache/husk/digests" test -n "$new"
for e in $new; do
	want_true "entry $e lacks the digest" grep -q "sha256=$H\$" "$HOME/.cache/husk/digests/$e"
	rm -f "$HOME/.cache/husk/digests/$e"
done
case_end

case_begin "a corrupt cache entry is ignored and rewritten"
run_husk verify "$STAGE/home-cache.sqfs@sha256:$H"   # its entry, under XDG_CACHE_HOME
entry=$(grep -l "sha256=$H\$" "$CACHE"/* 2>/dev/null | head -n 1)
want_true "no cache entry for the image" test -n "$entry"
if [ -n "$entry" ]; then
	good=$(cat "$entry")
	printf '%s\n' "${good%sha256=*}sha256=$D" >"$entry"   # well formed, wrong digest
	chmod 0666 "$entry" 2>/dev/null                          # ... and writable by others
	run_husk verify "$STAGE/home-cache.sqfs@sha256:$H"
	want_status 0
	printf 'garbage\n' >"$entry"
	chmod 0600 "$entry"
	run_husk verify "$STAGE/home-cache.sqfs@sha256:$H"
	want_status 0
	want_true "the entry was not rewritten" test "$(cat "$entry")" = "$good"
fi
case_end

case_begin "no leftovers after the digest runs"
check_leftovers
case_end

done_testing

#!/bin/bash
# Bind mounts: -b/--bind SRC[:DST[:ro|rw]], repeatable, DST defaulting to SRC,
# read-write by default, and the HUSK_BIND variable (comma-separated specs).
. "$(dirname "$0")/lib.sh"

# A file in the host's /tmp (made per case, removed after it), which the
# container must see as its /tmp.
TMPDIR_MARK=/tmp/husk-bind-mark.$$
trap 'rm -f "$TMPDIR_MARK"' EXIT
B1=$STAGE/b1
B2=$STAGE/b2
mkdir -p "$B1" "$B2"
echo "hello-b1" >"$B1/hello.txt"
echo "hello-b2" >"$B2/hello.txt"

for kind in $KINDS; do
	img=$(img_of "$kind")
	case_begin "-b SRC:DST onto a directory of the image [$kind]"
	run_husk run -b "$B1:/var" "$img" -- cat /var/hello.txt
	want_status 0
	want_line "hello-b1"
	case_end

	case_begin "--bind SRC:DST onto a path missing in the image [$kind]"
	run_husk run --bind "$B1:/newdir" "$img" -- cat /newdir/hello.txt
	want_status 0
	want_line "hello-b1"
	case_end

	case_begin "-b onto a nested missing path [$kind]"
	run_husk run -b "$B1:/new/deep/dir" "$img" -- cat /new/deep/dir/hello.txt
	want_status 0
	want_line "hello-b1"
	case_end

	case_begin "binds are read-write by default [$kind]"
	rm -f "$B1/rw-default.txt"
	run_husk run -b "$B1:/var" "$img" -- /probe write /var/rw-default.txt
	want_status 0
	want_line "write=ok"
	want_true "$B1/rw-default.txt was not written on the host" \
		grep -qx 'written by probe' "$B1/rw-default.txt"
	case_end

	case_begin "SRC:DST:rw is read-write [$kind]"
	rm -f "$B1/rw.txt"
	run_husk run -b "$B1:/var:rw" "$img" -- /probe write /var/rw.txt
	want_status 0
	want_line "write=ok"
	want_true "$B1/rw.txt was not written on the host" test -f "$B1/rw.txt"
	case_end

	case_begin "SRC:DST:ro is enforced (EROFS) [$kind]"
	rm -f "$B1/ro.txt"
	run_husk run -b "$B1:/var:ro" "$img" -- sh -c '/probe write /var/ro.txt; cat /var/hello.txt'
	want_status 0
	want_line "write=EROFS"
	want_line "hello-b1"
	want_true "$B1/ro.txt exists on the host" test ! -e "$B1/ro.txt"
	case_end

	case_begin "a single file can be bound, onto a missing path [$kind]"
	run_husk run -b "$B1/hello.txt:/var/hello-file:ro" "$img" -- cat /var/hello-file
	want_status 0
	want_line "hello-b1"
	case_end

	case_begin "repeated -b [$kind]"
	run_husk run -b "$B1:/var" -b "$B2:/newdir2:ro" "$img" -- \
		sh -c 'cat /var/hello.txt /newdir2/hello.txt; /probe write /newdir2/x'
	want_status 0
	want_line "hello-b1"
	want_line "hello-b2"
	want_line "write=EROFS"
	case_end

	case_begin "HUSK_BIND adds comma-separated binds [$kind]"
	LAST_CMD="HUSK_BIND=$B1:/var,$B2:/mnt2:ro husk run $img -- sh -c ..."
	HUSK_BIND="$B1:/var,$B2:/mnt2:ro" timeout -k 5 "$HUSK_TIMEOUT" "$HUSK" run "$img" -- \
		sh -c 'cat /var/hello.txt /mnt2/hello.txt; /probe write /mnt2/x' \
		</dev/null >"$OUT" 2>"$ERR"
	STATUS=$?
	want_status 0
	want_line "hello-b1"
	want_line "hello-b2"
	want_line "write=EROFS"
	case_end

	case_begin "HUSK_BIND and -b together [$kind]"
	LAST_CMD="HUSK_BIND=$B1:/var husk run -b $B2:/mnt3 $img -- cat ..."
	HUSK_BIND="$B1:/var" timeout -k 5 "$HUSK_TIMEOUT" "$HUSK" run -b "$B2:/mnt3" "$img" -- \
		cat /var/hello.txt /mnt3/hello.txt </dev/null >"$OUT" 2>"$ERR"
	STATUS=$?
	want_status 0
	want_line "hello-b1"
	want_line "hello-b2"
	case_end

	# DST defaults to SRC; a source outside /tmp, $HOME and the cwd, which
	# are visible anyway.
	lic=/usr/share/common-licenses
	if [ -r "$lic/GPL-3" ]; then
		case_begin "-b SRC: DST defaults to SRC [$kind]"
		run_husk run -b "$lic" "$img" -- head -n 2 "$lic/GPL-3"
		want_status 0
		want_line "$(sed -n 2p "$lic/GPL-3")"
		case_end

		case_begin "-b SRC:SRC:ro outside /tmp is read-only [$kind]"
		run_husk run -b "$lic:$lic:ro" "$img" -- /probe write "$lic/x"
		want_status 0
		want_line "write=EROFS"
		case_end
	else
		case_skip "-b SRC: DST defaults to SRC [$kind]" "no $lic/GPL-3 on this host"
	fi

	case_begin "a missing bind source is husk's error (125) [$kind]"
	run_husk run -b "$STAGE/no-such-src:/x" "$img" -- /bin/true
	want_status 125
	want_husk_error
	case_end

	case_begin "a bad bind option is husk's error (125) [$kind]"
	run_husk run -b "$B1:/var:bogus" "$img" -- /bin/true
	want_status 125
	want_husk_error
	case_end

	# As on a kernel before 5.2: no detached clones, binds by mount(2) and a
	# remount; the stage must then avoid the host's /tmp (a bind source).
	case_begin "old kernel: ro and rw binds, a missing destination, host /tmp [$kind]"
	rm -f "$B1/old-rw.txt" "$B2/old-ro.txt"
	echo "host-tmp-$$" >"$TMPDIR_MARK"
	HUSK_SAVED=$HUSK
	HUSK=$HUSK_OLD_KERNEL
	run_husk run -b "$B1:/var" -b "$B2:/newdir3:ro" "$img" -- sh -c \
		"/probe write /var/old-rw.txt; /probe write /newdir3/old-ro.txt; cat /newdir3/hello.txt '$TMPDIR_MARK'"
	HUSK=$HUSK_SAVED
	want_status 0
	want_count 1 "write=ok"
	want_count 1 "write=EROFS"
	want_line "hello-b2"
	want_line "host-tmp-$$"
	want_true "$B2/old-ro.txt exists on the host" test ! -e "$B2/old-ro.txt"
	rm -f "$TMPDIR_MARK"
	case_end
done

case_begin "binds leave the image directory unchanged"
want_true "$IMG_DIR/newdir was created" test ! -e "$IMG_DIR/newdir"
want_true "$IMG_DIR/new was created" test ! -e "$IMG_DIR/new"
want_true "$IMG_DIR/var/hello.txt was created" test ! -e "$IMG_DIR/var/hello.txt"
case_end

case_begin "no leftovers after the bind runs"
check_leftovers
case_end

done_testing

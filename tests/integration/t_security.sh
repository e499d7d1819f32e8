#!/bin/bash
# Privilege posture: no capabilities and no_new_privs inside, setuid bits in
# the image not honoured, no fd leaked into the container (but the caller's
# own fds passed on), and husk refusing to run setuid.
. "$(dirname "$0")/lib.sh"

ZERO=0000000000000000
echo "fd7-content-$$" >"$STAGE/fd7.txt"

for kind in $KINDS; do
	img=$(img_of "$kind")
	case_begin "no capabilities inside, no_new_privs set [$kind]"
	run_husk run "$img" -- /probe caps
	want_status 0
	for c in CapInh CapPrm CapEff CapBnd CapAmb; do
		want_line "$c=$ZERO"
	done
	want_line "NoNewPrivs=1"
	case_end

	case_begin "--fake-root: no_new_privs set, no capability in effect after exec [$kind]"
	run_husk run --fake-root "$img" -- /probe caps
	want_status 0
	want_line "NoNewPrivs=1"
	want_line "CapAmb=$ZERO"
	case_end

	case_begin "a setuid file in the image runs with the caller's euid [$kind]"
	run_husk run "$img" -- /probe-suid setuid-info
	want_status 0
	want_line "exe_mode=4755" # the bit is really there: the check means something
	want_line "euid=$MY_UID"
	want_line "suid_honoured=no"
	want_line "nosuid=yes"
	case_end

	# What husk receives: exactly what the probe sees when run right here
	# with the same redirections (0, 1, 2 and the fd 7 we open on purpose).
	case_begin "no fd leaks into the container; the caller's fd 7 reaches it [$kind]"
	exec 7<"$STAGE/fd7.txt"
	"$PROBE" fds </dev/null >"$STAGE/host-fds" 2>&1
	run_husk run "$img" -- /probe fds
	exec 7<&-
	want_status 0
	want_line "fds=0,1,2,7" "$STAGE/host-fds"
	want_line "$(grep '^fds=' "$STAGE/host-fds")"
	case_end

	case_begin "the caller's fd 7 is readable inside (the PMI_FD case) [$kind]"
	exec 7<"$STAGE/fd7.txt"
	run_husk run "$img" -- sh -c 'cat <&7'
	exec 7<&-
	want_status 0
	want_line "fd7-content-$$"
	case_end

	case_begin "no fd leaks with --writable-tmpfs and binds [$kind]"
	run_husk run --writable-tmpfs -b "$STAGE:/var" "$img" -- /probe fds
	want_status 0
	want_line "fds=0,1,2"
	case_end
done

if [ -n "${SETUID_HUSK:-}" ]; then
	for h in "$SETUID_HUSK" "$SETUID_HUSK-sgid"; do
		case $h in *-sgid) what=setgid ;; *) what=setuid ;; esac
		case_begin "husk refuses to run $what root (125)"
		LAST_CMD="$h run $IMG_SQFS -- /probe ids"
		timeout -k 5 "$HUSK_TIMEOUT" "$h" run "$IMG_SQFS" -- /probe ids \
			</dev/null >"$OUT" 2>"$ERR"
		STATUS=$?
		want_status 125
		want_husk_error
		want_re '[Ss]et[ug]id|[Ss]et-(user|group)|privilege' "$ERR"
		want_no_re '^uid='
		case_end
	done
else
	case_skip "husk refuses to run setuid or setgid root (125)" "${SETUID_SKIP:-needs tests/run as root}"
fi

case_begin "no leftovers after the security runs"
check_leftovers
case_end

done_testing

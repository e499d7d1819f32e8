#!/bin/bash
# husk doctor: real checks as the test user, each result with its fix; a
# blocked user namespace (max_user_namespaces = 0 in a namespace of our own)
# and an unreachable PMIx directory are reported as failures (status 1).
. "$(dirname "$0")/lib.sh"

case_begin "husk doctor: this machine can run images (status 0)"
run_husk doctor
want_status 0
want_re "^ok +user namespaces "
want_re "^ok +FUSE \\(SquashFS images\\) "
want_re "^ok +overlayfs in a user namespace "
want_re "^ok +openat2 "
want_re "^ok +new mount API "
want_re "^info +GPUs "
want_line "husk can run images here"
case_end

case_begin "husk doctor on a kernel without openat2 and the new mount API: warnings, status 0"
run_husk_with() { LAST_CMD="$*"; timeout -k 5 "$HUSK_TIMEOUT" "$@" </dev/null >"$OUT" 2>"$ERR"; STATUS=$?; }
run_husk_with "$HUSK_OLD_KERNEL" doctor
want_status 0
want_re "^warn +openat2 .*slower walk"
want_re "^warn +new mount API .*missing"
want_re "fix: none needed"
case_end

case_begin "husk doctor: user namespaces blocked by max_user_namespaces = 0 (status 1, the knob named)"
if unshare --user --map-root-user true 2>/dev/null; then
	run_husk_with unshare --user --map-root-user sh -c \
		'echo 0 > /proc/sys/user/max_user_namespaces && exec "$0" doctor' "$HUSK"
	want_status 1
	want_re "^FAIL +user namespaces .*user.max_user_namespaces"
	want_line "husk cannot run images here until the failures above are fixed"
else
	case_fail "unshare --user --map-root-user does not work as this user"
fi
case_end

case_begin "husk doctor: an unreachable PMIX_SERVER_TMPDIR fails with the fix"
mkdir -p "$STAGE/pmix-locked"
chmod 0 "$STAGE/pmix-locked"
PMIX_SERVER_TMPDIR=$STAGE/pmix-locked run_husk doctor
chmod 0700 "$STAGE/pmix-locked"
want_status 1
want_re "^FAIL +PMIx +PMIX_SERVER_TMPDIR '$STAGE/pmix-locked': Permission denied"
want_re "fix: ask the administrator"
case_end

case_begin "husk doctor leaves no process or mount behind"
check_leftovers
case_end

done_testing

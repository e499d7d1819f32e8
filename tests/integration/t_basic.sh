#!/bin/bash
# husk's command line basics, identity inside the container, default mounts
# (cwd, HOME, /tmp, /etc/hosts), and `husk shell`.
. "$(dirname "$0")/lib.sh"

case_begin "husk --version exits 0 and prints a version"
run_husk --version
want_status 0
want_re '[0-9]+\.[0-9]+'
case_end

case_begin "husk help run exits 0 and describes run's options"
run_husk help run
want_status 0
want_re '[-]-bind'
case_end

case_begin "husk run --help exits 0 and describes run's options"
run_husk run --help
want_status 0
want_re '[-]-bind'
case_end

TAB=$(printf '\t')
MY_CPUS=$(sed -n 's/^Cpus_allowed_list:[[:space:]]*//p' /proc/self/status)
LAST_CPU=${MY_CPUS##*[,-]}
HOME_MARK=$HOME/.husk-test-home-mark.$$
echo "home-mark-$$" >"$HOME_MARK"
HOME_CWD=$HOME/.husk-test-cwd.$$
mkdir -p "$HOME_CWD"
echo "cwd-file-$$" >"$HOME_CWD/cwd-file"
mkdir -p "$STAGE/cases/sub"
printf 'echo hi\nexit 3\n' >"$STAGE/shell-input"
printf 'echo "arg0=$0"\n' >"$STAGE/shell-arg0"

for kind in $KINDS; do
	img=$(img_of "$kind")
	case_begin "ids inside equal the caller's [$kind]"
	run_husk run "$img" -- /probe ids
	want_status 0
	want_line "uid=$MY_UID"
	want_line "euid=$MY_UID"
	want_line "gid=$MY_GID"
	want_line "egid=$MY_GID"
	want_line "user=$MY_USER"   # the generated /etc/passwd has our entry
	want_line "group=$MY_GROUP" # and the generated /etc/group ours
	case_end

	# Root assembly may run on one CPU (next to the FUSE threads); the
	# command gets exactly the caller's CPUs back before it execs.
	case_begin "the command runs on the caller's CPUs [$kind]"
	run_husk run "$img" -- grep Cpus_allowed_list /proc/self/status
	want_status 0
	want_line "Cpus_allowed_list:$TAB$MY_CPUS"
	case_end

	if command -v taskset >/dev/null; then
		case_begin "the command keeps a CPU restriction of its caller [$kind]"
		LAST_CMD="taskset -c $LAST_CPU husk run $img -- grep Cpus_allowed_list /proc/self/status"
		taskset -c "$LAST_CPU" timeout -k 5 "$HUSK_TIMEOUT" "$HUSK" run "$img" -- \
			grep Cpus_allowed_list /proc/self/status </dev/null >"$OUT" 2>"$ERR"
		STATUS=$?
		want_status 0
		want_line "Cpus_allowed_list:$TAB$LAST_CPU"
		case_end
	fi

	case_begin "generated /etc/passwd keeps the image's entries [$kind]"
	run_husk run "$img" -- cat /etc/passwd
	want_status 0
	want_re "^$MY_USER:[^:]*:$MY_UID:$MY_GID:"
	want_re '^root:'
	case_end

	case_begin "--fake-root gives uid and gid 0 [$kind]"
	run_husk run --fake-root "$img" -- /probe ids
	want_status 0
	want_line "uid=0"
	want_line "euid=0"
	want_line "gid=0"
	want_line "user=root"
	case_end

	case_begin "cwd is preserved by default [$kind]"
	RUN_CWD=$STAGE/cases/sub run_husk run "$img" -- /probe cwd
	want_status 0
	want_line "cwd=$STAGE/cases/sub"
	case_end

	# A cwd that nothing else brings in (under HOME, with --no-home) must be
	# bound at its own path.  (husk leaves out a cwd in system directories
	# such as /usr or /etc, which the image provides.)
	case_begin "a cwd not otherwise visible is bound at its own path [$kind]"
	RUN_CWD=$HOME_CWD run_husk run --no-home "$img" -- sh -c '/probe cwd; cat cwd-file'
	want_status 0
	want_line "cwd=$HOME_CWD"
	want_line "cwd-file-$$"
	case_end

	case_begin "--cwd DIR sets the working directory [$kind]"
	run_husk run --cwd /etc "$img" -- /probe cwd
	want_status 0
	want_line "cwd=/etc"
	case_end

	case_begin "HOME is bound by default [$kind]"
	run_husk run "$img" -- sh -c "echo HOME=\$HOME; cat '$HOME_MARK'"
	want_status 0
	want_line "HOME=$HOME"
	want_line "home-mark-$$"
	case_end

	case_begin "--no-home does not bind HOME [$kind]"
	run_husk run --no-home "$img" -- sh -c "cat '$HOME_MARK'; echo cat=\$?"
	want_status 0
	want_no_line "home-mark-$$"
	want_re '^cat=[1-9]'
	case_end

	case_begin "host /tmp is shared [$kind]"
	rm -f "$STAGE/from-inside"
	run_husk run "$img" -- /probe write "$STAGE/from-inside"
	want_status 0
	want_line "write=ok"
	want_true "$STAGE/from-inside was not written on the host" \
		grep -qx 'written by probe' "$STAGE/from-inside"
	case_end

	case_begin "host /etc/hosts is visible [$kind]"
	run_husk run "$img" -- cat /etc/hosts
	want_status 0
	want_true "/etc/hosts inside differs from the host's" cmp -s "$OUT" /etc/hosts
	case_end

	if [ -r /etc/resolv.conf ]; then
		case_begin "host /etc/resolv.conf is visible [$kind]"
		run_husk run "$img" -- cat /etc/resolv.conf
		want_status 0
		want_true "/etc/resolv.conf inside differs from the host's" cmp -s "$OUT" /etc/resolv.conf
		case_end
	fi

	case_begin "/proc, /sys and /dev/null work [$kind]"
	run_husk run "$img" -- sh -c 'test -r /proc/self/status && echo proc=ok;
		test -d /sys/kernel && echo sys=ok; echo x >/dev/null && echo devnull=ok'
	want_status 0
	want_line "proc=ok"
	want_line "sys=ok"
	want_line "devnull=ok"
	case_end

	case_begin "husk shell runs a shell reading stdin [$kind]"
	run_husk_stdin "$STAGE/shell-input" shell "$img"
	want_status 3
	want_line "hi"
	case_end

	# $SHELL is used when the image has it, /bin/sh otherwise.
	case_begin "husk shell uses \$SHELL when the image has it [$kind]"
	LAST_CMD="SHELL=/bin/ash husk shell $img"
	SHELL=/bin/ash timeout -k 5 "$HUSK_TIMEOUT" "$HUSK" shell "$img" \
		<"$STAGE/shell-arg0" >"$OUT" 2>"$ERR"
	STATUS=$?
	want_status 0
	want_re '^arg0=(/bin/)?ash$'
	case_end

	case_begin "husk shell falls back to /bin/sh when \$SHELL is not in the image [$kind]"
	LAST_CMD="SHELL=/no/such/shell husk shell $img"
	SHELL=/no/such/shell timeout -k 5 "$HUSK_TIMEOUT" "$HUSK" shell "$img" \
		<"$STAGE/shell-arg0" >"$OUT" 2>"$ERR"
	STATUS=$?
	want_status 0
	want_re '^arg0=(/bin/)?sh$'
	case_end
done

case_begin "no leftovers after the basic runs"
check_leftovers
case_end

rm -rf "$HOME_MARK" "$HOME_CWD"
done_testing

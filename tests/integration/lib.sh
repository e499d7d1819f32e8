# Helpers for husk's black-box integration tests; sourced by tests/integration/t_*.sh.
#
# tests/run starts each test file as the test user with these variables:
#   HUSK PROBE IMG_DIR IMG_SQFS HOSTILE_DIR HOSTILE_SQFS CORRUPT_SQFS TRUNC_SQFS
#   NOT_IMAGE STAGE (a fresh scratch directory of this file), and SETUID_HUSK
#   (a setuid-root copy of husk, when run as root) or SETUID_SKIP (why not),
#   and MPI_SQFS: the Debian + Open MPI image of images/debian/recipe, built
#   once by tests/run when a selected file has a line `# needs: mpi-image`
#   (empty when that build failed: such files then fail, not skip).
#   HUSK_TESTCONF: husk built to read its system configuration from
#   HUSK_TEST_SYSCONFDIR (and shipped profiles from HUSK_TEST_DATADIR), a
#   test build that is never installed.
#   A file t_NAME.sh may come with t_NAME.root, a bash script that tests/run,
#   as root, runs first with a root-owned directory as $1 to prepare what an
#   admin would (root-owned configuration files); t_NAME.sh then gets that
#   directory as ROOT_FIXTURES, or ROOT_SKIP (why not) when not run as root.
#
# Output protocol, one line per test case:
#   ok - NAME | not ok - NAME | skip - NAME (reason)
# with diagnostic lines starting with '#'.
#
# A case is written as:
#   case_begin "name"
#   run_husk run "$IMG" -- /probe ids
#   want_status 0
#   want_line "uid=$MY_UID"
#   case_end
# Every want_* that fails adds diagnostics and makes the case fail; the first
# failing check also shows husk's stderr.

set -u

for _v in HUSK PROBE IMG_DIR IMG_SQFS HOSTILE_DIR HOSTILE_SQFS CORRUPT_SQFS TRUNC_SQFS NOT_IMAGE STAGE; do
	if [ -z "${!_v:-}" ]; then
		echo "not ok - environment: $_v is not set (run the suite through tests/run)"
		exit 1
	fi
done
unset _v

# Only 0, 1 and 2 are handed down on purpose: close whatever else we
# inherited, so the fd tests know exactly what husk receives.
for _fd in /proc/$$/fd/*; do
	_fd=${_fd##*/}
	if [ "$_fd" -gt 2 ] && [ "$_fd" != 255 ]; then
		eval "exec $_fd>&-" 2>/dev/null
	fi
done
unset _fd

# A suite started inside a Slurm step or an MPI job would make every launch
# join one node-local session: the tests that want one say so.
unset HUSK_JOIN SLURM_JOB_ID SLURM_STEP_ID PMIX_NAMESPACE OMPI_MCA_orte_ess_jobid \
	OMPI_MCA_ess_base_jobid

HUSK_TIMEOUT=${HUSK_TIMEOUT:-30}  # seconds allowed to one husk call
MY_UID=$(id -u)
MY_GID=$(id -g)
MY_USER=$(id -un)
MY_GROUP=$(id -gn)
MY_MNTNS=$(readlink /proc/self/ns/mnt)
SCRATCH=$STAGE/.lib
mkdir -p "$SCRATCH"
OUT=$SCRATCH/out     # stdout of the last run_husk
ERR=$SCRATCH/err     # stderr of the last run_husk
STATUS=              # exit status of the last run_husk
LAST_CMD=

T_PASSED=0
T_FAILED=0
T_SKIPPED=0
T_CASE=
T_CASE_FAILED=0
T_SHOWN_ERR=0

diag() {
	printf '# %s\n' "$*"
}

# Show a file as diagnostics (at most 15 lines).
diag_file() {
	local label=$1 file=$2 n
	if [ ! -s "$file" ]; then
		diag "$label: (empty)"
		return
	fi
	n=$(wc -l <"$file")
	diag "$label:"
	head -n 15 "$file" | sed 's/^/#   | /'
	if [ "$n" -gt 15 ]; then
		diag "  ... ($n lines)"
	fi
}

case_begin() {
	if [ -n "$T_CASE" ]; then
		diag "internal: case '$T_CASE' was never ended"
		case_end
	fi
	T_CASE=$1
	T_CASE_FAILED=0
	T_SHOWN_ERR=0
}

# Record a failed check in the current case.
case_fail() {
	T_CASE_FAILED=1
	diag "$*"
	if [ "$T_SHOWN_ERR" = 0 ] && [ -n "$LAST_CMD" ]; then
		T_SHOWN_ERR=1
		diag "command: $LAST_CMD"
		diag "status: $STATUS"
		diag_file "stdout" "$OUT"
		diag_file "stderr" "$ERR"
	fi
}

case_end() {
	if [ "$T_CASE_FAILED" = 0 ]; then
		echo "ok - $T_CASE"
		T_PASSED=$((T_PASSED + 1))
	else
		echo "not ok - $T_CASE"
		T_FAILED=$((T_FAILED + 1))
	fi
	T_CASE=
	LAST_CMD=
}

case_skip() { # NAME REASON
	echo "skip - $1 ($2)"
	T_SKIPPED=$((T_SKIPPED + 1))
}

# Call at the end of every test file.
done_testing() {
	[ -z "$T_CASE" ] || case_end
	diag "$T_PASSED passed, $T_FAILED failed, $T_SKIPPED skipped"
	[ "$T_FAILED" = 0 ]
	exit
}

# run_husk ARG...: run husk (time-bounded) with stdin from /dev/null; sets
# STATUS, OUT, ERR.  124 or 137 in STATUS means it hit HUSK_TIMEOUT.
# RUN_CWD=DIR run_husk ... runs it from DIR.
run_husk() {
	run_husk_stdin /dev/null "$@"
}

# run_husk_stdin FILE ARG...: the same with stdin from FILE.
run_husk_stdin() {
	local input=$1
	shift
	local start=$SECONDS
	LAST_CMD="husk $*${RUN_CWD:+ (in $RUN_CWD)}"
	(
		if [ -n "${RUN_CWD:-}" ]; then
			cd "$RUN_CWD" || exit 99
		fi
		exec timeout -k 5 "$HUSK_TIMEOUT" "$HUSK" "$@" <"$input" >"$OUT" 2>"$ERR"
	)
	STATUS=$?
	if { [ "$STATUS" = 124 ] || [ "$STATUS" = 137 ]; } && [ $((SECONDS - start)) -ge "$HUSK_TIMEOUT" ]; then
		diag "husk $*: killed after the ${HUSK_TIMEOUT} s timeout"
	fi
	return 0
}

want_status() {
	if [ "$STATUS" != "$1" ]; then
		case_fail "exit status is $STATUS, want $1"
	fi
}

# want_line LINE [FILE]: FILE (default: last stdout) has exactly this line.
want_line() {
	if ! grep -Fxq -e "$1" "${2:-$OUT}"; then
		case_fail "missing line '$1' in ${2:-stdout}"
	fi
}

want_no_line() {
	if grep -Fxq -e "$1" "${2:-$OUT}"; then
		case_fail "unexpected line '$1' in ${2:-stdout}"
	fi
}

# want_re ERE [FILE]: some line of FILE matches.
want_re() {
	if ! grep -Eq -e "$1" "${2:-$OUT}"; then
		case_fail "no line matches /$1/ in ${2:-stdout}"
	fi
}

want_no_re() {
	if grep -Eq -e "$1" "${2:-$OUT}"; then
		case_fail "a line matches /$1/ in ${2:-stdout}, none should"
	fi
}

# want_count N LINE [FILE]: LINE occurs exactly N times.
want_count() {
	local n
	n=$(grep -Fxc -e "$2" "${3:-$OUT}")
	if [ "$n" != "$1" ]; then
		case_fail "line '$2' occurs $n times, want $1"
	fi
}

want_nonempty() {
	if [ ! -s "${1:-$OUT}" ]; then
		case_fail "${1:-stdout} is empty"
	fi
}

# husk's own errors: exactly one line on stderr, starting with "husk: ".
want_husk_error() {
	local n
	n=$(wc -l <"$ERR")
	if [ "$n" != 1 ] || ! head -n 1 "$ERR" | grep -q '^husk: '; then
		case_fail "want exactly one stderr line starting with 'husk: ', got $n line(s)"
	fi
}

# The names some test writers reach for first.
expect_status() { want_status "$@"; }
expect_grep() { want_re "$@"; }

want_true() { # DESCRIPTION COMMAND...
	local what=$1
	shift
	if ! "$@"; then
		case_fail "$what"
	fi
}

# Poll (never a fixed sleep) until FILE has a line matching ERE; 1 on
# timeout, or as soon as PID (if given) has exited.
wait_for_file() { # FILE ERE SECONDS [PID]
	local file=$1 re=$2 deadline=$((SECONDS + $3)) pid=${4:-} state
	while [ "$SECONDS" -le "$deadline" ]; do
		if [ -f "$file" ] && grep -Eq -e "$re" "$file"; then
			return 0
		fi
		if [ -n "$pid" ]; then
			state=$(proc_state "$pid")
			if ! pid_alive "$pid" || [ "$state" = Z ]; then
				grep -Eq -e "$re" "$file" 2>/dev/null && return 0
				diag "wait_for_file: process $pid is ${state:-gone} and '$file' has no '$re'"
				return 1
			fi
		fi
		sleep 0.02
	done
	diag "wait_for_file: no '$re' in '$file' after $3 s"
	return 1
}

# Poll until PID (a child of ours) has exited or is a zombie; 1 on timeout.
wait_exit() { # PID SECONDS
	local pid=$1 deadline=$((SECONDS + $2)) state
	while [ "$SECONDS" -le "$deadline" ]; do
		state=$(proc_state "$pid")
		if ! pid_alive "$pid" || [ "$state" = Z ]; then
			return 0
		fi
		sleep 0.02
	done
	return 1
}

# Is PID still there (a zombie counts)? kill -0 asks the kernel directly: a
# read of /proc/PID/status was seen to come back empty for a live process.
pid_alive() {
	kill -0 "$1" 2>/dev/null
}

proc_state() {
	local k v rest
	{ while read -r k v rest; do
		if [ "$k" = State: ]; then
			echo "$v"
			return
		fi
	done <"/proc/$1/status"; } 2>/dev/null
}

# "pid ppid uid state" for every process, with shell builtins only.
proc_table() {
	local d k v rest ppid uid state
	for d in /proc/[0-9]*; do
		ppid='' uid='' state=''
		{ while read -r k v rest; do
			case $k in
			State:) state=$v ;;
			PPid:) ppid=$v ;;
			Uid:) uid=$v; break ;;
			esac
		done <"$d/status"; } 2>/dev/null
		[ -n "$uid" ] && echo "${d#/proc/} $ppid $uid $state"
	done
}

proc_cmdline() {
	tr '\0' ' ' 2>/dev/null <"/proc/$1/cmdline"
}

# Live (non-zombie) processes of ours whose command line contains STRING.
procs_matching() {
	local pid ppid uid state cmd
	proc_table | while read -r pid ppid uid state; do
		[ "$uid" = "$MY_UID" ] && [ "$state" != Z ] || continue
		[ "$pid" != "$BASHPID" ] || continue
		cmd=$(proc_cmdline "$pid")
		case $cmd in
		*"$1"*) echo "$pid" ;;
		esac
	done
}

# Wait up to SECONDS for no process matching STRING; prints the survivors.
wait_procs_gone() { # STRING SECONDS
	local deadline=$((SECONDS + $2)) left
	while :; do
		left=$(procs_matching "$1")
		[ -n "$left" ] || return 0
		if [ "$SECONDS" -gt "$deadline" ]; then
			echo $left
			return 1
		fi
		sleep 0.05
	done
}

kill_pids() {
	local p
	for p in "$@"; do
		kill -KILL "$p" 2>/dev/null
	done
}

# --- leftovers ------------------------------------------------------------

tmp_entries() {
	find /tmp -mindepth 1 -maxdepth 1 -user "$MY_UID" 2>/dev/null | sort
}

fuse_mounts() {
	grep -E ' - fuse(\.|blk| )' /proc/self/mountinfo | sort
}

# Remember what exists now; check_leftovers reports what is new.
leftover_baseline() {
	BASE_PIDS=" $(proc_table | awk -v u="$MY_UID" '$3 == u { printf "%s ", $1 }')"
	tmp_entries >"$SCRATCH/base.tmp"
	fuse_mounts >"$SCRATCH/base.fuse"
}

# Processes of ours that are new since the baseline, not our own descendants
# (a finished test has none running), and that belong to a container run: in
# another mount namespace, running /probe, or running something staged.
stray_procs() {
	proc_table >"$SCRATCH/ptab"
	local pid ppid uid state p cmd ns
	declare -A parent
	while read -r pid ppid uid state; do
		parent[$pid]=$ppid
	done <"$SCRATCH/ptab"
	while read -r pid ppid uid state; do
		[ "$uid" = "$MY_UID" ] && [ "$state" != Z ] || continue
		case $BASE_PIDS in *" $pid "*) continue ;; esac
		p=$pid
		while [ -n "$p" ] && [ "$p" != 0 ] && [ "$p" != 1 ] && [ "$p" != $$ ]; do
			p=${parent[$p]:-}
		done
		[ "$p" != $$ ] || continue
		cmd=$(proc_cmdline "$pid")
		ns=$(readlink "/proc/$pid/ns/mnt" 2>/dev/null) || ns=unknown
		if [ "$ns" != "$MY_MNTNS" ] || [[ $cmd == /probe* ]] || [[ $cmd == *"$STAGE"* ]] ||
			[[ $cmd == *"$HUSK"* ]]; then
			echo "$pid $cmd"
		fi
	done <"$SCRATCH/ptab"
}

# check_leftovers: assertions, inside the current case, that no process, no
# FUSE mount and no new /tmp entry of ours outlived the runs.  Processes get a
# short grace period, since a supervisor's SIGKILL takes a moment to land.
check_leftovers() {
	local deadline=$((SECONDS + ${1:-3})) strays
	while :; do
		strays=$(stray_procs)
		[ -n "$strays" ] && [ "$SECONDS" -le "$deadline" ] || break
		sleep 0.05
	done
	if [ -n "$strays" ]; then
		case_fail "processes left behind:"
		printf '%s\n' "$strays" | sed 's/^/#   /'
		kill_pids $(printf '%s\n' "$strays" | awk '{print $1}')
	fi
	fuse_mounts >"$SCRATCH/now.fuse"
	if ! cmp -s "$SCRATCH/base.fuse" "$SCRATCH/now.fuse"; then
		case_fail "new FUSE mounts visible on the host:"
		comm -13 "$SCRATCH/base.fuse" "$SCRATCH/now.fuse" | sed 's/^/#   /'
	fi
	tmp_entries >"$SCRATCH/now.tmp"
	if [ -n "$(comm -13 "$SCRATCH/base.tmp" "$SCRATCH/now.tmp")" ]; then
		case_fail "new entries in /tmp:"
		comm -13 "$SCRATCH/base.tmp" "$SCRATCH/now.tmp" | sed 's/^/#   /'
	fi
}

# Each case runs on both kinds of image:
#   for kind in $KINDS; do img=$(img_of "$kind"); ...; done
# (a plain loop: `done < <(...)` would leave a pipe fd open for husk to inherit)
KINDS="dir sqfs"
img_of() {
	case $1 in
	dir) echo "$IMG_DIR" ;;
	sqfs) echo "$IMG_SQFS" ;;
	esac
}

leftover_baseline
cd "$STAGE" || exit 1

# A husk in the background (t_signals, t_cleanup): its pid in BG_PID;
# cleanup_bg kills it and collects its status.
BG_PID=
cleanup_bg() {
	if [ -n "$BG_PID" ]; then
		kill -KILL "$BG_PID" 2>/dev/null
		wait "$BG_PID" 2>/dev/null
		STATUS=$?
	fi
	BG_PID=
}

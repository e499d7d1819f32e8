#!/bin/bash
# needs: mpi-image
# An MPI job whose rank 0's husk is killed with SIGKILL mid-run: the session
# (one user namespace and one image mount for both ranks) outlives it, so
# the other rank sees an MPI error from mpirun, not a vanished file system;
# afterwards nothing of the job is left.
. "$(dirname "$0")/lib.sh"

trap 'kill_pids $(jobs -p) 2>/dev/null' EXIT
unset OMPI_MCA_btl_vader_single_copy_mechanism
export OMPI_MCA_rmaps_base_oversubscribe=1

if [ -z "$MPI_SQFS" ] || ! command -v mpirun >/dev/null; then
	echo "not ok - the MPI image or the host's mpirun is missing (tests/run builds it; tests/deps.sh)"
	exit 1
fi

# The pid of the husk process (the one mpirun's daemon started) above a
# pingpong rank R.
husk_of_rank() {
	local r=$1 p e pp last=
	for p in $(pgrep -u "$MY_UID" -x pingpong); do
		e=$(tr '\0' '\n' </proc/$p/environ 2>/dev/null | sed -n 's/^OMPI_COMM_WORLD_RANK=//p')
		[ "$e" = "$r" ] || continue
		# climb to the outermost husk below mpirun's daemon (orted)
		pp=$p
		while pp=$(awk '/^PPid:/ {print $2}' /proc/$pp/status 2>/dev/null) && [ -n "$pp" ] &&
			[ "$pp" -gt 1 ]; do
			case $(cat /proc/$pp/comm 2>/dev/null) in
			orted|mpirun) echo "$last"; return 0 ;;
			esac
			last=$pp
		done
	done
	return 1
}

case_begin "SIGKILL of rank 0's husk mid-run: rank 1 gets mpirun's error, not a vanished image; nothing left"
leftover_baseline
# A long ping-pong: 4 MiB messages, many iterations.
( timeout -k 5 120 mpirun -np 2 "$HUSK" run "$MPI_SQFS" -- pingpong 4194304 200000 \
	</dev/null >"$STAGE/mpi.out" 2>"$STAGE/mpi.err"; echo $? >"$STAGE/mpi.st" ) &
victim=
for i in $(seq 200); do
	if [ "$(pgrep -u "$MY_UID" -x pingpong | wc -l)" = 2 ]; then
		sleep 1   # well into the exchange
		victim=$(husk_of_rank 0) && break
	fi
	sleep 0.1
done
if [ -z "$victim" ]; then
	case_fail "the job never got going (or rank 0's husk was not found)"
	diag_file "mpirun's stderr" "$STAGE/mpi.err"
else
	r1=$(pgrep -u "$MY_UID" -x pingpong | while read -r p; do
		tr '\0' '\n' </proc/$p/environ | grep -qx 'OMPI_COMM_WORLD_RANK=1' && echo "$p"; done)
	kill -KILL "$victim"
	# Rank 1 still reads its image (the session's mount) after its peer's
	# husk is gone: its binary's text and the image's files.
	if [ -n "$r1" ] && [ -d "/proc/$r1/root/opt" ]; then
		if cat "/proc/$r1/root/opt/husk-mpi/bin/pingpong" >/dev/null 2>"$STAGE/read.err"; then
			diag "rank 1 ($r1) still reads its image after rank 0's husk ($victim) was killed"
		else
			case_fail "rank 1 could not read its image after rank 0's husk died: $(cat "$STAGE/read.err")"
		fi
	else
		case_fail "rank 1 was gone before its image could be read ($r1)"
	fi
fi
wait
st=$(cat "$STAGE/mpi.st" 2>/dev/null || echo none)
[ "$st" != 0 ] && [ "$st" != none ] || case_fail "mpirun's status is $st, want a failure"
grep -Eqi 'rank 0|process rank|exited on signal|killed|aborted|ORTE|PRTE' "$STAGE/mpi.err" ||
	case_fail "mpirun reported no MPI error"
if grep -Eqi 'Transport endpoint is not connected|Input/output error|No such file or directory|error while loading shared' \
	"$STAGE/mpi.err"; then
	case_fail "a rank saw its file system vanish"
fi
[ "$st" = 0 ] || [ -s "$STAGE/mpi.err" ] || case_fail "no error output at all"
diag "mpirun: status $st; $(grep -Ei 'rank 0|exited on signal|killed' "$STAGE/mpi.err" | head -n1)"
[ "$T_CASE_FAILED" = 0 ] || diag_file "mpirun's stderr" "$STAGE/mpi.err"
# The session server goes with its last member.
for i in $(seq 100); do
	[ -z "$(pgrep -u "$MY_UID" -x husk-session)" ] && [ -z "$(pgrep -u "$MY_UID" -x pingpong)" ] && break
	sleep 0.1
done
[ -z "$(pgrep -u "$MY_UID" -x husk-session)" ] || case_fail "husk-session still running"
[ -z "$(pgrep -u "$MY_UID" -x pingpong)" ] || case_fail "a rank is still running"
check_leftovers
case_end

done_testing

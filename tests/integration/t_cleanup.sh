#!/bin/bash
# Nothing outlives a run: processes the command left behind (even orphans in
# sessions of their own) are killed when it ends, and when husk itself is
# killed with SIGKILL; no mounts, no temp files.  Also 64 concurrent launches.
. "$(dirname "$0")/lib.sh"

trap cleanup_bg EXIT

# A duration unique to this run, used as a marker in the command lines of the
# processes it starts ("/probe spawn-orphans 2 SECS", "/probe sleep SECS").
marker() {
	echo $((5000 + RANDOM % 4000))
}

# Start husk in the background (BG_PID) on a command that leaves two orphans
# and then sleeps; returns once all of it runs, or fails the case.
start_sleeper() { # IMAGE SECS [HUSK RUN OPTIONS]
	local img=$1 secs=$2 ready=$STAGE/ready-$2
	shift 2
	rm -f "$ready" "$ready.tmp"
	LAST_CMD="husk run $* $img -- sh -c 'spawn orphans; exec /probe sleep $secs' (background)"
	"$HUSK" run "$@" "$img" -- sh -c "/probe spawn-orphans 2 $secs >'$ready.tmp' && mv '$ready.tmp' '$ready' && exec /probe sleep $secs" \
		</dev/null >"$OUT" 2>"$ERR" &
	BG_PID=$!
	if ! wait_for_file "$ready" '^orphan=' 20 "$BG_PID"; then
		cleanup_bg
		case_fail "the command never started"
		return 1
	fi
	# Until the shell has exec'ed the sleeping probe, the run is not complete.
	for _ in $(seq 200); do
		[ -n "$(procs_matching "/probe sleep $secs")" ] && return 0
		sleep 0.02
	done
}

# husk (BG_PID) was killed, or its supervisor: status 137, nothing left.
want_all_gone() { # SECS
	local left p
	wait "$BG_PID"
	STATUS=$?
	BG_PID=
	want_status 137
	left=$(wait_procs_gone " $1" 10)
	if [ -n "$left" ]; then
		case_fail "processes of the run still alive 10 s after the kill:"
		for p in $left; do
			diag "  $p $(proc_cmdline "$p")"
		done
		kill_pids $left
	fi
	check_leftovers
}

for kind in $KINDS; do
	img=$(img_of "$kind")

	case_begin "orphans of a finished run are killed when husk returns [$kind]"
	secs=$(marker)
	run_husk run "$img" -- /probe spawn-orphans 3 "$secs"
	want_status 0
	if [ "$(grep -c '^orphan=' "$OUT")" != 3 ]; then
		case_fail "the probe did not report 3 orphans"
	fi
	left=$(wait_procs_gone "spawn-orphans 3 $secs" 2)
	if [ -n "$left" ]; then
		case_fail "orphans still alive after husk returned: $left"
		kill_pids $left
	fi
	check_leftovers
	case_end

	for join in "" "--join=cleanup-$$-$kind"; do
		how=${join:+, a session member}

		case_begin "kill -9 of husk leaves no process, mount or temp file [$kind$how]"
		secs=$(marker)
		if start_sleeper "$img" "$secs" $join; then
			kill -KILL "$BG_PID"
			want_all_gone "$secs"
		fi
		case_end

		# The top process ends what a killed supervisor left: the supervisor
		# may have shared its memory (run.c), so this takes another path.
		case_begin "kill -9 of husk's supervisor: husk exits 137, nothing is left [$kind$how]"
		secs=$(marker)
		if start_sleeper "$img" "$secs" $join; then
			sup=
			read -r sup _ <"/proc/$BG_PID/task/$BG_PID/children"
			if [ -z "$sup" ] || [ "$(cat "/proc/$sup/comm")" != husk ]; then
				case_fail "husk's child is '$sup', not a supervisor"
				kill -KILL "$BG_PID"
			else
				kill -KILL "$sup"
			fi
			want_all_gone "$secs"
		fi
		case_end
	done

	case_begin "64 concurrent launches all succeed [$kind]"
	par=$STAGE/par-$kind
	mkdir -p "$par"
	LAST_CMD="64 x husk run $img -- /bin/true"
	: >"$OUT"
	: >"$ERR"
	STATUS=0
	pids=
	for i in $(seq 64); do
		timeout -k 5 120 "$HUSK" run "$img" -- /bin/true </dev/null >"$par/out.$i" 2>"$par/err.$i" &
		pids="$pids $!"
	done
	n_ok=0
	first_bad=
	i=0
	for p in $pids; do
		i=$((i + 1))
		wait "$p"
		rc=$?
		if [ "$rc" = 0 ]; then
			n_ok=$((n_ok + 1))
		elif [ -z "$first_bad" ]; then
			first_bad="launch $i: status $rc"
			cp "$par/err.$i" "$ERR"
			STATUS=$rc
		fi
	done
	if [ "$n_ok" != 64 ]; then
		case_fail "$n_ok of 64 launches succeeded; first failure: $first_bad"
	fi
	check_leftovers
	case_end
done

done_testing

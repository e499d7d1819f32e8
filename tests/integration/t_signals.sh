#!/bin/bash
# Signal forwarding: a signal sent to husk reaches the command exactly once,
# and a command killed by a forwarded signal gives 128+N.
. "$(dirname "$0")/lib.sh"

trap cleanup_bg EXIT

# start_bg ARG...: husk in the background, its pid in BG_PID.  A background
# job of a non-interactive shell starts with SIGINT and SIGQUIT ignored;
# env --default-signal undoes that, so husk starts as it would from a terminal.
start_bg() {
	LAST_CMD="husk $* (in the background)"
	env --default-signal "$HUSK" "$@" </dev/null >"$OUT" 2>"$ERR" &
	BG_PID=$!
}

# finish_bg SECONDS: wait for husk to exit, set STATUS; false on timeout.
finish_bg() {
	if ! wait_exit "$BG_PID" "$1"; then
		case_fail "husk did not exit within $1 s"
		cleanup_bg
		STATUS=timeout
		return 1
	fi
	wait "$BG_PID"
	STATUS=$?
	BG_PID=
}

FORWARDED="TERM INT HUP USR1 USR2 WINCH CONT"

for kind in $KINDS; do
	img=$(img_of "$kind")
	log=$STAGE/signals-$kind
	rm -f "$log" "$log.tmp"

	case_begin "signals to husk reach the command exactly once [$kind]"
	start_bg run "$img" -- /probe signals "$log" 60
	if ! wait_for_file "$log" '^ready$' 20 "$BG_PID"; then
		cleanup_bg
		case_fail "the probe never became ready"
	else
		for sig in $FORWARDED; do
			kill -s "$sig" "$BG_PID"
			if ! wait_for_file "$log" "^sig=$sig\$" 10 "$BG_PID"; then
				case_fail "SIG$sig was not forwarded within 10 s"
			fi
		done
		kill -s QUIT "$BG_PID" # the probe exits 0 on QUIT
		if finish_bg 20; then
			want_status 0
		fi
		for sig in $FORWARDED QUIT; do
			want_count 1 "sig=$sig" "$log"
		done
		[ "$T_CASE_FAILED" = 0 ] || diag_file "signal log" "$log"
	fi
	case_end

	case_begin "SIGTERM to husk kills a command without handlers: 143 [$kind]"
	ready=$STAGE/ready-$kind
	rm -f "$ready" "$ready.tmp"
	start_bg run "$img" -- sh -c "echo ready >'$ready.tmp' && mv '$ready.tmp' '$ready' && exec /probe sleep 60"
	if ! wait_for_file "$ready" '^ready$' 20 "$BG_PID"; then
		cleanup_bg
		case_fail "the command never started"
	else
		# mv ran before exec: wait until the shell has become the probe.
		for _ in $(seq 200); do
			[ -n "$(procs_matching '/probe sleep 60')" ] && break
			sleep 0.02
		done
		kill -s TERM "$BG_PID"
		if finish_bg 20; then
			want_status 143
		fi
	fi
	case_end

	case_begin "SIGINT to husk kills a command without handlers: 130 [$kind]"
	rm -f "$ready" "$ready.tmp"
	start_bg run "$img" -- sh -c "echo ready >'$ready.tmp' && mv '$ready.tmp' '$ready' && exec /probe sleep 61"
	if ! wait_for_file "$ready" '^ready$' 20 "$BG_PID"; then
		cleanup_bg
		case_fail "the command never started"
	else
		for _ in $(seq 200); do
			[ -n "$(procs_matching '/probe sleep 61')" ] && break
			sleep 0.02
		done
		kill -s INT "$BG_PID"
		if finish_bg 20; then
			want_status 130
		fi
	fi
	case_end
done

case_begin "no leftovers after the signal runs"
check_leftovers
case_end

case_begin "SIGTERM sent over and over (Slurm at a time limit): husk exits with the command's status, never of the signal"
# The command traps TERM and exits 43; husk's top process gets TERM without
# pause until it is gone. A TERM that arrives after the command's end must
# not kill husk in place of that status.
bad=0
for i in $(seq 10); do
	"$HUSK" run "$IMG_SQFS" -- /bin/sh -c 'trap "exit 43" TERM; while :; do sleep 0.05; done' \
		</dev/null >/dev/null 2>"$STAGE/flood.err" &
	pid=$!
	sleep 0.3
	while kill -TERM "$pid" 2>/dev/null; do :; done
	wait "$pid"
	st=$?
	[ "$st" = 43 ] || { bad=$((bad + 1)); diag "round $i: status $st"; }
done
[ "$bad" = 0 ] || case_fail "$bad of 10 rounds did not exit with the command's 43"
check_leftovers
case_end

done_testing

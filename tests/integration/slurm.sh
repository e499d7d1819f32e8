# Helpers of the Slurm test files (t_slurm.sh, t_slurm_2n.sh); sourced after
# lib.sh.  SLURM_CONF and SLURM_DIR come from tests/run (see lib.sh).
for _v in SLURM_CONF SLURM_DIR; do
	if [ -z "${!_v:-}" ]; then
		echo "not ok - environment: $_v is not set (a '# needs: slurm' file runs through tests/run)"
		exit 1
	fi
done
unset _v
export SLURM_CONF

SLURM_TIMEOUT=${SLURM_TIMEOUT:-120}

# Show the cluster's logs (last lines), for a case that failed.
diag_slurm_logs() {
	local f
	for f in "$SLURM_DIR"/logs/slurmd*.log "$SLURM_DIR"/logs/slurmctld.log; do
		[ -f "$f" ] || continue
		diag "${f##*/} (last 10 lines):"
		tail -n 10 "$f" | sed 's/^/#   | /'
	done
}

# slurm CMD ARG...: a Slurm client, bounded, stdin from /dev/null; sets
# STATUS, OUT, ERR like run_husk.
slurm() {
	LAST_CMD="$*"
	timeout -k 5 "$SLURM_TIMEOUT" "$@" </dev/null >"$OUT" 2>"$ERR"
	STATUS=$?
}

# bg_srun NAME ARG...: srun in the background; output in $STAGE/NAME.out and
# .err, its status (once it ended) in $STAGE/NAME.st, its pid in BG_SRUN.
bg_srun() {
	local name=$1
	shift
	rm -f "$STAGE/$name".*
	( timeout -k 5 "$SLURM_TIMEOUT" srun "$@" </dev/null >"$STAGE/$name.out" 2>"$STAGE/$name.err"
	  echo $? >"$STAGE/$name.st" ) &
	BG_SRUN=$!
}

# wait_bg NAME PID: wait for a bg_srun; sets STATUS, OUT, ERR from its files.
wait_bg() {
	wait "$2"
	STATUS=$(cat "$STAGE/$1.st" 2>/dev/null || echo none)
	cp "$STAGE/$1.out" "$OUT"
	cp "$STAGE/$1.err" "$ERR"
	LAST_CMD="srun ($1)"
}

# The id of our job named NAME, once it is running (empty after SECONDS).
job_running() { # NAME SECONDS
	local deadline=$((SECONDS + $2)) id
	while [ "$SECONDS" -le "$deadline" ]; do
		id=$(squeue -h -u "$MY_UID" -n "$1" -t RUNNING -o %i 2>/dev/null | head -n 1)
		if [ -n "$id" ]; then
			echo "$id"
			return 0
		fi
		sleep 0.1
	done
	return 1
}

# Wait until job ID has left the queue (sbatch --wait polls slowly).
job_gone() { # ID SECONDS
	local deadline=$((SECONDS + $2))
	while [ "$SECONDS" -le "$deadline" ]; do
		[ -n "$(squeue -h -j "$1" -o %i 2>/dev/null)" ] || return 0
		sleep 0.2
	done
	return 1
}

# One field of `scontrol show job ID` (JobState, ExitCode, ...).
job_field() { # ID FIELD
	scontrol -o show job "$1" 2>/dev/null | tr ' ' '\n' | sed -n "s/^$2=//p"
}

want_job() { # ID FIELD VALUE
	local v
	v=$(job_field "$1" "$2")
	[ "$v" = "$3" ] || case_fail "scontrol show job $1: $2=$v, want $3"
}

# sbatch_run NAME SCRIPT [SBATCH-ARG...]: submit, wait until it has left the
# queue; the job id in JOB, its output in OUT, STATUS from its ExitCode.
sbatch_run() {
	local name=$1 script=$2
	shift 2
	rm -f "$STAGE/$name.job.out"
	LAST_CMD="sbatch $* $script"
	JOB=$(sbatch --parsable -J "$name" -o "$STAGE/$name.job.out" "$@" "$script" 2>"$ERR")
	if [ -z "$JOB" ]; then
		STATUS=none
		: >"$OUT"
		return
	fi
	job_gone "$JOB" "$SLURM_TIMEOUT" || diag "job $JOB still queued after $SLURM_TIMEOUT s"
	cp "$STAGE/$name.job.out" "$OUT" 2>/dev/null || : >"$OUT"
	STATUS=$(job_field "$JOB" ExitCode)
	STATUS=${STATUS%%:*}
}

# Nothing of ours left on a node after a job: processes (lib.sh's
# check_leftovers looks at processes, FUSE mounts and /tmp), no husk session
# server, no abstract socket of a session in the node's network namespace,
# nothing of ours in the node's TmpFS, no PMIx directory of the job in its
# spool.  NODE is the node's name, NETPID a process in its network namespace.
check_node_clean() { # NODE NETPID JOB
	local node=$1 netpid=$2 job=$3 left
	left=$(grep -c "@husk-session-$MY_UID-" "/proc/$netpid/net/unix" 2>/dev/null)
	[ "${left:-0}" = 0 ] || case_fail "$node: $left husk session socket(s) left"
	left=$(find "$SLURM_DIR/$node/tmp" -mindepth 1 -user "$MY_UID" 2>/dev/null | head -n 5)
	[ -z "$left" ] || case_fail "$node: left in its TmpFS: $(echo $left)"
	left=$(find "$SLURM_DIR/$node/spool" -maxdepth 1 -name "pmix.$job.*" 2>/dev/null)
	[ -z "$left" ] || case_fail "$node: left in its spool: $(echo $left)"
}

# husk-session processes of ours that a launch of job JOB started (their
# environment is that launch's).
job_sessions() { # JOB
	local p
	for p in $(pgrep -u "$MY_UID" -x husk-session); do
		tr '\0' '\n' 2>/dev/null <"/proc/$p/environ" | grep -qx "SLURM_JOB_ID=$1" && echo "$p"
	done
}

# Wait for no husk-session of job JOB (a session ends with its last member).
wait_no_session() { # JOB
	local i
	for i in $(seq 100); do
		[ -z "$(job_sessions "$1")" ] && return 0
		sleep 0.05
	done
	case_fail "husk-session of job $1 still running: $(job_sessions "$1" | tr '\n' ' ')"
}

# The pid of a daemon of the cluster (DIR/pids: "NAME PID").
cluster_pid() {
	awk -v n="$1" '$1 == n { print $2 }' "$SLURM_DIR/pids"
}

# The id of our most recent job named NAME, running or ended.
job_by_name() {
	scontrol -o show job 2>/dev/null | grep " JobName=$1 " | grep " UserId=$MY_USER(" |
		sed -n 's/^JobId=\([0-9]*\) .*/\1/p' | sort -n | tail -n 1
}

#!/bin/bash
# husk under a real one-node Slurm cluster (tests/slurm/cluster): srun and
# sbatch of husk run, MPI inside the image through PMIx, signals (scancel,
# srun --signal, the time limit) reaching the application exactly once, the
# exit code Slurm records, and nothing left behind.
# needs: slurm
# needs: mpi-image
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/slurm.sh"

trap 'scancel -u "$MY_UID" 2>/dev/null; kill_pids $(jobs -p) 2>/dev/null' EXIT

NODE=$(sinfo -h -N -o %N | head -n 1)
HOST_USERNS=$(readlink /proc/self/ns/user)
T=t$$

# --signal and the time limit take a minute (slurmctld looks at time limits
# every 30 s): started first, checked last.
# (the shell's own output goes to a file: at the time limit srun stops
# forwarding output, and a shell that writes then dies of SIGPIPE)
bg_srun limit -J "$T-limit" -n 1 --time=1 --signal=USR1@40 "$HUSK" run "$IMG_SQFS" -- /bin/sh -c '
	exec >>$STAGE/limit.out 2>&1
	trap "echo USR1 >>$STAGE/limit.log" USR1
	trap "echo TERM >>$STAGE/limit.log; exit 43" TERM
	while :; do sleep 0.2; done'
LIMIT_PID=$BG_SRUN

case_begin "srun -n 2 husk run: both tasks inside the image, the job's ids, one session"
slurm srun -J "$T-basic" -n 2 "$HUSK" run -v "$IMG_SQFS" -- /bin/sh -c \
	'echo "task $SLURM_PROCID of $SLURM_NTASKS on $(hostname) uid $(id -u) gid $(id -g)"
	 test -x /probe && test ! -e /etc/debian_version && echo "in the tiny image"
	 echo "userns $(readlink /proc/self/ns/user)"'
want_status 0
want_line "task 0 of 2 on $NODE uid $MY_UID gid $MY_GID"
want_line "task 1 of 2 on $NODE uid $MY_UID gid $MY_GID"
want_count 2 "in the tiny image"
[ "$(grep '^userns ' "$OUT" | sort -u | wc -l)" = 1 ] || case_fail "the two tasks are in different user namespaces"
want_no_line "userns $HOST_USERNS"
[ "$(grep -c 'joined session .*(started it)' "$ERR")" = 1 ] &&
	[ "$(grep -c 'joined session .*(existing)' "$ERR")" = 1 ] ||
	case_fail "the two tasks of the step did not share one session"
slurm srun -J "$T-dry" -n 1 "$HUSK" run --dry-run "$IMG_SQFS" -- /bin/true
want_status 0
want_re '^session: would join session [0-9a-f]{64} \(Slurm job step [0-9]+\.0\)'
case_end

case_begin "srun husk run: the command's exit code is srun's and the job's"
slurm srun -J "$T-exit" -n 1 "$HUSK" run "$IMG_SQFS" -- /bin/sh -c 'exit 3'
want_status 3
want_re "Exited with exit code 3" "$ERR"
job=$(job_by_name "$T-exit")
want_job "$job" ExitCode 3:0
want_job "$job" JobState FAILED
case_end

case_begin "sbatch: a script calling srun husk run twice; its exit code recorded"
cat >"$STAGE/batch.sh" <<EOF
#!/bin/sh
srun -n 2 "$HUSK" run "$IMG_SQFS" -- /bin/sh -c 'echo "batch task \$SLURM_PROCID uid \$(id -u) image \$HUSK_IMAGE"'
srun -n 1 "$HUSK" run "$IMG_SQFS" -- /bin/sh -c 'exit 4'
exit \$?
EOF
sbatch_run "$T-batch" "$STAGE/batch.sh" -n 2
want_status 4
want_line "batch task 0 uid $MY_UID image $IMG_SQFS"
want_line "batch task 1 uid $MY_UID image $IMG_SQFS"
want_job "$JOB" JobState FAILED
want_job "$JOB" ExitCode 4:0
case_end

if [ -n "${MPI_SQFS:-}" ] && [ -s "$MPI_SQFS" ]; then
	case_begin "srun --mpi=pmix -n 2 husk run: MPI hello inside the image"
	slurm srun -J "$T-hello" --mpi=pmix -n 2 "$HUSK" run "$MPI_SQFS" -- hello
	want_status 0
	want_line "hello from rank 0 of 2 on $NODE, uid $MY_UID, inside husk image $MPI_SQFS"
	want_line "hello from rank 1 of 2 on $NODE, uid $MY_UID, inside husk image $MPI_SQFS"
	want_re "^library: Open MPI v4"
	case_end

	case_begin "srun --mpi=pmix -n 2 husk run: ping-pong to 4 MiB with CMA single copy, one session"
	slurm srun -J "$T-pp" --mpi=pmix -n 2 "$HUSK" run -v "$MPI_SQFS" -- pingpong
	want_status 0
	want_re "^ +8 +[0-9.]+ +[0-9.]+$"
	want_re "^ +4194304 +[0-9.]+ +[0-9.]+$"
	want_no_re "CMA|user namespace|single.copy|process_vm" "$ERR"
	[ "$(grep -c 'joined session .*(started it)' "$ERR")" = 1 ] &&
		[ "$(grep -c 'joined session .*(existing)' "$ERR")" = 1 ] ||
		case_fail "the two ranks did not share one session"
	grep -E '^ +(8|4194304) ' "$OUT" | sed 's/^/# /'
	case_end
else
	case_fail_now() { case_begin "$1"; case_fail "no MPI image (MPI_SQFS): its build failed"; case_end; }
	case_fail_now "srun --mpi=pmix husk run: MPI inside the image"
fi

case_begin "srun --mpi=pmix: the PMIx server's directory is mounted inside, PMIx variables kept"
slurm srun -J "$T-pmix" --mpi=pmix -n 1 "$HUSK" run "$IMG_SQFS" -- /bin/sh -c \
	'echo "ns $PMIX_NAMESPACE rank $PMIX_RANK"
	 d=${PMIX_SERVER_TMPDIR%/}
	 grep -q " $d $d " /proc/self/mountinfo && echo "mounted $d"
	 ls "$d" | grep -q pmix_dstor && echo "server files visible"'
want_status 0
want_re "^ns slurm\.pmix\.[0-9]+\.0 rank 0$"
want_re "^mounted $SLURM_DIR/$NODE/spool/pmix\.[0-9]+\.0$"
want_line "server files visible"
case_end

case_begin "srun --mpi=pmi2: Slurm's PMI_FD passes through to the command"
slurm srun -J "$T-pmi2" --mpi=pmi2 -n 1 "$HUSK" run "$IMG_SQFS" -- /bin/sh -c \
	'echo "PMI_FD=$PMI_FD $(readlink /proc/self/fd/$PMI_FD)"'
want_status 0
want_re '^PMI_FD=[0-9]+ socket:\[[0-9]+\]$'
case_end

case_begin "scancel -s USR1 / TERM of a step: each task sees each signal exactly once"
rm -f "$STAGE"/sig.*
bg_srun sig -J "$T-sig" -n 2 "$HUSK" run "$IMG_SQFS" -- /bin/sh -c \
	'exec /probe signals '"$STAGE"'/sig.$SLURM_PROCID 60'
pid=$BG_SRUN
if wait_for_file "$STAGE/sig.0" '^ready' 30 "$pid" && wait_for_file "$STAGE/sig.1" '^ready' 30 "$pid"; then
	job=$(job_by_name "$T-sig")
	scancel -s USR1 "$job.0"
	wait_for_file "$STAGE/sig.0" '^sig=USR1' 10 && wait_for_file "$STAGE/sig.1" '^sig=USR1' 10
	scancel -s TERM "$job.0"
	wait_for_file "$STAGE/sig.0" '^sig=TERM' 10 && wait_for_file "$STAGE/sig.1" '^sig=TERM' 10
	sleep 0.6   # a second copy would come within husk's 0.3 s relay wait
	scancel -s QUIT "$job.0"
fi
wait_bg sig "$pid"
want_status 0
for r in 0 1; do
	want_count 1 sig=USR1 "$STAGE/sig.$r"
	want_count 1 sig=TERM "$STAGE/sig.$r"
done
case_end

case_begin "srun --time=1 --signal=USR1@40: USR1 before the limit, SIGTERM at it, trapped once each"
wait_bg limit "$LIMIT_PID"
want_status 43
want_count 1 USR1 "$STAGE/limit.log"
want_count 1 TERM "$STAGE/limit.log"
job=$(job_by_name "$T-limit")
want_job "$job" JobState TIMEOUT
want_job "$job" ExitCode 43:0
want_re "DUE TO TIME LIMIT" "$ERR"
case_end

# Last: its leftover check must see no other job's processes.
case_begin "scancel of a running job: the SIGTERM trap runs once, its exit code recorded, nothing left"
rm -f "$STAGE"/trap.*
bg_srun trap -J "$T-trap" -n 2 "$HUSK" run "$IMG_SQFS" -- /bin/sh -c '
	exec >>'"$STAGE"'/trap.out 2>&1
	trap "echo trapped >>'"$STAGE"'/trap.\$SLURM_PROCID; exit 42" TERM
	echo ready >'"$STAGE"'/trap.ready.$SLURM_PROCID
	while :; do sleep 0.1; done'
pid=$BG_SRUN
if wait_for_file "$STAGE/trap.ready.0" ready 30 "$pid" && wait_for_file "$STAGE/trap.ready.1" ready 30 "$pid"; then
	job=$(job_by_name "$T-trap")
	scancel "$job"
fi
wait_bg trap "$pid"
want_status 42
want_re "$NODE: tasks? 0.*Exited with exit code 42" "$ERR"
want_no_re "Killed|exit code [^4]|exit code 4[^2]" "$ERR"
want_count 1 trapped "$STAGE/trap.0"
want_count 1 trapped "$STAGE/trap.1"
job_gone "$job" 30
want_job "$job" JobState CANCELLED
want_job "$job" ExitCode 42:0
wait_no_session "$job"
check_leftovers 5
check_node_clean "$NODE" $$ "$job"
case_end

done_testing

#!/bin/bash
# husk under a real two-node Slurm cluster (tests/slurm/cluster): nodes n1
# and n2, each slurmd in its own network and UTS namespace, so a job spans
# two "nodes" over TCP. This file runs in the controller's network namespace.
# srun and sbatch of husk run across both nodes, MPI hello and ping-pong
# between the nodes inside the image, one session per node and step, scancel
# reaching every task once, and nothing left on either node.
# needs: slurm-2n
# needs: mpi-image
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/slurm.sh"

trap 'scancel -u "$MY_UID" 2>/dev/null; kill_pids $(jobs -p) 2>/dev/null' EXIT

T=t$$
N1_NET=$(cluster_pid ns-n1)
N2_NET=$(cluster_pid ns-n2)

case_begin "srun -N2 -n4 husk run: two tasks on each node, inside the image, one session per node"
slurm srun -J "$T-basic" -N 2 --ntasks-per-node=2 "$HUSK" run -v "$IMG_SQFS" -- /bin/sh -c \
	'echo "task $SLURM_PROCID of $SLURM_NTASKS on $(hostname) node $SLURMD_NODENAME uid $(id -u)"
	 test -x /probe && test ! -e /etc/debian_version && echo "in the tiny image"
	 echo "$(hostname) $(readlink /proc/self/ns/user)" >&2'
want_status 0
want_re "^task [0-9] of 4 on n1 node n1 uid $MY_UID$"
want_re "^task [0-9] of 4 on n2 node n2 uid $MY_UID$"
[ "$(grep -c '^task .* on n1 ' "$OUT")" = 2 ] && [ "$(grep -c '^task .* on n2 ' "$OUT")" = 2 ] ||
	case_fail "want two tasks on each node"
want_count 4 "in the tiny image"
# one user namespace per node: two distinct in all, each shared by its node's tasks
ns1=$(sed -n 's/^n1 user:/user:/p' "$ERR" | sort -u)
ns2=$(sed -n 's/^n2 user:/user:/p' "$ERR" | sort -u)
[ "$(echo "$ns1" | wc -l)" = 1 ] && [ "$(echo "$ns2" | wc -l)" = 1 ] && [ -n "$ns1" ] &&
	[ "$ns1" != "$ns2" ] || case_fail "want one user namespace per node, got n1: $ns1, n2: $ns2"
[ "$(grep -c 'joined session .*(started it)' "$ERR")" = 2 ] &&
	[ "$(grep -c 'joined session .*(existing)' "$ERR")" = 2 ] ||
	case_fail "want one session started on each node and joined by the other task"
case_end

case_begin "sbatch -N2: a script calling srun husk run on both nodes; exit code recorded"
cat >"$STAGE/batch.sh" <<EOF
#!/bin/sh
srun -N 2 --ntasks-per-node=1 "$HUSK" run "$IMG_SQFS" -- /bin/sh -c 'echo "batch task \$SLURM_PROCID on \$(hostname) image \$HUSK_IMAGE"'
srun -N 2 --ntasks-per-node=1 "$HUSK" run "$IMG_SQFS" -- /bin/sh -c 'exit \$((5 + SLURM_PROCID))'
exit \$?
EOF
sbatch_run "$T-batch" "$STAGE/batch.sh" -N 2 --ntasks-per-node=1
want_line "batch task 0 on n1 image $IMG_SQFS"
want_line "batch task 1 on n2 image $IMG_SQFS"
# srun exits with the highest task exit code
want_status 6
want_job "$JOB" ExitCode 6:0
case_end

if [ -n "${MPI_SQFS:-}" ] && [ -s "$MPI_SQFS" ]; then
	case_begin "srun --mpi=pmix -N2 -n4 husk run: MPI hello, four ranks on two nodes"
	slurm srun -J "$T-hello" --mpi=pmix -N 2 --ntasks-per-node=2 "$HUSK" run "$MPI_SQFS" -- hello
	want_status 0
	for r in 0 1 2 3; do
		want_re "^hello from rank $r of 4 on n[12], uid $MY_UID, inside husk image $MPI_SQFS$"
	done
	[ "$(grep -c ' of 4 on n1,' "$OUT")" = 2 ] && [ "$(grep -c ' of 4 on n2,' "$OUT")" = 2 ] ||
		case_fail "want two ranks on each node"
	case_end

	case_begin "srun --mpi=pmix -N2 -n2 husk run: ping-pong between the nodes over TCP"
	slurm srun -J "$T-pp" --mpi=pmix -N 2 --ntasks-per-node=1 "$HUSK" run "$MPI_SQFS" -- pingpong 4194304 20
	want_status 0
	want_re "^ +8 +[0-9.]+ +[0-9.]+$"
	want_re "^ +4194304 +[0-9.]+ +[0-9.]+$"
	grep -E '^ +(8|4194304) ' "$OUT" | sed 's/^/# /'
	case_end

	case_begin "sbatch -N2: srun --mpi=pmix of the MPI hello inside the image"
	cat >"$STAGE/mpi.sh" <<EOF
#!/bin/sh
srun --mpi=pmix "$HUSK" run "$MPI_SQFS" -- hello
EOF
	sbatch_run "$T-bhello" "$STAGE/mpi.sh" -N 2 --ntasks-per-node=2
	want_status 0
	[ "$(grep -c ' of 4 on n1,' "$OUT")" = 2 ] && [ "$(grep -c ' of 4 on n2,' "$OUT")" = 2 ] ||
		case_fail "want two ranks on each node"
	want_job "$JOB" JobState COMPLETED
	case_end
else
	case_begin "srun --mpi=pmix -N2 husk run: MPI inside the image"
	case_fail "no MPI image (MPI_SQFS): its build failed"
	case_end
fi

case_begin "scancel of a job on two nodes: every task's SIGTERM trap runs once, nothing left on either node"
rm -f "$STAGE"/trap.*
bg_srun trap -J "$T-trap" -N 2 --ntasks-per-node=2 "$HUSK" run "$IMG_SQFS" -- /bin/sh -c '
	exec >>'"$STAGE"'/trap.out 2>&1
	trap "echo trapped on \$(hostname) >>'"$STAGE"'/trap.\$SLURM_PROCID; exit 42" TERM
	echo ready >'"$STAGE"'/trap.ready.$SLURM_PROCID
	while :; do sleep 0.1; done'
pid=$BG_SRUN
ready=1
for r in 0 1 2 3; do
	wait_for_file "$STAGE/trap.ready.$r" ready 30 "$pid" || ready=0
done
job=$(job_by_name "$T-trap")
[ "$ready" = 1 ] && scancel "$job"
wait_bg trap "$pid"
want_status 42
want_re "n1: tasks? [01].*Exited with exit code 42" "$ERR"
want_re "n2: tasks? [23].*Exited with exit code 42" "$ERR"
want_no_re "Killed|exit code [^4]|exit code 4[^2]" "$ERR"
for r in 0 1; do want_count 1 "trapped on n1" "$STAGE/trap.$r"; done
for r in 2 3; do want_count 1 "trapped on n2" "$STAGE/trap.$r"; done
job_gone "$job" 30
want_job "$job" JobState CANCELLED
want_job "$job" ExitCode 42:0
wait_no_session "$job"
check_leftovers 5
check_node_clean n1 "$N1_NET" "$job"
check_node_clean n2 "$N2_NET" "$job"
[ "$T_CASE_FAILED" = 0 ] || diag_slurm_logs
case_end

done_testing

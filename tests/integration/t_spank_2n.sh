#!/bin/bash
# The Slurm SPANK plugin spank_husk.so on a real two-node cluster (nodes n1
# and n2, each slurmd in its own network and UTS namespace): MPI hello and
# ping-pong across the nodes inside the Debian MPI image with srun and
# sbatch, one husk session per node and step, and a bad image failing the
# step on both nodes without draining them.
# needs: slurm-2n
# needs: mpi-image
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/spank_lib.sh"

if [ -z "${MPI_SQFS:-}" ]; then
	echo "not ok - MPI image: tests/run could not build it (see its log)"
	exit 1
fi
NODES=$(scontrol show node -o | sed -n 's/^NodeName=\([^ ]*\).*/\1/p' | sort | tr '\n' ' ')
if [ "$NODES" != "n1 n2 " ]; then
	echo "not ok - environment: want the nodes n1 and n2, the cluster has: $NODES"
	exit 1
fi

# want_hello N: N hello lines, ranks 0..N-1 of N, inside the image, from
# both nodes.
want_hello() {
	local n=$1 r
	for ((r = 0; r < n; r++)); do
		want_re "^hello from rank $r of $n on n[12], uid $MY_UID, inside husk image $MPI_SQFS\$"
	done
	[ "$(grep -c '^hello from rank' "$OUT")" = "$n" ] || case_fail "want $n hello lines"
	grep -q "^hello from rank [0-9]* of $n on n1," "$OUT" || case_fail "no rank ran on n1"
	grep -q "^hello from rank [0-9]* of $n on n2," "$OUT" || case_fail "no rank ran on n2"
}

case_begin "srun -N 2 -n 4 --husk-image: MPI hello on both nodes, inside the image"
run_srun --mpi=pmix -N 2 -n 4 --husk-image="$MPI_SQFS" /opt/husk-mpi/bin/hello
want_status 0
want_hello 4
case_end

case_begin "srun -N 2 -n 2 --husk-image: MPI ping-pong between the nodes"
run_srun --mpi=pmix -N 2 -n 2 --ntasks-per-node=1 --husk-image="$MPI_SQFS" /opt/husk-mpi/bin/pingpong
want_status 0
want_re '^ +8 +[0-9.]+ +[0-9.]+$'
want_re '^ +4194304 +[0-9.]+ +[0-9.]+$'
case_end

case_begin "srun -N 2: the image's files and one session per node"
run_srun -N 2 -n 4 --husk-image="$MPI_SQFS" sh -c 'echo "$(hostname) $(readlink /proc/self/ns/user) $(cat /etc/debian_version) $HUSK_CONTAINER"'
want_status 0
[ "$(wc -l <"$OUT")" = 4 ] || case_fail "want 4 lines"
[ "$(awk '{print $1}' "$OUT" | sort -u | tr '\n' ' ')" = "n1 n2 " ] || case_fail "tasks not on n1 and n2"
# per node, the two tasks share one user namespace
[ "$(awk '{print $1, $2}' "$OUT" | sort -u | wc -l)" = 2 ] || case_fail "not one user namespace per node"
[ "$(awk '{print $4}' "$OUT" | sort -u)" = 1 ] || case_fail "HUSK_CONTAINER not set in every task"
[ "$(awk '{print $3}' "$OUT" | sort -u | wc -l)" = 1 ] || case_fail "different /etc/debian_version"
case_end

case_begin "sbatch -N 2 --husk-image: the steps run in the image on both nodes"
cat >"$STAGE/job.sh" <<'JOB'
#!/bin/sh
echo "script: ${HUSK_CONTAINER:-host}"
srun --mpi=pmix -n 4 /opt/husk-mpi/bin/hello
srun --mpi=pmix -n 2 --ntasks-per-node=1 /opt/husk-mpi/bin/pingpong
JOB
chmod +x "$STAGE/job.sh"
run_sbatch "$STAGE/job.sh" -N 2 -n 4 --husk-image="$MPI_SQFS"
want_status 0
want_line "script: host"
want_hello 4
want_re '^ +4194304 +[0-9.]+ +[0-9.]+$'
case_end

case_begin "bad --husk-image on two nodes: one message per node, exit 125, nodes not drained"
run_srun -N 2 -n 4 --husk-image="$STAGE/nope.sqfs" true
want_status 125
want_re "^husk: --husk-image '$STAGE/nope.sqfs': No such file or directory.*\(node n1\)$" "$ERR"
want_re "^husk: --husk-image '$STAGE/nope.sqfs': No such file or directory.*\(node n2\)$" "$ERR"
want_node_ok
run_srun -N 2 -n 2 --husk-image="$IMG_SQFS" true
want_status 0
case_end

case_begin "nothing left behind: no husk process, no FUSE mount"
want_nothing_left
case_end

done_testing

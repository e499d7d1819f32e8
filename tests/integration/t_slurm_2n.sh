#!/bin/bash
# husk under a real two-node Slurm cluster (tests/slurm/cluster): nodes n1
# and n2, each slurmd in its own network and UTS namespace; this file runs in
# the controller's network namespace.
# needs: slurm-2n
. "$(dirname "$0")/lib.sh"

case_begin "srun -N2 -n4 husk run: tasks on both nodes, inside the image"
LAST_CMD="srun -N2 -n4 husk run tiny.sqfs -- hostname"
timeout -k 5 60 srun -N2 -n4 "$HUSK" run "$IMG_SQFS" -- /bin/hostname >"$OUT" 2>"$ERR"
STATUS=$?
want_status 0
want_count 2 n1
want_count 2 n2
case_end

done_testing

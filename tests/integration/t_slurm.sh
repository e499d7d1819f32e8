#!/bin/bash
# husk under a real one-node Slurm cluster (tests/slurm/cluster): srun and
# sbatch of husk run, MPI inside the image, signals and exit codes.
# needs: slurm
. "$(dirname "$0")/lib.sh"

case_begin "srun -n 2 husk run: both tasks run inside the image"
LAST_CMD="srun -n 2 husk run tiny.sqfs -- /probe ids"
timeout -k 5 60 srun -n 2 "$HUSK" run "$IMG_SQFS" -- /probe ids >"$OUT" 2>"$ERR"
STATUS=$?
want_status 0
want_count 2 "uid=$MY_UID"
case_end

done_testing

#!/bin/bash
# The environment inside the container.  Precedence, lowest to highest: host
# environment (or the minimal set with --clean-env) < the image's
# /.husk/environment < --env-file < -e.  HUSK_CONTAINER=1 and HUSK_IMAGE (the
# image path as given, made absolute) are always set.  Also --dry-run.
. "$(dirname "$0")/lib.sh"

IMAGE_PATH=/usr/local/bin:/usr/bin:/bin:/sbin # PATH in the image's /.husk/environment

export HOST_ONLY=host-value
export HUSK_FROM_HOST=host-value # husk's prefix is no passport through --clean-env
export OVERRIDE_ME=host
export PATH=/usr/bin:/bin:/usr/sbin:/sbin:/usr/games # differs from the image's

cat >"$STAGE/envfile" <<'EOF'
# a comment line, then a blank line

export OVERRIDE_ME=file
FILE_VAR=plain
QUOTED="a b  c"
SQUOTED='x $y z'
EQ=a=b
  # an indented comment
EOF

for kind in $KINDS; do
	img=$(img_of "$kind")
	case_begin "host environment passes through [$kind]"
	run_husk run "$img" -- /probe env HOST_ONLY
	want_status 0
	want_line "HOST_ONLY=host-value"
	case_end

	case_begin "the image's environment file overrides the host [$kind]"
	run_husk run "$img" -- /probe env IMAGE_VAR OVERRIDE_ME PATH
	want_status 0
	want_line "IMAGE_VAR=from-image"
	want_line "OVERRIDE_ME=image"
	want_line "PATH=$IMAGE_PATH"
	case_end

	case_begin "--env-file overrides the image; comments, export and quotes [$kind]"
	run_husk run --env-file "$STAGE/envfile" "$img" -- \
		/probe env OVERRIDE_ME FILE_VAR QUOTED SQUOTED EQ IMAGE_VAR HOST_ONLY
	want_status 0
	want_line "OVERRIDE_ME=file"
	want_line "FILE_VAR=plain"
	want_line "QUOTED=a b  c"
	want_line 'SQUOTED=x $y z'
	want_line "EQ=a=b"
	want_line "IMAGE_VAR=from-image"
	want_line "HOST_ONLY=host-value"
	run_husk run --env-file "$STAGE/envfile" "$img" -- /probe env
	want_no_re '^#'
	want_no_re '^export'
	case_end

	case_begin "-e overrides --env-file, whatever the option order [$kind]"
	run_husk run -e OVERRIDE_ME=cli --env-file "$STAGE/envfile" -e NEW1=one --env NEW2=a=b "$img" -- \
		/probe env OVERRIDE_ME NEW1 NEW2 FILE_VAR
	want_status 0
	want_line "OVERRIDE_ME=cli"
	want_line "NEW1=one"
	want_line "NEW2=a=b"
	want_line "FILE_VAR=plain"
	case_end

	case_begin "-e overrides the image environment [$kind]"
	run_husk run -e IMAGE_VAR=cli "$img" -- /probe env IMAGE_VAR
	want_status 0
	want_line "IMAGE_VAR=cli"
	case_end

	case_begin "HUSK_CONTAINER=1 and HUSK_IMAGE with an absolute image path [$kind]"
	run_husk run "$img" -- /probe env HUSK_CONTAINER HUSK_IMAGE
	want_status 0
	want_line "HUSK_CONTAINER=1"
	want_line "HUSK_IMAGE=$img"
	case_end

	case_begin "HUSK_IMAGE is absolute when the image path is relative [$kind]"
	RUN_CWD=$(dirname "$img") run_husk run "./$(basename "$img")" -- /probe env HUSK_IMAGE
	want_status 0
	want_line "HUSK_IMAGE=$img"
	case_end

	case_begin "HUSK_CONTAINER is set even with --clean-env [$kind]"
	run_husk run --clean-env "$img" -- /probe env HUSK_CONTAINER HUSK_IMAGE
	want_status 0
	want_line "HUSK_CONTAINER=1"
	want_line "HUSK_IMAGE=$img"
	case_end

	case_begin "--clean-env keeps only the minimal set [$kind]"
	# The variables are given to husk only, through env, so this shell stays clean.
	LAST_CMD="env TERM=xterm ... husk run --clean-env $img -- /probe env ..."
	env TERM=xterm LANG=C.UTF-8 LC_ALL=C TZ=UTC SLURM_JOB_ID=4242 PMIX_RANK=3 PMI_RANK=3 \
		OMPI_COMM_WORLD_SIZE=2 USER="$MY_USER" LOGNAME="$MY_USER" \
		timeout -k 5 "$HUSK_TIMEOUT" "$HUSK" run --clean-env "$img" -- \
		/probe env HOST_ONLY HUSK_FROM_HOST HOME USER LOGNAME TERM LANG LC_ALL TZ SLURM_JOB_ID PMIX_RANK \
		PMI_RANK OMPI_COMM_WORLD_SIZE IMAGE_VAR OVERRIDE_ME PATH </dev/null >"$OUT" 2>"$ERR"
	STATUS=$?
	want_status 0
	want_line "HOST_ONLY<unset>"
	want_line "HUSK_FROM_HOST<unset>"
	want_line "HOME=$HOME"
	want_line "USER=$MY_USER"
	want_line "LOGNAME=$MY_USER"
	want_line "TERM=xterm"
	want_line "LANG=C.UTF-8"
	want_line "LC_ALL=C"
	want_line "TZ=UTC"
	want_line "SLURM_JOB_ID=4242"
	want_line "PMIX_RANK=3"
	want_line "PMI_RANK=3"
	want_line "OMPI_COMM_WORLD_SIZE=2"
	want_line "IMAGE_VAR=from-image"
	want_line "OVERRIDE_ME=image"
	want_line "PATH=$IMAGE_PATH"
	case_end

	case_begin "--clean-env passes nothing outside the minimal set [$kind]"
	run_husk run --clean-env "$img" -- /probe env
	want_status 0
	# Allowed: the minimal set, the image's variables and husk's own.
	allowed='^(HOME|USER|LOGNAME|TERM|LANG|LC_[A-Z_]+|TZ|PATH|(SLURM|SLURMD|PMIX|PMI|OMPI|PRTE|OPAL|HYDRA)_[A-Za-z0-9_]*|MPI_LOCALNRANKS|MPI_LOCALRANKID|IMAGE_VAR|OVERRIDE_ME|HUSK_CONTAINER|HUSK_IMAGE)='
	if grep -Evq "$allowed" "$OUT"; then
		case_fail "variables outside the minimal set:"
		grep -Ev "$allowed" "$OUT" | sed 's/^/#   /'
	fi
	case_end

	case_begin "--dry-run prints mounts and environment and runs nothing [$kind]"
	rm -f "$STAGE/dry-marker"
	mkdir -p "$STAGE/drysrc"
	run_husk run --dry-run -b "$STAGE/drysrc:/drydst" -e DRY_VAR=dry-value "$img" -- \
		/probe write "$STAGE/dry-marker"
	want_status 0
	cat "$OUT" "$ERR" >"$STAGE/dry-all"
	want_re 'DRY_VAR=dry-value' "$STAGE/dry-all"
	want_re 'HUSK_CONTAINER=1' "$STAGE/dry-all"
	want_re '/drydst' "$STAGE/dry-all"
	want_re '/proc' "$STAGE/dry-all"
	want_true "the command ran: $STAGE/dry-marker exists" test ! -e "$STAGE/dry-marker"
	case_end
done

case_begin "an unreadable --env-file is husk's error (125)"
run_husk run --env-file "$STAGE/no-such-envfile" "$IMG_DIR" -- /bin/true
want_status 125
want_husk_error
case_end

case_begin "no leftovers after the environment runs"
check_leftovers
case_end

done_testing

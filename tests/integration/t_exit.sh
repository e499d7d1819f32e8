#!/bin/bash
# Exit statuses: the command's own; 128+N for death by signal N; 126 not
# executable; 127 not found; 125 for husk's own failures, which print exactly
# one stderr line starting with "husk: " -- also for broken images, quickly.
. "$(dirname "$0")/lib.sh"

for kind in $KINDS; do
	img=$(img_of "$kind")
	for pair in "0 /bin/true" "1 /bin/false" "42 /probe exit 42" "7 sh -c exit\ 7"; do
		want=${pair%% *}
		cmd=${pair#* }
		case_begin "exit status $want is passed on ($cmd) [$kind]"
		eval "run_husk run \"\$img\" -- $cmd"
		want_status "$want"
		case_end
	done

	case_begin "death by SIGKILL gives 137 [$kind]"
	run_husk run "$img" -- /probe kill 9
	want_status 137
	case_end

	case_begin "death by SIGTERM gives 143 [$kind]"
	run_husk run "$img" -- /probe kill 15
	want_status 143
	case_end

	case_begin "a non-executable file gives 126 [$kind]"
	run_husk run "$img" -- /bin/noexec.sh
	want_status 126
	want_husk_error
	want_no_line "noexec.sh ran"
	case_end

	case_begin "a missing absolute command gives 127 [$kind]"
	run_husk run "$img" -- /no/such/command
	want_status 127
	want_husk_error
	case_end

	case_begin "a command not found in PATH gives 127 [$kind]"
	run_husk run "$img" -- no-such-command-husk
	want_status 127
	want_husk_error
	case_end

	case_begin "a command found through the image's PATH runs [$kind]"
	run_husk run "$img" -- echo via-path
	want_status 0
	want_line "via-path"
	case_end

	case_begin "an unknown option is husk's error (125) [$kind]"
	run_husk run --no-such-option "$img" -- /bin/true
	want_status 125
	want_husk_error
	case_end
done

case_begin "a missing image is husk's error (125)"
run_husk run "$STAGE/no-such-image.sqfs" -- /bin/true
want_status 125
want_husk_error
case_end

case_begin "husk run without an image is husk's error (125)"
run_husk run
want_status 125
want_husk_error
case_end

case_begin "an unknown subcommand is husk's error (125)"
run_husk frobnicate
want_status 125
want_husk_error
case_end

# Broken images: a clean, quick, one-line failure and nothing left behind.
for pair in "not-an-image $NOT_IMAGE" "corrupt-sqfs $CORRUPT_SQFS" "truncated-sqfs $TRUNC_SQFS"; do
	name=${pair%% *}
	file=${pair#* }
	case_begin "$name: exit 125 within 20 s, one-line error, no leftovers"
	start=$SECONDS
	HUSK_TIMEOUT=20 run_husk run "$file" -- /bin/true
	want_status 125
	want_husk_error
	if [ $((SECONDS - start)) -gt 10 ]; then
		case_fail "took $((SECONDS - start)) s"
	fi
	check_leftovers
	case_end
done

case_begin "no leftovers after the exit status runs"
check_leftovers
case_end

done_testing

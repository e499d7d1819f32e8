#!/bin/bash
# Node-local sessions: launches with the same --join tag (or job step), image
# and user share one user namespace and one image mount, served by one
# husk-session process that goes away with its last member.
. "$(dirname "$0")/lib.sh"

trap 'kill_pids $(jobs -p) 2>/dev/null' EXIT

# A tag unique to this run of the suite.
TAG=t$$-$RANDOM

# Our husk-session processes, one pid a line.
session_servers() {
	pgrep -u "$MY_UID" -x husk-session || true
}

# Wait up to 5 s for no husk-session process of ours.
want_no_server() {
	local i
	for i in $(seq 100); do
		[ -z "$(session_servers)" ] && return 0
		sleep 0.05
	done
	case_fail "husk-session still running: $(session_servers | tr '\n' ' ')"
	kill_pids $(session_servers)
}

# Start husk in the background: bg_husk NAME ARG...; its pid in PID_<NAME>,
# output in $STAGE/NAME.out and .err, status (once waited) in $STAGE/NAME.st.
bg_husk() {
	local name=$1
	shift
	( timeout -k 5 60 "$HUSK" "$@" </dev/null >"$STAGE/$name.out" 2>"$STAGE/$name.err"
	  echo $? >"$STAGE/$name.st" ) &
	eval "PID_${name//-/_}=\$!"
}

# The status of a background run, once it has ended.
bg_status() {
	cat "$STAGE/$1.st" 2>/dev/null || echo none
}

# Line N of a background run's output: out_line NAME N
out_line() {
	sed -n "${2}p" "$STAGE/$1.out"
}

# Both runs exited 0: both_ok NAME1 NAME2
both_ok() {
	[ "$(bg_status "$1")" = 0 ] && [ "$(bg_status "$2")" = 0 ] ||
		case_fail "statuses $(bg_status "$1") and $(bg_status "$2"), want 0 and 0"
}

case_begin "--dry-run tells whether and which session it would join"
run_husk run --dry-run --join="$TAG" "$IMG_SQFS" -- /bin/true
want_status 0
want_re '^session: would join session [0-9a-f]{64} \(--join='"$TAG"'\)'
key1=$(sed -n 's/^session: would join session \([0-9a-f]*\).*/\1/p' "$OUT")
run_husk run --dry-run --join="$TAG-other" "$IMG_SQFS" -- /bin/true
key2=$(sed -n 's/^session: would join session \([0-9a-f]*\).*/\1/p' "$OUT")
[ -n "$key1" ] && [ "$key1" != "$key2" ] || case_fail "two tags gave the same key '$key1'"
run_husk run --dry-run --join="$TAG" --fake-root "$IMG_SQFS" -- /bin/true
key3=$(sed -n 's/^session: would join session \([0-9a-f]*\).*/\1/p' "$OUT")
[ "$key1" != "$key3" ] || case_fail "--fake-root did not change the key"
run_husk run --dry-run "$IMG_SQFS" -- /bin/true
want_re '^session: none'
run_husk run --dry-run --join="$TAG" --no-join "$IMG_SQFS" -- /bin/true
want_re '^session: none \(--no-join\)'
SLURM_JOB_ID=7 SLURM_STEP_ID=0 run_husk run --dry-run "$IMG_SQFS" -- /bin/true
want_re '^session: would join session [0-9a-f]{64} \(Slurm job step 7\.0\)'
[ -z "$(session_servers)" ] || case_fail "a dry run started a session server"
case_end

for kind in $KINDS; do
	img=$(img_of "$kind")

	case_begin "32 concurrent launches share one user namespace and one server [$kind]"
	rm -f "$STAGE"/c-*.out "$STAGE"/c-*.st
	pids=()
	start=$(date +%s%N)
	for i in $(seq 32); do
		bg_husk "c-$i" run -v --join="$TAG-32-$kind" "$img" -- /bin/sh -c \
			'readlink /proc/self/ns/user; /probe sleep 1'
		pids+=("$!")
	done
	# Which husk-session processes exist while they run.
	( for _ in $(seq 30); do session_servers; sleep 0.05; done >"$STAGE/seen" ) &
	wait "${pids[@]}"
	end=$(date +%s%N)
	wait
	seen=$(cat "$STAGE/seen")
	diag "32 concurrent session launches [$kind]: $(((end - start) / 1000000)) ms (each sleeps 1 s)"
	bad=0
	for i in $(seq 32); do
		[ "$(bg_status "c-$i")" = 0 ] || bad=$((bad + 1))
	done
	[ "$bad" = 0 ] || { case_fail "$bad of 32 launches failed"; diag_file "a stderr" "$STAGE/c-1.err"; }
	n_ns=$(cat "$STAGE"/c-*.out | grep -c '^user:' | tr -d ' ')
	distinct=$(cat "$STAGE"/c-*.out | grep '^user:' | sort -u | wc -l)
	[ "$n_ns" = 32 ] || case_fail "$n_ns of 32 launches printed their user namespace"
	[ "$distinct" = 1 ] || case_fail "$distinct different user namespaces, want 1"
	started=$(cat "$STAGE"/c-*.err | grep -c 'joined session .* (started it)')
	existing=$(cat "$STAGE"/c-*.err | grep -c 'joined session .* (existing)')
	[ "$started" = 1 ] && [ "$existing" = 31 ] ||
		case_fail "$started launches started a server and $existing joined one; want 1 and 31"
	servers=$(printf '%s\n' $seen | sort -u | grep -c . || true)
	[ "$servers" = 1 ] || case_fail "$servers different husk-session processes seen, want 1"
	mine=$(readlink /proc/self/ns/user)
	grep -q "^$mine\$" "$STAGE/c-1.out" && case_fail "the session shares the host's user namespace"
	run_husk run --no-join "$img" -- readlink /proc/self/ns/user
	want_status 0
	if grep -qx -f "$OUT" "$STAGE/c-1.out"; then
		case_fail "--no-join ran in the session's user namespace"
	fi
	want_no_server
	check_leftovers
	case_end
done

case_begin "32 concurrent launches without a session (for comparison)"
# Each one waits until all 32 are running: a user namespace freed early can
# hand its inode number to a later one, which would look like sharing.
mkdir -p "$STAGE/alive"
start=$(date +%s%N)
for i in $(seq 32); do
	bg_husk "n-$i" run "$IMG_SQFS" -- /bin/sh -c 'readlink /proc/self/ns/user; /probe sleep 1
		touch '"$STAGE/alive"'/$$-'"$i"'; n=0
		while [ "$(ls '"$STAGE/alive"' | wc -l)" -lt 32 ] && [ $n -lt 300 ]; do
			sleep 0.1; n=$((n + 1)); done'
done
wait
end=$(date +%s%N)
diag "32 concurrent launches without a session: $(((end - start) / 1000000)) ms (each sleeps 1 s)"
distinct=$(cat "$STAGE"/n-*.out | sort -u | wc -l)
[ "$distinct" = 32 ] || case_fail "$distinct different user namespaces, want 32"
check_leftovers
case_end

case_begin "the member that started the server ends first; the others still read the image"
rm -f "$STAGE/ready-a"
bg_husk first run -v --join="$TAG-first" "$IMG_SQFS" -- /bin/sh -c \
	'readlink /proc/self/ns/user; echo ready >'"$STAGE/ready-a"'; /probe sleep 1'
wait_for_file "$STAGE/ready-a" ready 20 || case_fail "the first member never started"
bg_husk second run -v --join="$TAG-first" "$IMG_SQFS" -- /bin/sh -c \
	'readlink /proc/self/ns/user; /probe sleep 3; cat /probe /bin/* >/dev/null && echo read-ok'
wait
[ "$(bg_status first)" = 0 ] && [ "$(bg_status second)" = 0 ] ||
	case_fail "statuses $(bg_status first) and $(bg_status second), want 0 and 0"
grep -q '(started it)' "$STAGE/first.err" || case_fail "the first did not start the server"
grep -q '(existing)' "$STAGE/second.err" || case_fail "the second did not join the session"
grep -q '^read-ok$' "$STAGE/second.out" || case_fail "the second could not read the image"
[ "$(head -n1 "$STAGE/first.out")" = "$(head -n1 "$STAGE/second.out")" ] ||
	case_fail "different user namespaces"
want_no_server
check_leftovers
case_end

case_begin "kill -9 of one member: the others finish normally, nothing is left"
for i in 1 2 3; do
	rm -f "$STAGE/ready-k$i"
	bg_husk "k-$i" run --join="$TAG-kill" "$IMG_SQFS" -- /bin/sh -c \
		'echo ready >'"$STAGE/ready-k$i"'; /probe sleep 2; cat /probe /bin/* >/dev/null && echo read-ok'
done
for i in 1 2 3; do
	wait_for_file "$STAGE/ready-k$i" ready 20 || case_fail "member $i never started"
done
# The husk process itself (the child of bg_husk's timeout).
victim=$(pgrep -u "$MY_UID" -f -- "--join=$TAG-kill" | while read -r p; do
	[ "$(cat /proc/$p/comm 2>/dev/null)" = husk ] && grep -q "ready-k2" /proc/$p/cmdline && echo $p
done | head -n1)
if [ -z "$victim" ]; then
	case_fail "could not find member 2's husk process"
else
	kill -KILL "$victim"
fi
wait
[ "$(bg_status k-1)" = 0 ] && [ "$(bg_status k-3)" = 0 ] ||
	case_fail "statuses $(bg_status k-1) and $(bg_status k-3), want 0 and 0"
[ "$(bg_status k-2)" = 137 ] || case_fail "the killed member's status is $(bg_status k-2), want 137"
grep -q '^read-ok$' "$STAGE/k-1.out" && grep -q '^read-ok$' "$STAGE/k-3.out" ||
	case_fail "a surviving member could not read the image"
want_no_server
check_leftovers
case_end

case_begin "two tags at once never share; a Slurm job step joins by itself"
bg_husk tag-x run --join="$TAG-x" "$IMG_SQFS" -- /bin/sh -c 'readlink /proc/self/ns/user; /probe sleep 1'
bg_husk tag-y run --join="$TAG-y" "$IMG_SQFS" -- /bin/sh -c 'readlink /proc/self/ns/user; /probe sleep 1'
SLURM_JOB_ID=$$ SLURM_STEP_ID=3 bg_husk slurm-1 run -v "$IMG_SQFS" -- /bin/sh -c 'readlink /proc/self/ns/user; /probe sleep 1'
SLURM_JOB_ID=$$ SLURM_STEP_ID=3 bg_husk slurm-2 run -v "$IMG_SQFS" -- /bin/sh -c 'readlink /proc/self/ns/user; /probe sleep 1'
wait
for n in tag-x tag-y slurm-1 slurm-2; do
	[ "$(bg_status $n)" = 0 ] || case_fail "$n: status $(bg_status $n)"
done
[ "$(cat "$STAGE/tag-x.out")" != "$(cat "$STAGE/tag-y.out")" ] ||
	case_fail "two tags shared a user namespace"
[ "$(cat "$STAGE/slurm-1.out")" = "$(cat "$STAGE/slurm-2.out")" ] ||
	case_fail "two launches of one Slurm step did not share a user namespace"
grep -q 'joined session' "$STAGE/slurm-1.err" || case_fail "no session for a Slurm step"
want_no_server
check_leftovers
case_end

case_begin "an image rewritten in place (same size, mtime put back) never joins the old session"
# Two images of identical size that differ in one file's content.
for v in one two; do
	rm -rf "$STAGE/rw-$v"
	cp -a "$IMG_DIR" "$STAGE/rw-$v"
	echo "$v" >"$STAGE/rw-$v/msg"
	touch -d @1700000000 "$STAGE/rw-$v/msg"
	mksquashfs "$STAGE/rw-$v" "$STAGE/rw-$v.sqfs" -noappend -quiet -no-progress -noI -noD -noF \
		-noX -all-root -mkfs-time 1700000000 -all-time 1700000000 >/dev/null 2>&1 ||
		case_fail "mksquashfs failed"
done
[ "$(stat -c %s "$STAGE/rw-one.sqfs")" = "$(stat -c %s "$STAGE/rw-two.sqfs")" ] ||
	case_fail "the two images differ in size"
cp "$STAGE/rw-one.sqfs" "$STAGE/rw.sqfs"
touch -d @1700000000 "$STAGE/rw.sqfs"
rm -f "$STAGE/ready-rw"
bg_husk rw-1 run --join="$TAG-rw" "$STAGE/rw.sqfs" -- /bin/sh -c \
	'readlink /proc/self/ns/user; cat /msg; echo ready >'"$STAGE/ready-rw"'; /probe sleep 3'
wait_for_file "$STAGE/ready-rw" ready 20 || case_fail "the first member never started"
ino=$(stat -c %i "$STAGE/rw.sqfs")
# Rewrite in place: same inode, same size, the old mtime put back.
cat "$STAGE/rw-two.sqfs" >"$STAGE/rw.sqfs"
touch -d @1700000000 "$STAGE/rw.sqfs"
[ "$(stat -c %i "$STAGE/rw.sqfs")" = "$ino" ] || case_fail "the rewrite changed the inode"
bg_husk rw-2 run -v --join="$TAG-rw" "$STAGE/rw.sqfs" -- /bin/sh -c 'readlink /proc/self/ns/user; cat /msg'
wait
both_ok rw-1 rw-2
[ "$(out_line rw-1 2)" = one ] || case_fail "the first member read '$(out_line rw-1 2)', want one"
[ "$(out_line rw-2 2)" = two ] ||
	case_fail "the second member read '$(out_line rw-2 2)' from the rewritten image, want two"
[ "$(out_line rw-1 1)" != "$(out_line rw-2 1)" ] ||
	case_fail "the second member joined the session of the old image"
grep -q '(started it)' "$STAGE/rw-2.err" || case_fail "the second member did not start a session of its own"
want_no_server
check_leftovers
case_end

case_begin "--fake-root members share their own session, as uid 0"
bg_husk fr-1 run --fake-root --join="$TAG-fr" "$IMG_SQFS" -- /bin/sh -c 'readlink /proc/self/ns/user; id -u; /probe sleep 1'
bg_husk fr-2 run --fake-root --join="$TAG-fr" "$IMG_SQFS" -- /bin/sh -c 'readlink /proc/self/ns/user; id -u; /probe sleep 1'
bg_husk fr-3 run --join="$TAG-fr" "$IMG_SQFS" -- /bin/sh -c 'readlink /proc/self/ns/user; id -u; /probe sleep 1'
wait
for n in fr-1 fr-2 fr-3; do
	[ "$(bg_status $n)" = 0 ] || case_fail "$n: status $(bg_status $n)"
done
[ "$(cat "$STAGE/fr-1.out")" = "$(cat "$STAGE/fr-2.out")" ] ||
	case_fail "two --fake-root members of one tag did not share"
grep -qx 0 "$STAGE/fr-1.out" || case_fail "not uid 0 inside with --fake-root"
grep -qx "$MY_UID" "$STAGE/fr-3.out" || case_fail "not my uid inside without --fake-root"
[ "$(head -n1 "$STAGE/fr-1.out")" != "$(head -n1 "$STAGE/fr-3.out")" ] ||
	case_fail "a --fake-root member shared with a plain one"
want_no_server
check_leftovers
case_end

case_begin "a session whose server cannot start: one error naming it and --no-join, nothing left"
# With 9 open files at most, the server cannot move its fds to their fixed
# numbers (10 and up) and dies before it reports.
( ulimit -n 9 && run_husk run --join="$TAG-nofd" "$IMG_SQFS" -- /bin/true; echo "$STATUS" >"$STAGE/nofd.st" )
STATUS=$(cat "$STAGE/nofd.st")
want_status 125
want_husk_error
want_re "^husk: session [0-9a-f]{64} \(--join=$TAG-nofd\) of image '.*': .*; run with --no-join" "$ERR"
want_no_server
check_leftovers
case_end

case_begin "the server killed mid-run: one warning, the command fails to read"
rm -f "$STAGE/ready-s"
bg_husk dead run --join="$TAG-dead" "$IMG_SQFS" -- /bin/sh -c \
	'echo ready >'"$STAGE/ready-s"'; /probe sleep 1; cat /probe >/dev/null && echo read-ok'
wait_for_file "$STAGE/ready-s" ready 20 || case_fail "the member never started"
kill_pids $(session_servers)
wait
grep -q "^husk: warning: session server for image '.*' ended unexpectedly" "$STAGE/dead.err" ||
	{ case_fail "no warning"; diag_file stderr "$STAGE/dead.err"; }
grep -q '^read-ok$' "$STAGE/dead.out" && case_fail "the image was still readable"
want_no_server
check_leftovers
case_end

for kind in $KINDS; do
	img=$(img_of "$kind")

	case_begin "members with one plan share the root the server assembled; a bind of its own gets its own [$kind]"
	mkdir -p "$STAGE/sr-extra"
	echo extra >"$STAGE/sr-extra/file"
	for i in 1 2 3; do
		rm -f "$STAGE/ready-sr$i"
	done
	# Three members with the same mounts (--cwd and -e are not mounts), then
	# one with a bind more, all alive at once.
	for i in 1 2 3; do
		bg_husk "sr-$i" run -v --join="$TAG-sr-$kind" --cwd "/bin" -e "RANK=$i" "$img" -- \
			/bin/sh -c 'readlink /proc/self/ns/user; readlink /proc/self/ns/mnt; pwd; echo $RANK
				test -e /sr-extra && echo sees-extra; echo ready >'"$STAGE/ready-sr$i"'; /probe sleep 2'
	done
	for i in 1 2 3; do
		wait_for_file "$STAGE/ready-sr$i" ready 20 || case_fail "member $i never started"
	done
	bg_husk sr-b run -v --join="$TAG-sr-$kind" --cwd /etc -b "$STAGE/sr-extra:/sr-extra" "$img" -- \
		/bin/sh -c 'readlink /proc/self/ns/user; readlink /proc/self/ns/mnt; pwd; cat /sr-extra/file'
	wait
	for n in sr-1 sr-2 sr-3 sr-b; do
		[ "$(bg_status $n)" = 0 ] || { case_fail "$n: status $(bg_status $n)"; diag_file stderr "$STAGE/$n.err"; }
	done
	users=$(for n in sr-1 sr-2 sr-3 sr-b; do out_line $n 1; done | sort -u | wc -l)
	[ "$users" = 1 ] || case_fail "$users user namespaces among the four members, want 1"
	roots=$(for n in sr-1 sr-2 sr-3; do out_line $n 2; done | sort -u | wc -l)
	[ "$roots" = 1 ] || case_fail "$roots mount namespaces among three members of one plan, want 1"
	[ "$(out_line sr-b 2)" != "$(out_line sr-1 2)" ] ||
		case_fail "the member with a bind of its own ran in the shared root"
	for i in 1 2 3; do
		grep -q 'joined session .*its shared root' "$STAGE/sr-$i.err" ||
			case_fail "member $i did not say it took the shared root"
		[ "$(out_line sr-$i 3)" = /bin ] || case_fail "member $i is in '$(out_line sr-$i 3)', want /bin"
		[ "$(out_line sr-$i 4)" = "$i" ] || case_fail "member $i has RANK='$(out_line sr-$i 4)'"
	done
	grep -q sees-extra "$STAGE"/sr-[123].out && case_fail "a member of the shared root sees the other member's bind"
	grep -q 'joined session .*a root of our own' "$STAGE/sr-b.err" ||
		case_fail "the member with a bind of its own did not say so"
	[ "$(out_line sr-b 3)" = /etc ] || case_fail "the bind member is in '$(out_line sr-b 3)', want /etc"
	[ "$(out_line sr-b 4)" = extra ] || case_fail "the bind member cannot read its bind"
	want_no_server
	check_leftovers
	case_end
done

case_begin "--writable-tmpfs members never share a root: each writes its own layer"
rm -f "$STAGE/ready-wt1"
bg_husk wt-1 run -v --writable-tmpfs --join="$TAG-wt" "$IMG_SQFS" -- /bin/sh -c \
	'readlink /proc/self/ns/mnt; echo one >/wt-file; echo ready >'"$STAGE/ready-wt1"'; /probe sleep 2; cat /wt-file'
wait_for_file "$STAGE/ready-wt1" ready 20 || case_fail "the first member never started"
bg_husk wt-2 run -v --writable-tmpfs --join="$TAG-wt" "$IMG_SQFS" -- /bin/sh -c \
	'readlink /proc/self/ns/mnt; cat /wt-file 2>/dev/null || echo absent'
wait
both_ok wt-1 wt-2
[ "$(out_line wt-2 2)" = absent ] || case_fail "the second member saw the first one's file"
[ "$(out_line wt-1 2)" = one ] || case_fail "the first member lost its file"
[ "$(out_line wt-1 1)" != "$(out_line wt-2 1)" ] ||
	case_fail "two --writable-tmpfs members shared a mount namespace"
grep -q 'joined session .*a root of our own' "$STAGE/wt-2.err" || case_fail "no 'root of our own' with --writable-tmpfs"
want_no_server
check_leftovers
case_end

for pair in "not-an-image $NOT_IMAGE" "corrupt-sqfs $CORRUPT_SQFS" "truncated-sqfs $TRUNC_SQFS"; do
	name=${pair%% *}
	file=${pair#* }
	case_begin "$name with --join: exit 125, one-line error, no server left"
	HUSK_TIMEOUT=20 run_husk run --join="$TAG-bad" "$file" -- /bin/true
	want_status 125
	want_husk_error
	want_no_server
	check_leftovers
	case_end
done

case_begin "a kernel without open_tree: no session, one launch as before"
HUSK=$HUSK_OLD_KERNEL run_husk run -vv --join="$TAG-old" "$IMG_SQFS" -- /probe ids
want_status 0
want_re 'not joining session .*no open_tree' "$ERR"
want_no_re 'warning' "$ERR"
want_no_server
check_leftovers
case_end

done_testing

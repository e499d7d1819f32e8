#!/bin/bash
# Warm profiles: `husk run --warm-record` writes what a command looked up,
# listed and read in a SquashFS image; `husk build`'s WARM puts one into the
# image; every launch replays it ahead of its command, storing the right
# bytes, and a hostile profile reaches nothing outside the image.
. "$(dirname "$0")/lib.sh"

HUSK_TIMEOUT=120
W=$STAGE/warm
mkdir -p "$W/ctx" "$W/out"

# "N KiB" of the -v statistics line: reads (N KiB), N KiB warmed.
read_kib() { sed -n 's/.*image served: .* reads (\([0-9]*\) KiB).*/\1/p' "$ERR" | tail -n 1; }
warmed_kib() { sed -n 's/.*, \([0-9]*\) KiB warmed,.*/\1/p' "$ERR" | tail -n 1; }

case_begin "--warm-record: what the command looked up, listed and read, in whole blocks"
rm -f "$W/rec.warm"
run_husk run --warm-record "$W/rec.warm" "$IMG_SQFS" -- /bin/sh -c \
	'cat /probe >/dev/null; ls /etc >/dev/null; test -e /etc/nothere || echo absent'
want_status 0
want_line "absent"
if [ ! -s "$W/rec.warm" ]; then
	case_fail "no profile written"
else
	want_line "husk-warm 1" "$W/rec.warm"
	want_line "L probe" "$W/rec.warm"
	want_line "L etc/nothere" "$W/rec.warm"
	want_line "D etc" "$W/rec.warm"
	want_re "^R 0 [0-9]+ probe$" "$W/rec.warm"
	want_no_re "^L /" "$W/rec.warm"
	if [ "$(head -n 1 "$W/rec.warm")" != "husk-warm 1" ]; then
		case_fail "the profile does not start with its header"
	fi
fi
case_end

case_begin "--warm-record on a directory image: one husk: line, exit 125, nothing run"
rm -f "$W/dir.warm" "$W/ran"
run_husk run --warm-record "$W/dir.warm" "$IMG_DIR" -- /bin/sh -c "touch '$W/ran'"
want_status 125
want_husk_error
want_re "^husk: --warm-record: image '.*' is a directory.*record with the SquashFS image" "$ERR"
if [ -e "$W/ran" ] || [ -e "$W/dir.warm" ]; then
	case_fail "the command ran, or the profile was created"
fi
case_end

case_begin "--warm-record to a file that cannot be written: exit 125, nothing run"
rm -f "$W/ran"
run_husk run --warm-record "$W/no/such/dir/x.warm" "$IMG_SQFS" -- /bin/sh -c "touch '$W/ran'"
want_status 125
want_husk_error
want_re "^husk: warm profile '.*/no/such/dir/x.warm': No such file or directory; nothing was run" "$ERR"
if [ -e "$W/ran" ]; then
	case_fail "the command ran"
fi
case_end

# A file of 300000 bytes (several blocks) and a small one (a fragment).
cat >"$W/ctx/recipe" <<EOF
FROM $IMG_DIR
RUN mkdir -p /data && echo hello >/data/small.txt && \\
    head -c 300000 /bin/busybox >/data/big.bin
WARM /bin/sh -c 'cat /data/small.txt /data/big.bin >/dev/null'
EOF

case_begin "husk build WARM: the profile is in the image, and the same inputs give the same bytes"
rm -f "$W/out"/*
SOURCE_DATE_EPOCH=1700000000 RUN_CWD=$W run_husk build ctx/recipe out/w1.sqfs
want_status 0
want_re "WARM /bin/sh -c .*: recording what it reads" "$ERR"
SOURCE_DATE_EPOCH=1700000000 RUN_CWD=$W run_husk build -q ctx/recipe out/w2.sqfs
want_status 0
if ! cmp -s "$W/out/w1.sqfs" "$W/out/w2.sqfs"; then
	case_fail "two builds with WARM differ"
fi
run_husk run "$W/out/w1.sqfs" -- /bin/cat /.husk/warm
want_status 0
want_line "husk-warm 1"
want_line "L data/big.bin"
want_line "R 0 393216 data/big.bin"
want_re "^R 0 [0-9]+ data/small.txt$"
case_end

case_begin "a WARM command that fails fails the build, and leaves nothing"
cat >"$W/ctx/bad" <<EOF
FROM $IMG_DIR
WARM /bin/sh -c 'exit 3'
EOF
RUN_CWD=$W run_husk build ctx/bad out/bad.sqfs
want_status 125
want_re "^husk: recipe 'ctx/bad' line 2 \(WARM\): the command failed with exit status 3" "$ERR"
if [ -e "$W/out/bad.sqfs" ] || [ -n "$(cd "$W/out" && ls -A | grep -v '^w[12].sqfs$')" ]; then
	case_fail "output left behind: $(cd "$W/out" && ls -A | tr '\n' ' ')"
fi
case_end

want_md5=$(head -c 300000 "$IMG_DIR/bin/busybox" | md5sum | cut -d' ' -f1)

# The same image with a profile written by hand, big.bin first: the replay
# runs on idle CPU only, so the command gives it time before reading.
mkdir -p "$W/ctx/byhand"
printf 'husk-warm 1\nL data\nL data/big.bin\nR 0 393216 data/big.bin\nR 0 131072 data/small.txt\n' \
	>"$W/ctx/byhand/warm"
cat >"$W/ctx/byhand/recipe" <<EOF
FROM $W/out/w1.sqfs
COPY warm /.husk/warm
EOF

# Push-ahead and prefetch off in both runs, so that what the kernel reads
# differs by what the replay stored only (big.bin, 293 KiB; the rest of
# busybox's reads moves by some 20 KiB from run to run).
case_begin "a launch replays the profile: the data is in the page cache, right, before it is read"
RUN_CWD=$W run_husk build -q ctx/byhand/recipe out/byhand.sqfs
want_status 0
HUSK_NO_PUSH=1 HUSK_NO_PREFETCH=1 run_husk run -v "$W/out/byhand.sqfs" -- /bin/sh -c 'sleep 2; md5sum /data/big.bin; cat /data/small.txt'
want_status 0
want_re "^$want_md5 "
want_line "hello"
want_re "replaying the image's warm profile" "$ERR"
r_warm=$(read_kib); w=$(warmed_kib)
# The same without the replay: big.bin's 293 KiB are read from the server.
HUSK_NO_PUSH=1 HUSK_NO_PREFETCH=1 run_husk run -v --no-warm "$W/out/byhand.sqfs" -- \
	/bin/sh -c 'sleep 2; md5sum /data/big.bin; cat /data/small.txt'
want_status 0
want_re "^$want_md5 "
want_no_re "replaying" "$ERR"
r_cold=$(read_kib)
diag "read with the replay: ${r_warm:-?} KiB (${w:-?} KiB warmed); without: ${r_cold:-?} KiB"
if [ -z "$r_warm" ] || [ -z "$r_cold" ] || [ -z "$w" ] || [ "$w" -lt 292 ] ||
   [ $((r_cold - r_warm)) -lt 240 ] || [ "$(warmed_kib)" != 0 ]; then
	case_fail "want big.bin (292 KiB) warmed, and read from the server only without the replay"
fi
case_end

case_begin "HUSK_NO_WARM=1: no replay"
HUSK_NO_WARM=1 run_husk run -v "$W/out/w1.sqfs" -- /bin/true
want_status 0
want_no_re "replaying" "$ERR"
case_end

case_begin "kill -9 of husk while it replays a profile leaves no process, mount or temp file"
rm -f "$W/started"
"$HUSK" run "$W/out/w1.sqfs" -- /bin/sh -c "touch '$W/started'; exec sleep 7331" \
	</dev/null >/dev/null 2>&1 &
pid=$!
for _ in $(seq 200); do
	[ -e "$W/started" ] && break
	sleep 0.01
done
[ -e "$W/started" ] || case_fail "the command never started"
kill -KILL "$pid"
wait "$pid" 2>/dev/null
st=$?
[ "$st" = 137 ] || case_fail "husk exited $st, want 137"
check_leftovers 10
case_end

# A profile of 3000 small files, each looked up and stored: the command
# ends while that is under way. (When the replay's lookups came from a
# thread of the server itself, 7 runs in 30 hung: a lookup a worker had
# taken when the process exited was waited out for ever.)
mkdir -p "$W/ctx/many"
{ echo "husk-warm 1"; for i in $(seq 3000); do echo "L data/f$i"; echo "R 0 131072 data/f$i"; done; } \
	>"$W/ctx/many/warm"
cat >"$W/ctx/many/recipe" <<EOF
FROM $IMG_DIR
RUN mkdir -p /data && i=1 && while [ \$i -le 3000 ]; do echo "file \$i" >/data/f\$i; i=\$((i + 1)); done
COPY warm /.husk/warm
EOF

case_begin "a command that ends during the replay: husk returns at once, nothing left"
RUN_CWD=$W run_husk build -q ctx/many/recipe out/many.sqfs
want_status 0
saved_timeout=$HUSK_TIMEOUT
HUSK_TIMEOUT=20
for i in $(seq 10); do
	run_husk run "$W/out/many.sqfs" -- /bin/true
	if [ "$STATUS" != 0 ]; then
		case_fail "run $i: exit status $STATUS"
		break
	fi
done
HUSK_TIMEOUT=$saved_timeout
check_leftovers 10
case_end

# A profile that tries to leave the image: "..", absolute paths, symlinks out
# of the image and within it, a directory named through a symlink, offsets
# past the end, garbage. Replayed, it stores nothing at all.
mkdir -p "$W/ctx/hostile"
cat >"$W/ctx/hostile/warm" <<'EOF'
husk-warm 1
L ../../../../etc/passwd
L /etc/passwd
R 0 4096 ../../../../etc/passwd
R 0 4096 /etc/passwd
R 0 4096 /bin/busybox
R 0 4096 up/etc/passwd
R 0 4096 same/bin/busybox
R 0 4096 data
D up
D /
R 18446744073709551615 18446744073709551615 bin/busybox
R 99999999999 4096 bin/busybox
R x y bin/busybox
Rgarbage
R
L
EOF
cat >"$W/ctx/hrecipe" <<EOF
FROM $IMG_DIR
RUN mkdir -p /data && ln -s ../../../../.. /up && ln -s . /same
COPY hostile/warm /.husk/warm
EOF

case_begin "a hostile profile in the image stores nothing and the launch runs as usual"
RUN_CWD=$W run_husk build -q ctx/hrecipe out/hostile.sqfs
want_status 0
run_husk run -v "$W/out/hostile.sqfs" -- /bin/sh -c 'sleep 1; cat /etc/hosts >/dev/null; echo fine'
want_status 0
want_line "fine"
want_re "replaying the image's warm profile" "$ERR"
w=$(warmed_kib)
if [ "${w:-x}" != 0 ]; then
	case_fail "warmed ${w:-?} KiB, want 0: some line was followed"
fi
case_end

case_begin "a profile of another version is not replayed"
printf 'husk-warm 2\nR 0 131072 bin/busybox\n' >"$W/ctx/hostile/warm"
RUN_CWD=$W run_husk build -q ctx/hrecipe out/v2.sqfs
want_status 0
run_husk run -v "$W/out/v2.sqfs" -- /bin/sh -c 'sleep 1; echo fine'
want_status 0
want_line "fine"
w=$(warmed_kib)
if [ "${w:-x}" != 0 ]; then
	case_fail "warmed ${w:-?} KiB, want 0"
fi
case_end

done_testing

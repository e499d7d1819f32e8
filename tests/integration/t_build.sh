#!/bin/bash
# husk build: recipes (FROM a local image and FROM scratch), directory, tar
# and OCI sources, root emulation in RUN, reproducible output, and bad input
# rejected with one clear line and nothing left behind.
. "$(dirname "$0")/lib.sh"

HUSK_TIMEOUT=120
B=$STAGE/build
mkdir -p "$B/ctx" "$B/out"
echo "hello from the context" >"$B/ctx/hello.txt"
mkdir -p "$B/ctx/tree/sub"
echo one >"$B/ctx/tree/a"
echo two >"$B/ctx/tree/sub/b"
ln -s a "$B/ctx/tree/link-to-a"

# The output directory holds exactly these names (no temporary leftovers).
want_outdir() {
	local got
	got=$(cd "$B/out" && ls -A | tr '\n' ' ')
	if [ "$got" != "$1" ]; then
		case_fail "output directory holds '$got', want '$1'"
	fi
}

cat >"$B/ctx/recipe" <<EOF
# a recipe over the tiny test image
FROM $IMG_DIR
ENV GREETING="hi there" \\
    EMPTY=
ENV DERIVED=\$GREETING/x
WORKDIR /opt/app
COPY hello.txt ./
COPY tree /opt/tree
RUN echo "uid \$(id -u) in \$(pwd): \$GREETING" && chown 123:456 hello.txt && \\
    ls -ln hello.txt > owner.txt && echo made > made.txt
LABEL org.example.name=demo version=1
CMD ["/bin/sh", "-c", "echo default cmd"]
EOF

case_begin "a recipe builds; stdout names the output and its sha256"
rm -rf "$B/out"/*
RUN_CWD=$B run_husk build ctx/recipe out/app.sqfs
want_status 0
want_line "out/app.sqfs sha256:$(sha256sum <"$B/out/app.sqfs" 2>/dev/null | cut -d' ' -f1)"
want_re "^uid 0 in /opt/app: hi there$"
want_re "step 5/9: COPY hello.txt" "$ERR"
want_outdir "app.sqfs "
case_end

img=$B/out/app.sqfs
case_begin "the built image runs: ENV, WORKDIR, COPY (files, trees, symlinks), RUN output"
run_husk run "$img" -- /bin/sh -c 'echo "G=$GREETING D=$DERIVED E=[$EMPTY] I=$IMAGE_VAR"; cat /opt/app/hello.txt /opt/app/made.txt /opt/tree/a /opt/tree/sub/b; readlink /opt/tree/link-to-a'
want_status 0
want_line "G=hi there D=hi there/x E=[] I=from-image"
want_line "hello from the context"
want_line "made"
want_line "one"
want_line "two"
want_line "a"
case_end

case_begin "root emulation: chown in RUN succeeds without effect"
run_husk run "$img" -- /bin/cat /opt/app/owner.txt
want_status 0
want_re "^-rw-r--r-- +1 0 +0 .*hello.txt$"
case_end

case_begin "metadata and the recipe are kept in /.husk"
run_husk run "$img" -- /bin/cat /.husk/metadata.json /.husk/recipe /.husk/environment
want_status 0
want_re '"org.example.name": "demo"'
want_re '"workdir": "/opt/app"'
want_re '"kind": "recipe"'
want_re '^GREETING="hi there"$'
want_line "FROM $IMG_DIR"
case_end

case_begin "the same inputs and SOURCE_DATE_EPOCH give the same bytes"
rm -f "$B/out"/*
SOURCE_DATE_EPOCH=1700000000 RUN_CWD=$B run_husk build -q ctx/recipe out/r1.sqfs
first=$(cat "$OUT")
touch "$B/ctx/hello.txt"   # content, not mtime, is an input
sleep 1
SOURCE_DATE_EPOCH=1700000000 RUN_CWD=$B run_husk build -q ctx/recipe out/r2.sqfs
want_status 0
if ! cmp -s "$B/out/r1.sqfs" "$B/out/r2.sqfs"; then
	case_fail "two builds differ: $first / $(cat "$OUT")"
fi
SOURCE_DATE_EPOCH=1700000001 RUN_CWD=$B run_husk build -q ctx/recipe out/r3.sqfs
if cmp -s "$B/out/r1.sqfs" "$B/out/r3.sqfs"; then
	case_fail "another SOURCE_DATE_EPOCH gives the same bytes"
fi
run_husk run "$B/out/r1.sqfs" -- /bin/stat -c '%Y' /opt/app/made.txt
want_line "1700000000"
case_end

case_begin "FROM scratch: COPY a static busybox, RUN in exec form"
mkdir -p "$B/scratch"
cp "$IMG_DIR/bin/busybox" "$B/scratch/busybox"
cat >"$B/scratch/recipe" <<'EOF'
FROM scratch
COPY busybox /bin/busybox
RUN ["/bin/busybox", "mkdir", "-p", "/usr/bin", "/tmp"]
RUN ["/bin/busybox", "--install", "-s", "/bin"]
ENTRYPOINT ["/bin/echo", "entry"]
EOF
rm -f "$B/out"/*
run_husk build -q "$B/scratch/recipe" "$B/out/scratch.sqfs"
want_status 0
run_husk run "$B/out/scratch.sqfs" -- sh -c 'echo scratch works; ls /bin | grep -c .'
want_status 0
want_line "scratch works"
case_end

case_begin "a directory source builds an image that runs like the directory"
run_husk build -q "$IMG_DIR" "$B/out/dir.sqfs"
want_status 0
run_husk run "$B/out/dir.sqfs" -- /probe ids
want_status 0
want_re "^uid=$MY_UID"
run_husk run "$B/out/dir.sqfs" -- /bin/sh -c 'echo $IMAGE_VAR; ls -l /probe-suid'
want_line "from-image"
want_re "^-rws"
case_end

case_begin "a gzip tar source builds"
tar -C "$IMG_DIR" -czf "$B/tiny.tar.gz" .
run_husk build -q -c zstd "$B/tiny.tar.gz" "$B/out/tar.sqfs"
want_status 0
run_husk run "$B/out/tar.sqfs" -- /bin/sh -c 'echo tar works $IMAGE_VAR'
want_line "tar works from-image"
case_end

if command -v umoci >/dev/null 2>&1; then
	case_begin "an OCI layout made by umoci: layers, whiteouts, Env and WorkingDir"
	L=$B/oci
	rm -rf "$L" "$B/bundle"
	ok=1
	{
		umoci init --layout "$L" &&
		umoci new --image "$L:t" &&
		umoci unpack --rootless --image "$L:t" "$B/bundle" &&
		cp -a "$IMG_DIR"/. "$B/bundle/rootfs/" &&
		echo gone >"$B/bundle/rootfs/deleted-later" &&
		umoci repack --image "$L:t" "$B/bundle" &&
		rm -rf "$B/bundle" &&
		umoci unpack --rootless --image "$L:t" "$B/bundle" &&
		rm "$B/bundle/rootfs/deleted-later" &&
		echo second >"$B/bundle/rootfs/added" &&
		umoci repack --image "$L:t" "$B/bundle" &&
		umoci config --image "$L:t" --config.env OCI_VAR=from-oci --config.workingdir /bin \
			--config.cmd /bin/true
	} >"$B/umoci.log" 2>&1 || ok=0
	if [ "$ok" = 0 ]; then
		case_fail "umoci could not make the layout"
		diag_file "umoci" "$B/umoci.log"
	fi
	run_husk build -q "$L" "$B/out/oci.sqfs"
	want_status 0
	run_husk run "$B/out/oci.sqfs" -- /bin/sh -c 'echo "$OCI_VAR"; cat /added; ls /deleted-later 2>&1 || echo whiteout honoured'
	want_line "from-oci"
	want_line "second"
	want_line "whiteout honoured"
	case_end

	case_begin "the same image as an OCI archive (a tar of the layout)"
	tar -C "$L" -cf "$B/oci.tar" .
	run_husk build -q "$B/oci.tar" "$B/out/ocitar.sqfs"
	want_status 0
	run_husk run "$B/out/ocitar.sqfs" -- /bin/sh -c 'echo "$OCI_VAR"; cat /added'
	want_line "from-oci"
	want_line "second"
	case_end

	if command -v skopeo >/dev/null 2>&1; then
		case_begin "the same image as a Docker archive written by skopeo"
		rm -f "$B/docker.tar"
		skopeo --tmpdir "$B" copy -q "oci:$L:t" "docker-archive:$B/docker.tar:husk/test:1" \
			>"$B/skopeo.log" 2>&1 || { case_fail "skopeo failed"; diag_file skopeo "$B/skopeo.log"; }
		run_husk build -q "$B/docker.tar" "$B/out/docker.sqfs"
		want_status 0
		run_husk inspect "$B/out/docker.sqfs"
		want_re "docker-archive"
		run_husk run "$B/out/docker.sqfs" -- /bin/sh -c 'echo "$OCI_VAR"; pwd; ls /deleted-later 2>&1 || echo whiteout honoured'
		want_line "from-oci"
		want_line "whiteout honoured"
		case_end
	else
		case_skip "a Docker archive written by skopeo" "skopeo is not installed"
	fi

	case_begin "a layout with two images: refused without a tag, picked with LAYOUT:TAG"
	umoci new --image "$L:other" >>"$B/umoci.log" 2>&1 || case_fail "umoci new failed"
	run_husk build -q "$L" "$B/out/two.sqfs"
	want_status 125
	want_husk_error
	want_re "holds 2 images.*pick one by tag" "$ERR"
	run_husk build -q "$L:nope" "$B/out/two.sqfs"
	want_status 125
	want_re "has no image tagged 'nope'" "$ERR"
	run_husk build -q "$L:t" "$B/out/two.sqfs"
	want_status 0
	run_husk run "$B/out/two.sqfs" -- /bin/sh -c 'echo "$OCI_VAR"'
	want_line "from-oci"
	run_husk build -q "$IMG_DIR:t" "$B/out/x.sqfs"
	want_status 125
	want_re "picks an image by tag" "$ERR"
	case_end
else
	case_skip "an OCI layout made by umoci" "umoci is not installed"
fi

# --- bad input: one line, status 125, nothing left ---------------------------------

bad_recipe() { # NAME RECIPE-TEXT WANT-ERE
	printf '%s\n' "$2" >"$B/ctx/bad"
	case_begin "bad recipe: $1"
	rm -f "$B/out"/*
	RUN_CWD=$B run_husk build -q ctx/bad out/bad.sqfs
	want_status 125
	want_husk_error
	want_re "$3" "$ERR"
	want_outdir ""
	case_end
}
bad_recipe "unknown instruction, named with its line" "FROM scratch
# comment

FROBNICATE now" "line 4: unknown instruction 'FROBNICATE'"
bad_recipe "a Docker instruction husk does not take" "FROM scratch
ADD x /y" "line 2: instruction 'ADD' is not supported.*use COPY"
bad_recipe "an instruction before FROM" "RUN true" "first instruction is not FROM"
bad_recipe "a second FROM" "FROM scratch
FROM scratch" "line 2: a second FROM"
bad_recipe "COPY from outside the context" "FROM scratch
COPY ../../../etc/passwd /x" "line 2 \\(COPY\\).*cannot leave it"
bad_recipe "a missing base image" "FROM ./no-such-image" "base image './no-such-image'"
bad_recipe "a registry reference" "FROM ubuntu:22.04" "does not pull from registries"
bad_recipe "malformed exec form" "FROM scratch
RUN [\"/bin/true\"" "not a JSON array"

case_begin "a failing RUN step: status 125, the step named, no output"
printf 'FROM %s\nRUN echo step ran; exit 3\n' "$IMG_DIR" >"$B/ctx/fail"
rm -f "$B/out"/*
RUN_CWD=$B run_husk build -q ctx/fail out/fail.sqfs
want_status 125
want_line "step ran"
want_re "^husk: recipe 'ctx/fail' line 2 \\(RUN\\): .*exit status 3" "$ERR"
want_outdir ""
case_end

case_begin "an existing output is replaced only by a complete image"
echo precious >"$B/out/keep.sqfs"
RUN_CWD=$B run_husk build -q ctx/fail out/keep.sqfs
want_status 125
want_line "precious" "$B/out/keep.sqfs"
want_outdir "keep.sqfs "
case_end

case_begin "output into a missing directory or onto a directory is refused"
run_husk build -q "$IMG_DIR" "$B/no/such/dir/x.sqfs"
want_status 125
want_husk_error
run_husk build -q "$IMG_DIR" "$B/out"
want_status 125
want_husk_error
case_end

case_begin "SIGKILL during a RUN step leaves no process, output or temp file"
printf 'FROM %s\nRUN sleep 300\n' "$IMG_DIR" >"$B/ctx/slow"
rm -f "$B/out"/*
mine_in_tmp() { find /tmp -maxdepth 1 -mindepth 1 -user "$MY_UID" | sort; }
before_tmp=$(mine_in_tmp)
( cd "$B" && exec "$HUSK" build -q ctx/slow out/slow.sqfs ) >"$OUT" 2>"$ERR" &
pid=$!
for _ in $(seq 100); do
	pgrep -u "$MY_UID" -x sleep >/dev/null && break
	sleep 0.1
done
pgrep -u "$MY_UID" -x sleep >/dev/null || case_fail "the RUN step never started"
kill -9 "$pid"
wait "$pid" 2>/dev/null
for _ in $(seq 50); do
	pgrep -u "$MY_UID" -x sleep >/dev/null || break
	sleep 0.1
done
if pgrep -u "$MY_UID" -x sleep >/dev/null; then
	case_fail "the RUN step's process outlived husk build"
	pkill -9 -u "$MY_UID" -x sleep
fi
want_outdir ""
after_tmp=$(mine_in_tmp)
if [ "$before_tmp" != "$after_tmp" ]; then
	case_fail "/tmp changed: $(diff <(echo "$before_tmp") <(echo "$after_tmp") | tr '\n' ' ')"
fi
case_end

done_testing

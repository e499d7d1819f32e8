#!/bin/bash
# Image metadata (/.husk/metadata.json): `husk run IMAGE` without a command
# runs the image's entrypoint + cmd, a command given replaces both, the
# working directory falls back to the image's workdir, malformed metadata is
# refused, and `husk inspect` shows it all (human and --json).
. "$(dirname "$0")/lib.sh"

export XDG_CACHE_HOME=$STAGE/cache

mk_sqfs() { # DIR IMAGE
	rm -f "$2"
	mksquashfs "$1" "$2" -all-root -noappend -quiet -no-progress >/dev/null
}

# mk_image NAME METADATA: $STAGE/NAME (directory) and $STAGE/NAME.sqfs
mk_image() {
	cp -a "$IMG_DIR" "$STAGE/$1"
	mkdir -p "$STAGE/$1/app"
	printf '%s\n' "$2" >"$STAGE/$1/.husk/metadata.json"
	mk_sqfs "$STAGE/$1" "$STAGE/$1.sqfs"
}

mk_image meta '{
  "husk_metadata": 1,
  "env": ["IMAGE_VAR=from-image"],
  "labels": {"org.example.title": "husk test image", "version": "1"},
  "entrypoint": ["/bin/sh", "-c", "echo \"entry:$0:$1:$IMAGE_VAR\"; /probe cwd"],
  "cmd": ["first arg", "second"],
  "workdir": "/app",
  "build": {"husk_version": "0.1.0", "source_date_epoch": 1700000000,
    "date": "2023-11-14T22:13:20Z", "compression": "gzip",
    "source": {"kind": "directory", "path": "tiny", "sha256": null},
    "inputs": [{"what": "busybox-static", "sha256": null}],
    "tools": {"mksquashfs": "4.5.1"}},
  "not_yet_defined": true
}'
mk_image cmdonly '{"husk_metadata": 1, "cmd": ["echo", "cmd-only ran"]}'
mk_image badtype '{"husk_metadata": 1, "cmd": "echo not a list"}'
mk_image toonew '{"husk_metadata": 2, "cmd": ["echo", "from the future"]}'
mk_image notjson '{"husk_metadata": 1, "cmd": ["echo",]}'

# A host directory that the image lacks and husk does not bind (a system
# directory): the caller's cwd cannot be kept there.
NOT_INSIDE=/usr/share
[ -d "$NOT_INSIDE" ] || NOT_INSIDE=/usr/lib

for kind in dir sqfs; do
	case $kind in
	dir) A=$STAGE/meta B=$STAGE/cmdonly ;;
	sqfs) A=$STAGE/meta.sqfs B=$STAGE/cmdonly.sqfs ;;
	esac

	case_begin "no command: the image's entrypoint + cmd run [$kind]"
	RUN_CWD=$STAGE run_husk run "$A"
	want_status 0
	want_line "entry:first arg:second:from-image"
	want_line "cwd=$STAGE"   # the caller's cwd, visible inside, comes first
	case_end

	case_begin "'--' and nothing after also runs entrypoint + cmd [$kind]"
	run_husk run "$A" --
	want_status 0
	want_line "entry:first arg:second:from-image"
	case_end

	case_begin "a command given replaces entrypoint and cmd [$kind]"
	run_husk run "$A" -- echo direct
	want_status 0
	want_line "direct"
	want_no_re "entry:"
	case_end

	case_begin "an image with cmd only runs it [$kind]"
	run_husk run "$B"
	want_status 0
	want_line "cmd-only ran"
	case_end

	case_begin "the image's workdir when the caller's cwd is not inside [$kind]"
	RUN_CWD=$NOT_INSIDE run_husk run "$A" -- /probe cwd
	want_status 0
	want_line "cwd=/app"
	want_re "working directory '$NOT_INSIDE' is not available.*starting in '/app', the image's workdir" "$ERR"
	case_end

	case_begin "without a workdir the fallback is HOME, as before [$kind]"
	RUN_CWD=$NOT_INSIDE run_husk run "$B" -- /probe cwd
	want_status 0
	want_line "cwd=$HOME"
	case_end

	case_begin "--cwd wins over the image's workdir [$kind]"
	RUN_CWD=$NOT_INSIDE run_husk run --cwd /bin "$A" -- /probe cwd
	want_status 0
	want_line "cwd=/bin"
	case_end

	case_begin "--dry-run shows entrypoint + cmd and the workdir [$kind]"
	run_husk run --dry-run "$A"
	want_status 0
	want_re "^command: /bin/sh -c .* first arg second  \(the image's entrypoint \+ cmd\)$"
	want_re "the image's workdir /app"
	case_end

	case_begin "-v says the image's entrypoint + cmd run [$kind]"
	run_husk run -v "$A"
	want_status 0
	want_re "running the image's entrypoint \+ cmd" "$ERR"
	case_end

	case_begin "a metadata field of the wrong type is refused, naming it (125) [$kind]"
	run_husk run "$STAGE/badtype${A#$STAGE/meta}" -- echo should-not-run
	want_status 125
	want_husk_error
	want_re "'/\.husk/metadata\.json': field 'cmd': expected an array of strings, got a string" "$ERR"
	want_no_line "should-not-run"
	case_end

	case_begin "a metadata format too new is refused (125) [$kind]"
	run_husk run "$STAGE/toonew${A#$STAGE/meta}"
	want_status 125
	want_husk_error
	want_re "format version 2, and this husk .* reads version 1 only" "$ERR"
	case_end

	case_begin "metadata that is not JSON is refused (125) [$kind]"
	run_husk run "$STAGE/notjson${A#$STAGE/meta}" -- true
	want_status 125
	want_husk_error
	want_re "is not valid JSON" "$ERR"
	case_end
done

case_begin "no command and no entrypoint or cmd stays a usage error (125)"
run_husk run "$IMG_SQFS"
want_status 125
want_husk_error
want_re "no command given after the image.*see 'husk help run'" "$ERR"
case_end

# --- husk inspect -------------------------------------------------------------

D=$(sha256sum "$STAGE/meta.sqfs" | cut -d' ' -f1)
SIZE=$(stat -c %s "$STAGE/meta.sqfs")

case_begin "inspect: path, kind, size, digest and metadata of an image file"
run_husk inspect "$STAGE/meta.sqfs"
want_status 0
want_line "path:     $(realpath "$STAGE/meta.sqfs")"
want_line "kind:     SquashFS image file"
want_re "^size:     $SIZE bytes"
want_line "digest:   sha256:$D"
want_line "metadata: /.husk/metadata.json"
want_line '  entrypoint: ["/bin/sh", "-c", "echo \"entry:$0:$1:$IMAGE_VAR\"; /probe cwd"]'
want_line '  cmd:        ["first arg", "second"]'
want_line "  workdir:    /app"
want_line "    IMAGE_VAR=from-image"
want_line "    org.example.title=husk test image"
want_line "    husk_version: 0.1.0"
want_line "      - what: busybox-static, sha256: none"
case_end

case_begin "inspect: a directory has no size or digest"
run_husk inspect "$STAGE/meta"
want_status 0
want_line "kind:     directory"
want_re "^digest: +none"
want_line "  workdir:    /app"
case_end

case_begin "inspect: an image without metadata says so"
# (the tiny image itself is made by husk build, which writes metadata)
cp -a "$IMG_DIR" "$STAGE/plain"
rm -f "$STAGE/plain/.husk/metadata.json"
mk_sqfs "$STAGE/plain" "$STAGE/plain.sqfs"
run_husk inspect "$STAGE/plain.sqfs"
want_status 0
want_line "metadata: none (the image has no /.husk/metadata.json)"
case_end

case_begin "inspect: malformed metadata is refused (125)"
run_husk inspect "$STAGE/badtype.sqfs"
want_status 125
want_husk_error
case_end

case_begin "inspect: a missing image is refused (125)"
run_husk inspect "$STAGE/no-such.sqfs"
want_status 125
want_husk_error
case_end

if ! command -v jq >/dev/null; then
	case_skip "inspect --json" "jq is not installed (tests/deps.sh installs it)"
	done_testing
fi

json_is() { # DESCRIPTION JQ-EXPRESSION: true of the last stdout
	if ! jq -e "$2" "$OUT" >/dev/null; then
		case_fail "$1: $2 is not true"
	fi
}

case_begin "inspect --json: one JSON object for an image file"
run_husk inspect --json "$STAGE/meta.sqfs"
want_status 0
want_true "stdout is not exactly one JSON value" test "$(jq -s length "$OUT")" = 1
json_is "path" ".path == \"$(realpath "$STAGE/meta.sqfs")\""
json_is "kind" '.kind == "squashfs"'
json_is "size" ".size == $SIZE"
json_is "digest" ".digest == \"sha256:$D\""
json_is "metadata" '.metadata.workdir == "/app" and .metadata.cmd == ["first arg", "second"]
	and .metadata.entrypoint[0] == "/bin/sh" and .metadata.labels.version == "1"
	and .metadata.build.source_date_epoch == 1700000000 and .metadata.not_yet_defined == true'
case_end

case_begin "inspect --json: a directory without metadata"
run_husk inspect --json "$STAGE/plain"
want_status 0
json_is "nulls" '.kind == "directory" and .size == null and .digest == null and .metadata == null'
case_end

case_begin "no leftovers after the metadata runs"
check_leftovers
case_end

done_testing

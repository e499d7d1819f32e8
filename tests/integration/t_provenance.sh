#!/bin/bash
# Provenance records: `husk run --provenance FILE` (or HUSK_PROVENANCE)
# appends one JSON line per launch, before the command starts; concurrent
# launches never interleave; a file that cannot be written stops the launch
# before anything runs.
. "$(dirname "$0")/lib.sh"

export XDG_CACHE_HOME=$STAGE/cache

if ! command -v jq >/dev/null; then
	case_skip "provenance records" "jq is not installed (tests/deps.sh installs it)"
	done_testing
fi

P=$STAGE/prov.jsonl
MARK=$STAGE/ran
D=$(sha256sum "$IMG_SQFS" | cut -d' ' -f1)
VERSION=$("$HUSK" --version | cut -d' ' -f2)

# jq_is DESCRIPTION EXPR [FILE]: EXPR is true of the last line of FILE.
jq_is() {
	if ! tail -n 1 "${3:-$P}" | jq -e "$2" >/dev/null; then
		case_fail "$1: $2 is not true of the record"
		diag "record: $(tail -n 1 "${3:-$P}" | head -c 2000)"
	fi
}

lines() { wc -l <"$1" | tr -d ' '; }
json_objects_only() { jq -e 'type == "object"' "$1" >/dev/null; }

mkdir -p "$STAGE/data"

case_begin "one record per launch, created mode 0600"
rm -f "$P"
RUN_CWD=$STAGE run_husk run --provenance "$P" -b "$STAGE/data:/data:ro" -e PROV_SET=1 \
	"$IMG_SQFS" -- /probe ids
want_status 0
want_line "uid=$MY_UID"
want_true "want 1 line, the file has $(lines "$P" 2>/dev/null)" test "$(lines "$P")" = 1
want_true "mode $(stat -c %a "$P"), want 600" test "$(stat -c %a "$P")" = 600
want_true "the line is not one JSON object" json_objects_only "$P"
case_end

case_begin "the record's fields"
jq_is "run_id" '.run_id | test("^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")'
jq_is "time" '.time | test("^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\\.[0-9]{3}Z$")'
jq_is "host" ".host == \"$(hostname)\""
jq_is "user" ".user == \"$MY_USER\" and .uid == $MY_UID"
jq_is "image" ".image == \"$(realpath "$IMG_SQFS")\" and .image_kind == \"squashfs\""
jq_is "digest" ".digest == \"sha256:$D\""
jq_is "husk_version" ".husk_version == \"$VERSION\""
jq_is "command" '.command == ["/probe", "ids"]'
jq_is "cwd" ".cwd == \"$STAGE\""
jq_is "user bind" ".binds | any(.src == \"$STAGE/data\" and .dst == \"/data\" and .ro == true)"
jq_is "default bind" '.binds | any(.src == "/proc" and .dst == "/proc" and .ro == false)'
jq_is "env set" '.env_changes.set.PROV_SET == "1" and .env_changes.set.HUSK_CONTAINER == "1"'
jq_is "env unchanged" '.env_changes.set | has("LANG") | not'
jq_is "pinned" '.pinned == false'
case_end

case_begin "the time is now (UTC)"
t=$(tail -n 1 "$P" | jq -r .time)
now=$(date -u +%s)
rec=$(date -u -d "$t" +%s 2>/dev/null || echo 0)
want_true "record time $t is not within a minute of now" test $((now - rec)) -ge 0 -a $((now - rec)) -lt 60
case_end

case_begin "the digest matches sha256sum of the image"
want_true "digest differs" test "$(tail -n 1 "$P" | jq -r .digest)" = "sha256:$(sha256sum "$IMG_SQFS" | cut -d' ' -f1)"
case_end

case_begin "the record exists when the command starts"
rm -f "$P"
run_husk run --provenance "$P" "$IMG_SQFS" -- sh -c "wc -l < '$P'"
want_status 0
want_line "1"
case_end

case_begin "a second launch appends a second line"
run_husk run --provenance "$P" "$IMG_SQFS" -- true
want_status 0
want_true "want 2 lines" test "$(lines "$P")" = 2
want_true "the run ids are not distinct" test "$(jq -r .run_id "$P" | sort -u | wc -l)" = 2
case_end

case_begin "a pinned run says so"
run_husk run --provenance "$P" "$IMG_SQFS@sha256:$D" -- true
want_status 0
jq_is "pinned" ".pinned == true and .digest == \"sha256:$D\""
case_end

case_begin "a directory image has a null digest"
run_husk run --provenance "$P" "$IMG_DIR" -- true
want_status 0
jq_is "directory" ".digest == null and .image_kind == \"directory\" and .image == \"$(realpath "$IMG_DIR")\""
case_end

case_begin "--clean-env: host variables not passed are listed as unset"
PROV_HOST_ONLY=x run_husk run --clean-env --provenance "$P" "$IMG_SQFS" -- true
want_status 0
jq_is "unset" '.env_changes.unset | index("PROV_HOST_ONLY") != null'
jq_is "kept" '.env_changes.unset | index("HOME") == null'
case_end

case_begin "the session: null without one; its key and who started it with --join"
run_husk run --provenance "$P" "$IMG_SQFS" -- true
want_status 0
jq_is "no session" '.session == null'
run_husk run --dry-run --join=prov-$$ "$IMG_SQFS" -- true
key=$(sed -n 's/^session: would join session \([0-9a-f]*\).*/\1/p' "$OUT")
run_husk run --provenance "$P" --join=prov-$$ "$IMG_SQFS" -- true
want_status 0
jq_is "session" ".session.key == \"$key\" and .session.started == true"
case_end

case_begin "HUSK_PROVENANCE names the file"
rm -f "$STAGE/env.jsonl"
HUSK_PROVENANCE=$STAGE/env.jsonl run_husk run "$IMG_SQFS" -- true
want_status 0
want_true "no record in HUSK_PROVENANCE's file" test "$(lines "$STAGE/env.jsonl")" = 1
case_end

case_begin "--provenance wins over HUSK_PROVENANCE"
rm -f "$STAGE/env.jsonl" "$STAGE/opt.jsonl"
HUSK_PROVENANCE=$STAGE/env.jsonl run_husk run --provenance "$STAGE/opt.jsonl" "$IMG_SQFS" -- true
want_status 0
want_true "no record in the --provenance file" test "$(lines "$STAGE/opt.jsonl")" = 1
want_true "HUSK_PROVENANCE's file was written" test ! -e "$STAGE/env.jsonl"
case_end

# Large records (a 60 kB variable), written by 20 launches at once: a record
# written in pieces would interleave with the others.
case_begin "20 concurrent launches give 20 intact lines"
rm -f "$STAGE/many.jsonl"
big=$(head -c 60000 /dev/zero | tr '\0' 'x')
pids=
for i in $(seq 1 20); do
	"$HUSK" run --provenance "$STAGE/many.jsonl" -e "BIG=$big" -e "N=$i" "$IMG_SQFS" -- true \
		</dev/null >/dev/null 2>"$STAGE/many.$i.err" &
	pids="$pids $!"
done
failed=0
for p in $pids; do
	wait "$p" || failed=$((failed + 1))
done
want_true "$failed launch(es) failed" test "$failed" = 0
want_true "want 20 lines, got $(lines "$STAGE/many.jsonl")" test "$(lines "$STAGE/many.jsonl")" = 20
n=$(jq -c . "$STAGE/many.jsonl" 2>/dev/null | wc -l)
want_true "only $n lines are valid JSON" test "$n" = 20
want_true "records damaged" test "$(jq -r '.env_changes.set.BIG | length' "$STAGE/many.jsonl" | sort -u)" = 60000
want_true "a launch is missing" test "$(jq -r '.env_changes.set.N' "$STAGE/many.jsonl" | sort -n | tr '\n' ' ')" = "$(seq 1 20 | tr '\n' ' ')"
want_true "run ids repeat" test "$(jq -r .run_id "$STAGE/many.jsonl" | sort -u | wc -l)" = 20
case_end

case_begin "an unwritable provenance file stops the launch before anything runs (125)"
mkdir -p "$STAGE/ro"
chmod 0555 "$STAGE/ro"
rm -f "$MARK"
run_husk run --provenance "$STAGE/ro/p.jsonl" "$IMG_SQFS" -- /probe write "$MARK"
want_status 125
want_husk_error
want_re "provenance file '$STAGE/ro/p.jsonl'.*Permission denied" "$ERR"
want_true "the command ran" test ! -e "$MARK"
case_end

case_begin "a read-only existing provenance file is refused (125)"
printf '' >"$STAGE/readonly.jsonl"
chmod 0444 "$STAGE/readonly.jsonl"
rm -f "$MARK"
HUSK_PROVENANCE=$STAGE/readonly.jsonl run_husk run "$IMG_DIR" -- /probe write "$MARK"
want_status 125
want_husk_error
want_true "the command ran" test ! -e "$MARK"
case_end

case_begin "a launch that fails in setup writes no record"
rm -f "$P"
run_husk run --provenance "$P" -b "$STAGE/no-such-dir:/x" "$IMG_SQFS" -- true
want_status 125
want_true "a record was written" test ! -s "$P"
# This one fails in the container, after the file was opened.
run_husk run --provenance "$P" --cwd /no/such/dir "$IMG_SQFS" -- true
want_status 125
want_true "the file was not opened before the launch" test -e "$P"
want_true "a record was written" test ! -s "$P"
case_end

case_begin "--dry-run writes no record"
rm -f "$P"
run_husk run --dry-run --provenance "$P" "$IMG_SQFS" -- true
want_status 0
want_re "^provenance: "
want_true "the file was created" test ! -e "$P"
case_end

case_begin "--provenance without a value is a usage error naming it (125)"
run_husk run --provenance
want_status 125
want_husk_error
want_re "^husk: option '--provenance' needs a value" "$ERR"
case_end

case_begin "no leftovers after the provenance runs"
check_leftovers
case_end

done_testing

#!/usr/bin/python3
"""husk benchmark engine: times launches and prints a table of medians.

Called by tests/bench/run with resolved paths; runs as the unprivileged user.
It measures and prints; it never judges timings by its exit status.

Each launch is timed from just before posix_spawn() to just after waitpid()
with time.perf_counter(), stdout and stderr to /dev/null.  Variants of one case
are interleaved (round robin) so slow drift of the machine hits all alike;
each variant gets warm-up launches first, whose failure marks it `error`.
"""

import argparse
import os
import signal
import statistics
import sys
import threading
import time

TIMEOUT_S = 120.0
DEVNULL = os.open(os.devnull, os.O_RDWR)


def spawn(argv, env, errfd=None):
    fa = [(os.POSIX_SPAWN_DUP2, DEVNULL, 0), (os.POSIX_SPAWN_DUP2, DEVNULL, 1),
          (os.POSIX_SPAWN_DUP2, errfd if errfd is not None else DEVNULL, 2)]
    return os.posix_spawn(argv[0], argv, env, file_actions=fa)


def wait_all(pids):
    """Wait for pids with a watchdog; returns list of (pid, status)."""
    done = []
    timer = threading.Timer(TIMEOUT_S, lambda: [os.kill(p, signal.SIGKILL)
                                                for p in pids if p not in dict(done)])
    timer.start()
    try:
        for p in pids:
            _, st = os.waitpid(p, 0)
            done.append((p, st))
    finally:
        timer.cancel()
    return done


def ok(status):
    return os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0


def describe(status):
    if os.WIFEXITED(status):
        return "exit %d" % os.WEXITSTATUS(status)
    if os.WIFSIGNALED(status):
        return "signal %d" % os.WTERMSIG(status)
    return "status %d" % status


def one(argv, env):
    t0 = time.perf_counter()
    pid = spawn(argv, env)
    (_, st), = wait_all([pid])
    return time.perf_counter() - t0, st


def many(argv, env, count):
    t0 = time.perf_counter()
    pids = [spawn(argv, env) for _ in range(count)]
    res = wait_all(pids)
    t = time.perf_counter() - t0
    bad = [st for _, st in res if not ok(st)]
    return t, (bad[0] if bad else 0)


def probe_error(argv, env, count):
    """One checked launch (or one concurrent batch); returns None or a reason."""
    r, w = os.pipe()
    try:
        if count == 1:
            pids = [spawn(argv, env, errfd=w)]
        else:
            pids = [spawn(argv, env, errfd=w) for _ in range(count)]
        os.close(w)
        w = -1
        err = b""
        while True:
            chunk = os.read(r, 65536)
            if not chunk:
                break
            if len(err) < 4096:
                err += chunk
        res = wait_all(pids)
    except OSError as e:
        return str(e)
    finally:
        if w >= 0:
            os.close(w)
        os.close(r)
    bad = [st for _, st in res if not ok(st)]
    if not bad:
        return None
    lines = [l for l in err.decode(errors="replace").splitlines() if l.strip()]
    msg = describe(bad[0])
    if lines:
        msg += ": " + lines[0].strip()[:90]
    if len(bad) < len(res):
        msg += " (%d/%d failed)" % (len(bad), len(res))
    return msg


def pct(xs, p):
    xs = sorted(xs)
    if len(xs) == 1:
        return xs[0]
    k = (len(xs) - 1) * p
    f = int(k)
    c = min(f + 1, len(xs) - 1)
    return xs[f] + (xs[c] - xs[f]) * (k - f)


def run_case(case, variants, env, n, warmup, concurrent):
    """variants: list of (name, argv or None, reason-if-None). Returns results."""
    res = {}
    live = []
    for name, argv, why in variants:
        if argv is None:
            res[name] = {"error": why}
            continue
        err = None
        for _ in range(warmup):
            err = probe_error(argv, env, concurrent)
            if err:
                break
        if err:
            res[name] = {"error": err}
        else:
            res[name] = {"times": [], "failed": 0}
            live.append((name, argv))
    for i in range(n):
        for name, argv in live:
            if concurrent > 1:
                t, st = many(argv, env, concurrent)
            else:
                t, st = one(argv, env)
            if ok(st):
                res[name]["times"].append(t * 1000.0)
            else:
                res[name]["failed"] += 1
                res[name]["last_failure"] = describe(st)
    for name, _ in live:
        r = res[name]
        if not r["times"]:
            res[name] = {"error": "all %d runs failed (%s)" % (n, r.get("last_failure"))}
            continue
        r["median"] = statistics.median(r["times"])
        r["p90"] = pct(r["times"], 0.9)
    sys.stderr.write("bench: %s done\n" % case)
    return res


def fmt_ms(x):
    if x >= 100:
        return "%.0f" % x
    if x >= 10:
        return "%.1f" % x
    return "%.2f" % x


def fmt_ratio(a, b):
    if a is None or b is None or b <= 0:
        return "-"
    return "%.2fx" % (a / b)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--husk")
    ap.add_argument("--husk-missing", default="")
    ap.add_argument("--chrun")
    ap.add_argument("--tiny-dir", required=True)
    ap.add_argument("--tiny-sqfs", required=True)
    ap.add_argument("--debian-dir", required=True)
    ap.add_argument("--debian-sqfs", required=True)
    ap.add_argument("--debian-warm", default="",
                    help="the Debian image with a WARM profile of import numpy")
    ap.add_argument("--host-true", default="/bin/true")
    ap.add_argument("--host-python", default="/usr/bin/python3")
    ap.add_argument("--host-sh", default="/bin/sh")
    ap.add_argument("--scale", type=float, default=1.0,
                    help="multiply run counts (e.g. 0.2 for a quick look)")
    ap.add_argument("--only", default="", help="comma list of cases 1-4")
    a = ap.parse_args()

    env = {k: os.environ[k] for k in ("PATH", "HOME", "USER", "LOGNAME", "LANG", "TMPDIR")
           if k in os.environ}

    def N(x):
        return max(3, int(round(x * a.scale)))

    def husk(img, cmd):
        if not a.husk:
            return None, a.husk_missing or "husk not given"
        return [a.husk, "run", img, "--"] + cmd, None

    def chrun(img, cmd):
        if not a.chrun:
            return None, "ch-run not found"
        return [a.chrun, img, "--"] + cmd, None

    def V(name, pair_or_argv):
        if isinstance(pair_or_argv, tuple):
            argv, why = pair_or_argv
            return (name, argv, why)
        return (name, pair_or_argv, None)

    blob_cmd = ["/bin/sh", "-c", "cat /data/blob.bin > /dev/null"]
    host_blob = [a.host_sh, "-c", "cat '%s/data/blob.bin' > /dev/null" % a.debian_dir]
    numpy_cmd = ["python3", "-c", "import numpy"]

    cases = [
        ("1", "startup: /bin/true (tiny image)", N(50), 3, 1, [
            V("native", [a.host_true]),
            V("ch-run dir", chrun(a.tiny_dir, ["/bin/true"])),
            V("ch-run sqfs", chrun(a.tiny_sqfs, ["/bin/true"])),
            V("husk dir", husk(a.tiny_dir, ["/bin/true"])),
            V("husk sqfs", husk(a.tiny_sqfs, ["/bin/true"])),
        ]),
        ("2", "python3 -c 'import numpy' (debian image)", N(15), 2, 1, [
            V("native", [a.host_python, "-c", "import numpy"]),
            V("ch-run dir", chrun(a.debian_dir, numpy_cmd)),
            V("ch-run sqfs", chrun(a.debian_sqfs, numpy_cmd)),
            V("husk dir", husk(a.debian_dir, numpy_cmd)),
            V("husk sqfs", husk(a.debian_sqfs, numpy_cmd)),
        ] + ([V("husk sqfs+warm", husk(a.debian_warm, numpy_cmd))] if a.debian_warm else [])),
        ("3", "cat /data/blob.bin (40 MiB) > /dev/null (debian image)", N(15), 2, 1, [
            V("native", host_blob),
            V("ch-run dir", chrun(a.debian_dir, blob_cmd)),
            V("ch-run sqfs", chrun(a.debian_sqfs, blob_cmd)),
            V("husk dir", husk(a.debian_dir, blob_cmd)),
            V("husk sqfs", husk(a.debian_sqfs, blob_cmd)),
        ]),
        ("4", "32 concurrent /bin/true, total wall (tiny sqfs)", N(5), 1, 32, [
            V("native", [a.host_true]),
            V("ch-run sqfs", chrun(a.tiny_sqfs, ["/bin/true"])),
            V("husk sqfs", husk(a.tiny_sqfs, ["/bin/true"])),
        ]),
    ]
    only = set(a.only.split(",")) if a.only else None

    results = []
    for cid, title, n, warm, conc, variants in cases:
        if only and cid not in only:
            continue
        results.append((cid, title, n, run_case(title, variants, env, n, warm, conc),
                        [v[0] for v in variants]))

    # ---- table ------------------------------------------------------------
    print()
    hdr = "%-15s %10s %10s %10s %11s   %s" % ("variant", "median ms", "p90 ms",
                                             "vs native", "vs ch-run", "note")
    for cid, title, n, res, order in results:
        print("%s. %s   [N=%d]" % (cid, title, n))
        print(hdr)
        print("-" * len(hdr))
        base = res.get("native", {}).get("median")
        for name in order:
            r = res[name]
            if "error" in r:
                print("%-15s %10s %10s %10s %11s   %s" % (name, "error", "-", "-", "-",
                                                         r["error"]))
                continue
            peer = None
            if name.startswith("husk"):
                # The warm variant's image differs only by /.husk/warm, which
                # ch-run ignores: its peer is ch-run on the plain image.
                peer = res.get(name.replace("husk", "ch-run").replace("+warm", ""),
                               {}).get("median")
            note = "%d/%d runs failed" % (r["failed"], n) if r["failed"] else ""
            print("%-15s %10s %10s %10s %11s   %s" % (
                name, fmt_ms(r["median"]), fmt_ms(r["p90"]),
                fmt_ratio(r["median"], base) if name != "native" else "1.00x",
                fmt_ratio(r["median"], peer) if name.startswith("husk") else "",
                note))
        print()

    # ---- targets (reported, never asserted) -----------------------------------
    def med(cid, name):
        for c, _, _, res, _ in results:
            if c == cid:
                return res.get(name, {}).get("median")
        return None

    print("Targets (informational; this benchmark asserts nothing):")
    h, c = med("1", "husk sqfs"), med("1", "ch-run sqfs")
    if h is not None and c is not None:
        print("  husk SquashFS startup <= 0.5 x ch-run SquashFS: %s / %s ms = %.2f -> %s"
              % (fmt_ms(h), fmt_ms(c), h / c, "met" if h <= 0.5 * c else "NOT met"))
    else:
        print("  husk SquashFS startup <= 0.5 x ch-run SquashFS: not measured")
    h, nat = med("2", "husk sqfs"), med("2", "native")
    if h is not None and nat is not None:
        print("  import numpy from SquashFS <= 1.5 x native:     %s / %s ms = %.2f -> %s"
              % (fmt_ms(h), fmt_ms(nat), h / nat, "met" if h <= 1.5 * nat else "NOT met"))
    else:
        print("  import numpy from SquashFS <= 1.5 x native:     not measured")
    h = med("2", "husk sqfs+warm")
    if h is not None and nat is not None:
        print("  ... the same image with a WARM profile:          %s / %s ms = %.2f -> %s"
              % (fmt_ms(h), fmt_ms(nat), h / nat, "met" if h <= 1.5 * nat else "NOT met"))
    print()
    print("ratios: 'vs native' = median / native median; 'vs ch-run' = husk median /"
          " ch-run median of the same image kind (dir vs dir, sqfs vs sqfs).")
    return 0


if __name__ == "__main__":
    sys.exit(main())

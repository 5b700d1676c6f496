#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""Analysis and report of "make bench" (called by bench-guest.sh).

  bench-report.py --report RESULTS_DIR

writes RESULTS_DIR/report.md, ratios.png, timeline.png, plots/*.dat and
recovery/busy-stall.tsv, and prints the summary lines. It reads only files
of RESULTS_DIR, so it can be run again on the host. Standard library only
(the guest runs the host's /usr/bin/python3); plots with gnuplot.
"""

import glob
import gzip
import json
import math
import os
import re
import statistics
import subprocess
import sys
from bisect import bisect_left, bisect_right

HERE = os.path.dirname(os.path.abspath(__file__))
CONTENDERS = ["nullblk", "ublk-null", "loop", "ublk-loop"]
LABEL = {"nullblk": "null_blk", "ublk-null": "ublk null",
         "loop": "loop", "ublk-loop": "ublk loop"}
PAIRS = [("ublk-null", "nullblk"), ("ublk-loop", "loop")]
# (ublk contender, depth) -> (target, upstream 6.1 reference in this kind of VM)
RATIO_TARGETS = {
    ("ublk-null", "qd32"): (0.40, "≈ 0.31"),
    ("ublk-null", "qd128b"): (0.85, "≈ 0.78"),
    ("ublk-loop", "qd32"): (0.75, "0.44–0.67"),
    ("ublk-loop", "qd128b"): (1.2, "1.1–1.46"),
}
# part ref: our module against Linux 6.1's, each with both servers
REF_MODULES = ["ours", "ref"]
REF_MOD_LABEL = {"ours": "ours", "ref": "6.1's"}
REF_SERVERS = ["kublk", "ublksrv"]
REF_SAME_TARGET = 1.10		# same server, ours / 6.1's, qd32 and qd128b
REF_CROSS_TARGET = 1.2		# kublk on ours / ublksrv on 6.1's, the same rows
CLK_TCK = os.sysconf("SC_CLK_TCK")
NAN = float("nan")


def workloads_order():
    out = []
    for q in (1, 2):
        for d in ("qd1", "qd32", "qd128b"):
            for rw in ("randread", "randwrite"):
                out.append(f"4k-{rw}-{d}-{q}q")
    return out + ["128k-read-qd32-1q", "128k-write-qd32-1q"]


def wl_depth(wl):
    return wl.split("-")[2]


# ------------------------------------------------------------------ fio

def load_json(path):
    try:
        with open(path) as f:
            text = f.read()
    except OSError:
        return None
    i = text.find("{")		# fio may print notes before the JSON
    try:
        return json.loads(text[i:]) if i >= 0 else None
    except ValueError:
        return None


def job_metrics(j):
    side = j["read"] if j["read"]["io_bytes"] >= j["write"]["io_bytes"] else j["write"]
    lat = side.get("lat_ns", {})
    pct = lat.get("percentile") or side.get("clat_ns", {}).get("percentile") or {}
    p99 = pct.get("99.000000")
    return {
        "iops": side["iops"],
        "bw": side["bw_bytes"],
        "lat_mean": lat.get("mean", 0) / 1000.0,
        "lat_p99": p99 / 1000.0 if p99 is not None else NAN,
        "lat_max": lat.get("max", 0) / 1000.0,
        "errors": j.get("total_err", j.get("error", 0)),
    }


def fio_metrics(path):
    d = load_json(path)
    if not d or not d.get("jobs"):
        return None
    return job_metrics(d["jobs"][0])


class CpuLog:
    """The 10 Hz samples of bench-cpustat: /proc/stat and server CPU."""

    def __init__(self, path, servers):
        self.t, self.rows, self.col = [], [], {}
        key_of = {}
        try:
            with open(servers) as f:
                for line in f:
                    p = line.split()
                    if len(p) == 2:
                        key_of[p[1]] = p[0]
            with open(path) as f:
                for line in f:
                    if line.startswith("# pids:"):
                        for i, pid in enumerate(line.split()[2:]):
                            if pid in key_of:
                                self.col[key_of[pid]] = 9 + i
                        continue
                    p = line.split()
                    self.t.append(float(p[0]))
                    self.rows.append([int(x) for x in p[1:]])
        except (OSError, ValueError):
            pass

    def window(self, t0, t1, key, iops):
        """CPU figures between the samples nearest to t0 and t1."""
        if len(self.t) < 2 or iops <= 0:
            return {}
        a = min(bisect_left(self.t, t0), len(self.t) - 1)
        b = min(bisect_right(self.t, t1) - 1, len(self.t) - 1)
        if b <= a:
            return {}
        d = [y - x for x, y in zip(self.rows[a], self.rows[b])]
        ios = iops * (self.t[b] - self.t[a])
        busy = d[0] + d[1] + d[2] + d[5] + d[6] + d[7]
        total = busy + d[3] + d[4]
        out = {"cpu_us": busy / CLK_TCK / ios * 1e6, "ctx": d[8] / ios,
               "util": busy / total if total else NAN}
        col = self.col.get(key)
        if col is not None and col < len(d) and self.rows[a][col] >= 0 \
                and self.rows[b][col] >= 0:
            out["srv_us"] = d[col] / CLK_TCK / ios * 1e6
        return out


def log_end(pattern):
    """Last timestamp (s) of fio IOPS logs written with log_unix_epoch."""
    end = None
    for path in glob.glob(pattern):
        try:
            with open(path) as f:
                for line in f:
                    v = float(line.split(",")[0]) / 1000.0
                    end = v if end is None or v > end else end
        except (OSError, ValueError, IndexError):
            pass
    return end


def si(x):
    for unit, div in (("M", 1e6), ("k", 1e3)):
        if abs(x) >= div:
            return f"{x / div:.3g}{unit}"
    return f"{x:.3g}"


# ------------------------------------------------------------------ stats

def mmm(vals):
    vals = [v for v in vals if v is not None and not math.isnan(v)]
    if not vals:
        return None
    return min(vals), statistics.median(vals), max(vals)


def fmt_mmm(t, fmt="{:.2f}", unit=""):
    if not t:
        return "–"
    lo, med, hi = t
    if fmt.format(lo) == fmt.format(hi):
        return fmt.format(med) + unit
    return f"{fmt.format(med)}{unit} ({fmt.format(lo)}–{fmt.format(hi)})"


# ------------------------------------------------------------------ recovery

def read_lat_log(path):
    """fio per-I/O latency log (log_unix_epoch): completion times (s),
    sorted, and the latency (ms) of each I/O."""
    rows = []
    try:
        with (gzip.open(path, "rt") if path.endswith(".gz") else open(path)) as f:
            for line in f:
                p = line.split(",")
                if len(p) >= 2:
                    rows.append((int(p[0]) / 1000.0, int(p[1]) / 1e6))
    except (OSError, ValueError, EOFError):
        pass
    rows.sort()
    return [r[0] for r in rows], [r[1] for r in rows]


def read_cycles(path):
    rows = []
    try:
        with open(path) as f:
            for line in f:
                p = line.split()
                if len(p) >= 6:
                    rows.append({"cycle": int(p[0]), "kill": float(p[1]),
                                 "quiesced": float(p[2]), "live": float(p[3]),
                                 "start_live": float(p[4]), "waitstate": float(p[5]),
                                 "returned": float(p[6]) if len(p) > 6 else float(p[3])})
    except (OSError, ValueError):
        pass
    return rows


def stalls(cycles, ev, lat):
    """Per cycle: the longest gap between two I/O completions (fio's clock,
    1 ms resolution) from 0.3 s before the kill to 1 s after LIVE, the
    first completion after LIVE, the longest latency of an I/O completed
    in that window."""
    out = []
    for k, c in enumerate(cycles):
        lo, hi = c["kill"] - 0.3, c["live"] + 1.0
        if k + 1 < len(cycles):
            hi = min(hi, cycles[k + 1]["kill"] - 0.01)
        a, b = bisect_left(ev, lo), bisect_right(ev, hi)
        win = ev[max(a - 1, 0):b]
        gap, x0, x1 = NAN, None, None
        for x, y in zip(win, win[1:]):
            if math.isnan(gap) or y - x > gap:
                gap, x0, x1 = y - x, x, y
        after = [e for e in ev[a:b] if e > c["live"]]
        if not after:		# nothing completed after LIVE: a lower bound
            gap, x0, x1 = ((hi - win[-1]) if win else NAN), (win[-1] if win else None), None
        out.append({"cycle": c["cycle"], "stall": gap * 1e3,
                    "from": (x0 - c["kill"]) * 1e3 if x0 else NAN,
                    "to": (x1 - c["kill"]) * 1e3 if x1 else NAN,
                    "first_after_live": (after[0] - c["live"]) * 1e3 if after else NAN,
                    "maxlat": max(lat[a:b], default=NAN), "open": not after})
    return out


def rec_stats(rows):
    return {
        "kq": mmm([(r["quiesced"] - r["kill"]) * 1e3 for r in rows]),
        "sl": mmm([r["start_live"] for r in rows]),
        "qs": mmm([(r["live"] - r["quiesced"]) * 1e3 - r["start_live"] for r in rows]),
        "kl": mmm([(r["live"] - r["kill"]) * 1e3 for r in rows]),
    }


# ------------------------------------------------------------------ report

def gnuplot(script, png, **params):
    args = ["gnuplot", "-e", "; ".join(
        f"{k}='{v}'" if isinstance(v, str) else f"{k}={v}" for k, v in params.items())]
    try:
        r = subprocess.run(args + [os.path.join(HERE, script)], capture_output=True, text=True)
    except OSError as e:
        return f"gnuplot: {e}"
    if r.returncode or not os.path.exists(png):
        return f"gnuplot {script}: {r.stderr.strip()[-400:]}"
    return None


def count(v):
    """a count read as a float, or – where it was not measured (nan)"""
    return "–" if math.isnan(v) else f"{v:.0f}"


def met(ok):
    return "✅ met" if ok else "❌ not met"


class Report:
    def __init__(self, res):
        self.res = res
        self.env = {}
        try:
            with open(os.path.join(res, "bench.env")) as f:
                for line in f:
                    if "=" in line:
                        k, v = line.rstrip("\n").split("=", 1)
                        self.env[k] = v
        except OSError:
            pass
        self.md = []
        self.notes = []

    def w(self, *lines):
        self.md.extend(lines)

    # -------------------------------------------------- fio
    def load_fio(self):
        self.runs = {}		# (workload, contender) -> {round: metrics}
        fdir = os.path.join(self.res, "fio")
        cpu = CpuLog(os.path.join(fdir, "cpu.txt"), os.path.join(fdir, "servers.txt"))
        rt = float(self.env.get("runtime", 0) or 0)
        for path in glob.glob(os.path.join(fdir, "r*.json")):
            m = re.match(r"r(\d+)\.json$", os.path.basename(path))
            d = load_json(path)
            if not m or not d:
                continue
            r = int(m.group(1))
            for j in d.get("jobs", []):
                if "@" not in j["jobname"]:
                    continue
                wl, c = j["jobname"].split("@", 1)
                mt = job_metrics(j)
                if mt["iops"] <= 0:
                    continue
                q = wl.rsplit("-", 1)[-1].rstrip("q")
                end = log_end(os.path.join(fdir, "logs", f"r{r}", f"{wl}@{c}_iops.*.log"))
                if end and rt:		# the middle 80% of the measured period
                    mt.update(cpu.window(end - 0.9 * rt, end - 0.1 * rt, f"{c}:{q}", mt["iops"]))
                self.runs.setdefault((wl, c), {})[r] = mt
        found = {wl for wl, _ in self.runs}
        self.wls = [w for w in workloads_order() if w in found] + sorted(found - set(workloads_order()))

    def ratio(self, wl, a, b, key="iops"):
        ra, rb = self.runs.get((wl, a), {}), self.runs.get((wl, b), {})
        return mmm([ra[r][key] / rb[r][key] for r in ra if r in rb and rb[r][key]])

    def stat(self, wl, c, key, scale=1.0):
        t = mmm([m.get(key) for m in self.runs.get((wl, c), {}).values()])
        return tuple(v * scale for v in t) if t else None

    def fio_section(self):
        w = self.w
        if not self.wls:
            w("", "## Throughput", "", "No fio results (part not run).")
            return
        w("", "## Throughput: ublk against the kernel drivers", "",
          "Each cell: median over the rounds (min–max). A ratio is the IOPS of the ublk "
          "contender over its kernel counterpart *in the same round* (they ran back to "
          "back), then min/median/max over the rounds. CPU µs/IO: busy time of all CPUs "
          "(user+sys+irq+softirq, /proc/stat) over the middle 80% of the run per I/O done "
          "meanwhile; *server*: the part of it used by the kublk process; ctx/IO: context "
          "switches per I/O; busy: CPU utilisation of the 2 vCPUs.", "")
        for wl in self.wls:
            w(f"### {wl}", "",
              "| contender | IOPS | MiB/s | mean lat µs | p99 lat µs | CPU µs/IO | server µs/IO | ctx/IO | busy | ratio |",
              "|---|---|---|---|---|---|---|---|---|---|")
            for c in CONTENDERS:
                if (wl, c) not in self.runs:
                    continue
                ratio = ""
                for a, b in PAIRS:
                    if c == a:
                        ratio = f"{fmt_mmm(self.ratio(wl, a, b))} of {LABEL[b]}"
                srv = self.stat(wl, c, "srv_us") if c.startswith("ublk") else None
                w(f"| {LABEL[c]} | {fmt_mmm(self.stat(wl, c, 'iops'), '{:.0f}')} "
                  f"| {fmt_mmm(self.stat(wl, c, 'bw', 1 / 1048576), '{:.1f}')} "
                  f"| {fmt_mmm(self.stat(wl, c, 'lat_mean'), '{:.0f}')} "
                  f"| {fmt_mmm(self.stat(wl, c, 'lat_p99'), '{:.0f}')} "
                  f"| {fmt_mmm(self.stat(wl, c, 'cpu_us'), '{:.1f}')} "
                  f"| {fmt_mmm(srv, '{:.1f}')} "
                  f"| {fmt_mmm(self.stat(wl, c, 'ctx'), '{:.2f}')} "
                  f"| {fmt_mmm(self.stat(wl, c, 'util', 100), '{:.0f}', '%')} | {ratio} |")
            errs = sum(m["errors"] for c in CONTENDERS for m in self.runs.get((wl, c), {}).values())
            if errs:
                w("", f"**{errs} I/O errors reported by fio in this workload.**")
            w("")

    def ratio_plot(self):
        os.makedirs(os.path.join(self.res, "plots"), exist_ok=True)
        dat = os.path.join(self.res, "plots", "ratios.dat")
        with open(dat, "w") as f:
            f.write("# idx workload nullmed nullmin nullmax loopmed loopmin loopmax nulltarget looptarget\n")
            for i, wl in enumerate(self.wls):
                row = [str(i), wl]
                for a, b in PAIRS:
                    t = self.ratio(wl, a, b)
                    row += [f"{t[1]:.4f}", f"{t[0]:.4f}", f"{t[2]:.4f}"] if t else ["NaN"] * 3
                for a, _ in PAIRS:
                    tgt = RATIO_TARGETS.get((a, wl_depth(wl)))
                    row.append(f"{tgt[0]:.2f}" if tgt and wl.startswith("4k") else "NaN")
                f.write(" ".join(row) + "\n")
        out = os.path.join(self.res, "ratios.png")
        err = gnuplot("bench-ratios.gp", out, dat=dat, out=out, n=len(self.wls),
                      subtitle=f"median of {self.env.get('rounds', '?')} round(s), whiskers: min-max; "
                               f"red ticks: targets; {self.env.get('runtime', '?')} s runs, QEMU TCG, "
                               f"{self.env.get('cpus', '?')} vCPUs")
        if err:
            self.notes.append(err)
        return None if err else "ratios.png"

    def ratio_target_rows(self):
        rows = []
        for (a, qd), (tgt, ref) in RATIO_TARGETS.items():
            b = dict(PAIRS)[a]
            for wl in self.wls:
                t = self.ratio(wl, a, b) if wl.startswith("4k") and wl_depth(wl) == qd else None
                if t:
                    rows.append((f"{LABEL[a]} / {LABEL[b]}, {wl}", f"≥ {tgt:.2f}", fmt_mmm(t),
                                 ref, met(t[1] >= tgt)))
        return rows

    # -------------------------------------------------- recovery
    def load_recovery(self):
        d = os.path.join(self.res, "recovery")
        self.busy = read_cycles(os.path.join(d, "busy.tsv"))
        self.idle = read_cycles(os.path.join(d, "idle.tsv"))
        self.standby = read_cycles(os.path.join(d, "standby.tsv"))
        ev, lat = read_lat_log(os.path.join(d, "busy-lat.log.gz"))
        self.busy_stall = stalls(self.busy, ev, lat) if ev else []
        self.standby_stall = stalls(self.standby, ev, lat) if ev else []
        for name, rows in (("busy-stall.tsv", self.busy_stall), ("standby-stall.tsv", self.standby_stall)):
            if not rows:
                continue
            with open(os.path.join(d, name), "w") as f:
                f.write("cycle\tstall_ms\tgap_from_ms\tgap_to_ms\tfirst_after_live_ms\tmax_io_latency_ms\n")
                for s in rows:
                    f.write(f"{s['cycle']}\t{s['stall']:.0f}{'+' if s['open'] else ''}\t{s['from']:.0f}\t"
                            f"{s['to']:.0f}\t{s['first_after_live']:.0f}\t{s['maxlat']:.1f}\n")
        self.busy_fio = fio_metrics(os.path.join(d, "busy-fio.json"))

    def mmm_row(self, name, t, n):
        """One row of a min/median/max table in ms, if there are figures."""
        if t:
            self.w(f"| {name} | {n} | {t[0]:.1f} ms | {t[1]:.1f} ms | {t[2]:.1f} ms |")

    def recovery_section(self):
        w = self.w
        w("", "## User recovery", "")
        if not self.busy and not self.idle:
            w("No recovery results (part not run).")
            return
        w(f"A ublk {self.env.get('recovery_target', 'null')} device with `-r -i` "
          "(USER_RECOVERY + REISSUE). *Busy*: fio 4k random writes at qd 32 run throughout; "
          "*idle*: no I/O. Each cycle: `kublk wait-state QUIESCED` is started (it polls "
          "every 1 ms), the server gets `kill -9`; **kill → QUIESCED** is until the waiter "
          "exits; then `kublk recover`: **START → LIVE** as it prints it (its own clock); "
          "**kill → LIVE** until it returns; **QUIESCED → START** is the rest: exec and "
          "setup of `kublk recover`, and its retries while the dead server's /dev/ublkcN is "
          "still open. **I/O stall**: longest gap between two I/O completions in fio's "
          "per-I/O log (1 ms resolution), from 0.3 s before the kill to 1 s after LIVE. "
          "*`recover --standby`*: more busy cycles with the new server started and armed "
          "before the kill (it polls the state every 1 ms and takes over at QUIESCED); its "
          "LIVE is when a `wait-state LIVE` started after QUIESCED returns (an upper bound).", "",
          "| measure | cycles | min | median | max |", "|---|---|---|---|---|")

        row = self.mmm_row

        b, i = rec_stats(self.busy), rec_stats(self.idle)
        nb, ni, ns = len(self.busy), len(self.idle), len(self.busy_stall)
        row("busy: kill → QUIESCED", b["kq"], nb)
        row("busy: QUIESCED → START (kublk recover start-up)", b["qs"], nb)
        row("busy: START → LIVE", b["sl"], nb)
        row("busy: kill → LIVE (wall)", b["kl"], nb)
        row("busy: LIVE → first completion", mmm([s["first_after_live"] for s in self.busy_stall]), ns)
        row("busy: **I/O stall**", mmm([s["stall"] for s in self.busy_stall]), ns)
        row("busy: longest I/O latency", mmm([s["maxlat"] for s in self.busy_stall]), ns)
        if self.standby:
            sb, nsb = rec_stats(self.standby), len(self.standby)
            row("busy, `recover --standby`: kill → QUIESCED", sb["kq"], nsb)
            row("busy, `recover --standby`: START → LIVE", sb["sl"], nsb)
            row("busy, `recover --standby`: kill → LIVE (upper bound)", sb["kl"], nsb)
            row("busy, `recover --standby`: **I/O stall**", mmm([s["stall"] for s in self.standby_stall]),
                len(self.standby_stall))
            row("busy, `recover --standby`: longest I/O latency",
                mmm([s["maxlat"] for s in self.standby_stall]), len(self.standby_stall))
        row("idle: kill → QUIESCED", i["kq"], ni)
        row("idle: QUIESCED → START (kublk recover start-up)", i["qs"], ni)
        row("idle: START → LIVE", i["sl"], ni)
        row("idle: kill → LIVE (wall)", i["kl"], ni)
        w("")
        if self.busy_fio:
            e = self.busy_fio["errors"]
            w(f"fio during the busy cycles: {si(self.busy_fio['iops'])} IOPS on average, "
              + (f"**{e} I/O errors**" if e else "no I/O error") + ".")
        if any(s["open"] for s in self.busy_stall + self.standby_stall):
            w("**Some cycles saw no completion within 1 s after LIVE** (their stall is a lower bound).")
        if self.busy:
            sd = {s["cycle"]: s for s in self.busy_stall}
            w("", "<details><summary>busy cycles</summary>", "",
              "| cycle | kill→QUIESCED | QUIESCED→START | START→LIVE | kill→LIVE | stall (from/to, ms after kill) | longest I/O |",
              "|---|---|---|---|---|---|---|")
            for r in self.busy:
                s = sd.get(r["cycle"], {})
                w(f"| {r['cycle']} | {(r['quiesced'] - r['kill']) * 1e3:.1f} "
                  f"| {(r['live'] - r['quiesced']) * 1e3 - r['start_live']:.1f} | {r['start_live']:.1f} "
                  f"| {(r['live'] - r['kill']) * 1e3:.1f} | {s.get('stall', NAN):.0f} "
                  f"({s.get('from', NAN):.0f} / {s.get('to', NAN):.0f}) | {s.get('maxlat', NAN):.0f} |")
            w("", "</details>")

    # -------------------------------------------------- beyond 6.1
    def load_beyond(self):
        d = os.path.join(self.res, "beyond")
        self.handover = read_cycles(os.path.join(d, "handover.tsv"))
        self.selfrec = read_cycles(os.path.join(d, "selfrec.tsv"))
        ev, lat = read_lat_log(os.path.join(d, "handover-lat.log.gz"))
        self.handover_stall = stalls(self.handover, ev, lat) if ev else []
        ev, lat = read_lat_log(os.path.join(d, "selfrec-lat.log.gz"))
        self.selfrec_stall = stalls(self.selfrec, ev, lat) if ev else []
        self.handover_fio = fio_metrics(os.path.join(d, "handover-fio.json"))
        self.failio, self.deadline = [], []
        try:
            with open(os.path.join(d, "failio.tsv")) as f:
                for line in f:
                    p = [float(x) for x in line.split()]
                    if len(p) >= 5:
                        self.failio.append(p)
            with open(os.path.join(d, "deadline.tsv")) as f:
                for line in f:
                    p = [float(x) for x in line.split()]
                    if len(p) >= 3:
                        self.deadline.append(p)
        except (OSError, ValueError):
            pass
        self.deadline_ms = float(self.env.get("deadline_ms", "nan") or "nan")

    def handover_errors(self):
        try:
            with open(os.path.join(self.res, "beyond", "handover-fio.json")) as f:
                txt = f.read()
            d = json.loads(txt[txt.index("{"):])
            return sum(j.get("total_err", 0) for j in d["jobs"])
        except (OSError, ValueError, KeyError):
            return None

    def beyond_section(self):
        w = self.w
        w("", "## Beyond 6.1: handover, FAIL_IO, deadline, self-recovery", "")
        if not (self.handover or self.failio or self.deadline or self.selfrec):
            w("No results (part not run).")
            return
        errs = self.handover_errors()
        w("Null target. **Planned handover** (`-r --quiesce`, no REISSUE): `kublk handover` "
          "under fio 4k random writes at qd 32; QUIESCE is when the command starts, the new "
          "server is started and armed before it sends QUIESCE_DEV; **I/O stall** as in the "
          "recovery section (longest gap between completions, 0.3 s before QUIESCE to 1 s "
          "after LIVE). **FAIL_IO** (`-r -e`): kill → first EIO of a direct read looped from "
          "the kill on; kill → FAIL_IO as a `wait-state` polling from before the kill sees it. "
          f"**Deadline** ({self.deadline_ms:.0f} ms, `--recovery-timeout`): kill → EIO of a "
          "read sent once QUIESCED; its excess over the deadline includes kill → QUIESCED. "
          "**Self-recovery** (`-r -i`): `ublk_uevent` runs `kublk recover` on the QUIESCED "
          "uevent, nothing else acts; LIVE from a `wait-state LIVE` (an upper bound).", "",
          "| measure | cycles | min | median | max |", "|---|---|---|---|---|")

        row = self.mmm_row

        h, nh = rec_stats(self.handover), len(self.handover)
        row("handover: QUIESCE → QUIESCED (old server drained and gone)", h["kq"], nh)
        row("handover: START → LIVE", h["sl"], nh)
        row("handover: QUIESCE → LIVE", h["kl"], nh)
        row("handover: **I/O stall**", mmm([x["stall"] for x in self.handover_stall]),
            len(self.handover_stall))
        row("handover: longest I/O latency", mmm([x["maxlat"] for x in self.handover_stall]),
            len(self.handover_stall))
        nf = len(self.failio)
        row("FAIL_IO: kill → first failed I/O", mmm([(r[3] - r[1]) * 1e3 for r in self.failio]), nf)
        row("FAIL_IO: kill → FAIL_IO seen", mmm([(r[2] - r[1]) * 1e3 for r in self.failio]), nf)
        nd = len(self.deadline)
        row("deadline: kill → EIO of a waiting read", mmm([(r[2] - r[1]) * 1e3 for r in self.deadline]), nd)
        row("deadline: EIO after the deadline (excess)",
            mmm([(r[2] - r[1]) * 1e3 - self.deadline_ms for r in self.deadline]), nd)
        sr, ns = rec_stats(self.selfrec), len(self.selfrec)
        row("self-recovery: kill → QUIESCED", sr["kq"], ns)
        row("self-recovery: kill → LIVE (upper bound)", sr["kl"], ns)
        row("self-recovery: **I/O stall**", mmm([x["stall"] for x in self.selfrec_stall]),
            len(self.selfrec_stall))
        if errs is not None:
            w("", f"fio errors across the {nh} handovers: **{errs}** (0 expected: nothing is "
              "held by a dead server).")

    def beyond_target_rows(self):
        rows = []
        st = mmm([x["stall"] for x in self.handover_stall])
        if st:
            rows.append(("planned handover stall (median)", "≤ 100 ms", fmt_mmm(st, "{:.0f}", " ms"),
                         "", met(st[1] <= 100)))
        errs = self.handover_errors()
        if errs is not None:
            rows.append(("I/O errors across planned handovers", "0", str(errs), "", met(errs == 0)))
        return rows

    def recovery_target_rows(self):
        rows = []
        b, i = rec_stats(self.busy), rec_stats(self.idle)
        for name, t, lim in (("kill → QUIESCED, busy (median)", b["kq"], 100),
                             ("kill → QUIESCED, idle (median)", i["kq"], 100),
                             ("START → LIVE, busy (median)", b["sl"], 50),
                             ("START → LIVE, idle (median)", i["sl"], 50)):
            if t:
                rows.append((name, f"≤ {lim} ms", fmt_mmm(t, "{:.1f}", " ms"), "", met(t[1] <= lim)))
        st = mmm([s["stall"] for s in self.busy_stall])
        if st:
            v = "✅ met (every cycle)" if st[2] <= 300 else (
                "⚠️ median met, not every cycle" if st[1] <= 300 else "❌ not met")
            rows.append(("I/O stall across a crash, busy", "≤ 300 ms", fmt_mmm(st, "{:.0f}", " ms"), "", v))
        st = mmm([s["stall"] for s in self.standby_stall])
        if st:
            v = "✅ met (every cycle)" if st[2] <= 300 else (
                "⚠️ median met, not every cycle" if st[1] <= 300 else "❌ not met")
            rows.append(("I/O stall across a crash, busy, `recover --standby`", "≤ 300 ms",
                         fmt_mmm(st, "{:.0f}", " ms"), "", v))
        return rows

    # -------------------------------------------------- idle
    def load_idle(self):
        self.idle_rows = {}	# state -> measures of its window
        keys = ("ms", "busy_ms", "ctxt", "intr", "events", "ublk_events", "server_switches")
        try:
            with open(os.path.join(self.res, "idle", "idle.tsv")) as f:
                for line in f:
                    p = line.split()
                    if len(p) == len(keys) + 1 and float(p[1]) > 0:
                        r = dict(zip(keys, map(float, p[1:])))
                        for k in ("busy_ms", "ctxt", "intr"):	# per second
                            r[k + "_s"] = r[k] * 1e3 / r["ms"]
                        self.idle_rows[p[0]] = r
        except (OSError, ValueError):
            pass

    IDLE_STATES = (("none", "no ublk device"),
                   ("live", "ublk null (2 queues) and ublk loop, LIVE, no I/O"),
                   ("quiesced", "the same, servers killed: QUIESCED, a read waiting on each"))

    def idle_section(self):
        w = self.w
        if not self.idle_rows:
            return
        w("", "## Idle devices", "",
          f"Windows of {self.env.get('idle', '?')} s in which nothing is asked of the devices. "
          "CPU: busy time of all vCPUs (/proc/stat), per second; events: the workqueue, timer "
          "and hrtimer trace events of the whole guest; *ublk*: those from ublk_drv's functions "
          "or a kublk thread; server switches: context switches of the kublk servers' threads. "
          "A monitor work or a polling loop in the driver or the server shows in the last two.",
          "", "| state | CPU ms/s | context switches/s | interrupts/s | events | ublk events | server switches |",
          "|---|---|---|---|---|---|---|")
        for st, name in self.IDLE_STATES:
            r = self.idle_rows.get(st)
            if not r:
                continue
            w(f"| {name} | {r['busy_ms_s']:.1f} | {r['ctxt_s']:.0f} | {r['intr_s']:.0f} "
              f"| {count(r['events'])} | {count(r['ublk_events'])} | {count(r['server_switches'])} |")
        w("", "The trace lines of any ublk event are in `idle/STATE-ublk.txt`.")

    def idle_target_rows(self):
        rows = [self.idle_rows.get(s) for s in ("live", "quiesced")]
        if not all(rows):
            return []
        live, qui = rows
        none = self.idle_rows.get("none")
        ev = live["ublk_events"] + qui["ublk_events"]
        sw = live["server_switches"]
        cpu = ", ".join(f"{k} {r['busy_ms_s']:.1f}" for k, r in
                        (("none", none), ("LIVE", live), ("QUIESCED", qui)) if r)
        verdict = "– (no trace events)" if math.isnan(ev) else met(ev == 0 and sw == 0)
        return [("No CPU for idle devices (LIVE; QUIESCED with I/O waiting)",
                 "no ublk work, timer or thread event; no server wake-up",
                 f"{count(ev)} ublk events, {count(sw)} server wake-ups; CPU ms/s: {cpu}",
                 "a monitor work every 5 s per device", verdict)]

    # -------------------------------------------------- timeline
    def timeline(self):
        d = os.path.join(self.res, "timeline")
        ev = read_cycles(os.path.join(d, "events.tsv"))
        ts, lat = read_lat_log(os.path.join(d, "lat.log.gz"))
        if not ev or len(ts) < 10:
            return None, None
        binw = 0.010
        e = ev[0]
        tk = e["kill"]
        dat = os.path.join(self.res, "plots", "timeline.dat")
        os.makedirs(os.path.dirname(dat), exist_ok=True)
        with open(dat, "w") as f:
            f.write("# bin centre (s after kill -9), IOPS (10 ms bins), longest latency (ms) "
                    "of the I/Os completed in the bin (NaN: none)\n")
            n = int((ts[-1] - ts[0]) / binw) + 3
            for k in range(n):
                t = ts[0] - binw + k * binw
                a, b = bisect_left(ts, t), bisect_left(ts, t + binw)
                ml = max(lat[a:b]) if b > a else NAN
                f.write(f"{t + binw / 2 - tk:.4f} {(b - a) / binw:.0f} {ml:.2f}\n")
        st = stalls(ev, ts, lat)[0]
        out = os.path.join(self.res, "timeline.png")
        q, live = e["quiesced"] - tk, e["live"] - tk
        to = st["to"] / 1e3 if not math.isnan(st["to"]) else live
        err = gnuplot("bench-timeline.gp", out, dat=dat, out=out, tq=q, tlive=live,
                      zlo=-0.3, zhi=max(live, to) + 0.4,
                      subtitle=f"ublk loop (-r -i), fio 4k randwrite qd32; kill→QUIESCED {q * 1e3:.0f} ms, "
                               f"START→LIVE {e['start_live']:.1f} ms, kill→LIVE {live * 1e3:.0f} ms, "
                               f"longest gap without completions {st['stall']:.0f} ms")
        if err:
            self.notes.append(err)
            return None, (e, st)
        return "timeline.png", (e, st)

    # -------------------------------------------------- ours vs 6.1's module
    def load_ref(self):
        """Part ref: ref/fio/r<round>-<module>.json with their CPU logs, the
        recovery cycles per module and server, the kernel log."""
        self.ref_runs = {}	# (workload, module, contender) -> {round: metrics}
        d = os.path.join(self.res, "ref", "fio")
        rt = float(self.env.get("runtime", 0) or 0)
        for path in glob.glob(os.path.join(d, "r*-*.json")):
            m = re.match(r"r(\d+)-(ours|ref)\.json$", os.path.basename(path))
            data = load_json(path)
            if not m or not data:
                continue
            r, mod = int(m.group(1)), m.group(2)
            cpu = CpuLog(os.path.join(d, f"r{r}-{mod}.cpu.txt"),
                         os.path.join(d, f"r{r}-{mod}.servers.txt"))
            for j in data.get("jobs", []):
                if "@" not in j["jobname"]:
                    continue
                wl, c = j["jobname"].split("@", 1)
                mt = job_metrics(j)
                if mt["iops"] <= 0:
                    continue
                q = wl.rsplit("-", 1)[-1].rstrip("q")
                end = log_end(os.path.join(d, "logs", f"r{r}-{mod}", f"{wl}@{c}_iops.*.log"))
                if end and rt:
                    mt.update(cpu.window(end - 0.9 * rt, end - 0.1 * rt, f"{c}:{q}", mt["iops"]))
                if "srv_us" in mt:
                    mt["rest_us"] = mt["cpu_us"] - mt["srv_us"]
                self.ref_runs.setdefault((wl, "-" if c == "nullblk" else mod, c), {})[r] = mt
        found = {k[0] for k in self.ref_runs}
        self.ref_wls = [w for w in workloads_order() if w in found]
        rd = os.path.join(self.res, "ref", "recovery")
        self.ref_rec = {}	# (module, server) -> {busy, idle, stall}
        for mod in REF_MODULES:
            for s in REF_SERVERS:
                busy = read_cycles(os.path.join(rd, f"{mod}-{s}-busy.tsv"))
                idle = read_cycles(os.path.join(rd, f"{mod}-{s}-idle.tsv"))
                if not busy and not idle:
                    continue
                ev, lat = read_lat_log(os.path.join(rd, f"{mod}-{s}-busy-lat.log.gz"))
                self.ref_rec[mod, s] = {"busy": busy, "idle": idle,
                                        "stall": stalls(busy, ev, lat) if ev else [],
                                        "fio": fio_metrics(os.path.join(rd, f"{mod}-{s}-busy-fio.json"))}
        self.ref_kmsg = self.ref_kernel_log()

    def ref_kernel_log(self):
        """Lines of ref/dmesg.txt that the harness counts as warnings, each
        with the phase (module loaded) whose marker precedes it."""
        d = os.path.join(self.res, "ref")
        try:
            with open(os.path.join(d, "kmsg-bad.txt")) as f:
                bad = re.compile(f.read().strip() or "WARNING:|BUG:|Call Trace")
            with open(os.path.join(d, "dmesg.txt"), errors="replace") as f:
                lines = f.read().splitlines()
        except (OSError, re.error):
            return None
        phase, out = "before the part", []
        for line in lines:
            m = re.search(r"bench-ref: (.*)", line)
            if m:
                phase = m.group(1)
            elif bad.search(line):
                out.append((phase, line.strip()))
        return out

    def ref_ratio(self, wl, a, b, key="iops"):
        """per round a/b, a and b (module, contender); min/median/max"""
        ra = self.ref_runs.get((wl,) + a, {})
        rb = self.ref_runs.get((wl,) + b, {})
        return mmm([ra[r][key] / rb[r][key] for r in ra
                    if r in rb and ra[r].get(key) and rb[r].get(key)])

    def ref_stat(self, wl, mod, c, key):
        return mmm([m.get(key) for m in self.ref_runs.get((wl, mod, c), {}).values()])

    def ref_series(self):
        """The ratios of the section: (label, a, b, target) per column."""
        out = []
        for tgt in ("null", "loop"):
            for s in REF_SERVERS:
                out.append((f"{s} {tgt}: ours / 6.1's", ("ours", f"{s}-{tgt}"),
                            ("ref", f"{s}-{tgt}"), REF_SAME_TARGET))
        for tgt in ("null", "loop"):
            out.append((f"{tgt}: kublk on ours / ublksrv on 6.1's", ("ours", f"kublk-{tgt}"),
                        ("ref", f"ublksrv-{tgt}"), REF_CROSS_TARGET))
        return out

    @staticmethod
    def ref_headline(wl):
        return wl.startswith("4k") and wl_depth(wl) in ("qd32", "qd128b")

    def ref_target_rows(self):
        rows = []
        if not self.ref_wls:
            return rows
        for label, kind, tgt in (("ours / 6.1's module, same server", "same", REF_SAME_TARGET),
                                 ("kublk on ours / ublksrv on 6.1's", "cross", REF_CROSS_TARGET)):
            vals = []
            for name, a, b, t in self.ref_series():
                if t != tgt:
                    continue
                for wl in self.ref_wls:
                    r = self.ref_ratio(wl, a, b) if self.ref_headline(wl) else None
                    if r:
                        vals.append((r[1], f"{name}, {wl}"))
            if not vals:
                continue
            n = sum(v >= tgt for v, _ in vals)
            lo = min(vals)
            rows.append((f"{label}: IOPS at qd32 and qd128b, null and loop, 1 and 2 queues "
                         f"({len(vals)} rows)", f"≥ {tgt:.2f} each",
                         f"{n} of {len(vals)} rows; lowest {lo[0]:.2f} ({lo[1]})", "", met(n == len(vals))))
            if kind == "same":
                below = []
                for name, a, b, t in self.ref_series():
                    for wl in self.ref_wls:
                        r = self.ref_ratio(wl, a, b) if t == tgt else None
                        if r and r[1] < 1.0:
                            below.append((r[1], f"{name}, {wl}"))
                below.sort()
                rows.append(("ours / 6.1's module, same server: no row below 1.0 (every workload)",
                             "≥ 1.00 each", f"{len(below)} row(s) below"
                             + (": " + "; ".join(f"{w} {v:.2f}" for v, w in below[:4])
                                + (" ..." if len(below) > 4 else "") if below else ""),
                             "", met(not below)))
        # recovery: the targets are ours; 6.1's figures go in the reference column
        for s in REF_SERVERS:
            ours, ref = self.ref_rec.get(("ours", s)), self.ref_rec.get(("ref", s))
            if not ours:
                continue
            for name, f, lim in (("kill → QUIESCED, busy", lambda r: rec_stats(r["busy"])["kq"], 100),
                                 ("kill → QUIESCED, idle", lambda r: rec_stats(r["idle"])["kq"], 100),
                                 ("I/O stall across a crash, busy",
                                  lambda r: mmm([x["stall"] for x in r["stall"]]), 300)):
                t = f(ours)
                if not t:
                    continue
                rt = f(ref) if ref else None
                rows.append((f"{name}, {s} (median; part ref)", f"≤ {lim} ms",
                             fmt_mmm(t, "{:.0f}", " ms"),
                             f"6.1's module: {fmt_mmm(rt, '{:.0f}', ' ms')}" if rt else "",
                             met(t[1] <= lim)))
        return rows

    def ref_plot(self):
        dat = os.path.join(self.res, "plots", "ref-ratios.dat")
        os.makedirs(os.path.dirname(dat), exist_ok=True)
        series = self.ref_series()
        with open(dat, "w") as f:
            f.write("# idx workload then per series med min max, then same and cross targets; series: "
                    + "; ".join(s[0] for s in series) + "\n")
            for i, wl in enumerate(self.ref_wls):
                row = [str(i), wl]
                for _, a, b, _ in series:
                    t = self.ref_ratio(wl, a, b)
                    row += [f"{t[1]:.4f}", f"{t[0]:.4f}", f"{t[2]:.4f}"] if t else ["NaN"] * 3
                hl = self.ref_headline(wl)
                row += [f"{REF_SAME_TARGET:.2f}" if hl else "NaN", f"{REF_CROSS_TARGET:.2f}" if hl else "NaN"]
                f.write(" ".join(row) + "\n")
        out = os.path.join(self.res, "ref-ratios.png")
        err = gnuplot("bench-ref-ratios.gp", out, dat=dat, out=out, n=len(self.ref_wls),
                      # no apostrophe: gnuplot -e quotes the string with them
                      subtitle=f"median of {self.env.get('ref_rounds', '?')} interleaved round(s), "
                               f"whiskers: min-max; red ticks: targets (same server 1.10, kublk on "
                               f"ours / ublksrv on 6.1 1.2, qd32 and qd128b); "
                               f"{self.env.get('runtime', '?')} s runs, QEMU TCG, "
                               f"{self.env.get('cpus', '?')} vCPUs")
        if err:
            self.notes.append(err)
        return None if err else "ref-ratios.png"

    def ref_section(self):
        w = self.w
        if not self.ref_wls and not self.ref_rec:
            return
        rounds = self.env.get("ref_rounds", "?")
        w("", "## Ours vs Linux 6.1's module", "",
          "Linux 6.1's own `drivers/block/ublk_drv.c` (Debian's linux-source-6.1, built out of "
          "tree by ref-module.sh; as a module it always completes commands in task context, "
          "UBLK_F_URING_CMD_COMP_IN_TASK) against ours, each serving kublk (our test server) "
          "and ublksrv 1.0 (`ublk add -t null|loop -q N -d 128`, loop `--buffered_io` on the "
          "same tmpfs file as kublk's), swapped in one boot: a round loads one module, adds "
          "the 8 devices (2 servers × null/loop × 1/2 queues), runs every workload on each "
          "(one fio process), deletes them and unloads; then the other module the same. Odd "
          "rounds start with ours, even ones with 6.1's. null_blk runs in the first half of "
          "each round. A ratio is taken within a round, then min/median/max over the "
          f"{rounds} round(s). Targets (issue 16) apply to the 4k rows at qd32 and qd128b.", "")
        png = self.ref_plot() if self.ref_wls else None
        if png:
            w(f"![ours vs 6.1's module]({png})", "")
        series = self.ref_series()
        if self.ref_wls:
            w("### IOPS ratios", "",
              "| workload | " + " | ".join(s[0] for s in series) + " |",
              "|---" * (len(series) + 1) + "|")
            for wl in self.ref_wls:
                cells = []
                for _, a, b, tgt in series:
                    t = self.ref_ratio(wl, a, b)
                    c = fmt_mmm(t)
                    if t and self.ref_headline(wl):
                        c += " ✅" if t[1] >= tgt else " ❌"
                    elif t and tgt == REF_SAME_TARGET and t[1] < 1.0:
                        c = f"**{c}**"
                    cells.append(c)
                w(f"| {wl} | " + " | ".join(cells) + " |")
            w("", f"✅/❌: the median against the target of its column (same server ≥ "
              f"{REF_SAME_TARGET:.2f}, kublk on ours / ublksrv on 6.1's ≥ {REF_CROSS_TARGET:.2f}); "
              "bold: a same-server row below 1.0 elsewhere.", "")
            w("### IOPS", "", "Median (min–max) over the rounds.", "",
              "| workload | target | kublk, ours | kublk, 6.1's | ublksrv, ours | ublksrv, 6.1's | null_blk |",
              "|---|---|---|---|---|---|---|")
            for wl in self.ref_wls:
                for tgt in ("null", "loop"):
                    cells = [fmt_mmm(self.ref_stat(wl, mod, f"{s}-{tgt}", "iops"), "{:.0f}")
                             for s in REF_SERVERS for mod in REF_MODULES]
                    nb = fmt_mmm(self.ref_stat(wl, "-", "nullblk", "iops"), "{:.0f}") if tgt == "null" else ""
                    w(f"| {wl} | {tgt} | " + " | ".join(cells) + f" | {nb} |")
            w("", "### CPU per I/O", "",
              "µs of CPU (all vCPUs, /proc/stat) per I/O over the middle 80% of each run: "
              "*all* / *server* (the server process: its queue threads and their io_uring "
              "workers) / *rest* (fio, the block layer, interrupts, everything else). Median "
              "over the rounds.", "",
              "| workload | target | server | ours: all / server / rest | 6.1's: all / server / rest | ours / 6.1's (all) |",
              "|---|---|---|---|---|---|")

            def split(wl, mod, c):
                v = [self.ref_stat(wl, mod, c, k) for k in ("cpu_us", "srv_us", "rest_us")]
                return " / ".join(f"{t[1]:.1f}" if t else "–" for t in v)
            for wl in self.ref_wls:
                for tgt in ("null", "loop"):
                    for s in REF_SERVERS:
                        c = f"{s}-{tgt}"
                        w(f"| {wl} | {tgt} | {s} | {split(wl, 'ours', c)} | {split(wl, 'ref', c)} "
                          f"| {fmt_mmm(self.ref_ratio(wl, ('ours', c), ('ref', c), 'cpu_us'))} |")
            w("", "### ublk's CPU per I/O over null_blk's", "",
              "CPU µs per I/O of the ublk null device over null_blk's in the same round, "
              "median (min–max): what ublk costs on top of a block driver that does nothing.", "",
              "| workload | kublk, ours | kublk, 6.1's | ublksrv, ours | ublksrv, 6.1's |",
              "|---|---|---|---|---|")
            for wl in self.ref_wls:
                if not wl.startswith("4k"):
                    continue
                cells = [fmt_mmm(self.ref_ratio(wl, (mod, f"{s}-null"), ("-", "nullblk"), "cpu_us"))
                         for s in REF_SERVERS for mod in REF_MODULES]
                w(f"| {wl} | " + " | ".join(cells) + " |")
            errs = sum(m["errors"] for runs in self.ref_runs.values() for m in runs.values())
            if errs:
                w("", f"**fio reported {errs} I/O errors in this part.**")
        if self.ref_rec:
            keys = [k for k in ((m, s) for m in REF_MODULES for s in REF_SERVERS) if k in self.ref_rec]
            w("", "### Recovery", "",
              f"A {self.env.get('recovery_target', 'null')} device with USER_RECOVERY + REISSUE "
              "(kublk `-r -i`, ublksrv `-r 1 -i 1`), 1 queue, depth 128, cycles as in \"User "
              "recovery\" above: `kill -9` of the server with `kublk wait-state QUIESCED` polling "
              "(1 ms), then the server's own recover command (`kublk recover`, ublksrv's `ublk "
              "recover` followed by `kublk wait-state LIVE`: ublksrv does not say when the device "
              "is LIVE). "
              "*Busy*: fio 4k random writes at qd32. START → LIVE only for kublk, which prints it; "
              "ublksrv's kill → LIVE includes the start of that `wait-state` (an upper bound), "
              "its I/O stall (from fio's log) does not. "
              "6.1's module notices a dead server on a periodic check (every 5 s), so idle can "
              "take up to 5 s there. Median (min–max) over the cycles; ✅/❌ against the "
              "target on our module's columns (6.1's are the reference).", "",
              "| measure | target | " + " | ".join(f"{REF_MOD_LABEL[m]}, {s}" for m, s in keys) + " |",
              "|---" * (len(keys) + 2) + "|")

            def rrow(name, target, lim, f):
                cells = []
                for k in keys:
                    t = f(self.ref_rec[k])
                    c = fmt_mmm(t, "{:.0f}", " ms")
                    if t and lim and k[0] == "ours":
                        c += " ✅" if t[1] <= lim else " ❌"
                    cells.append(c)
                w(f"| {name} | {target} | " + " | ".join(cells) + " |")
            rrow("cycles busy / idle", "", None, lambda r: None)
            self.md[-1] = "| cycles busy / idle | | " + " | ".join(
                f"{len(self.ref_rec[k]['busy'])} / {len(self.ref_rec[k]['idle'])}" for k in keys) + " |"
            rrow("busy: kill → QUIESCED", "≤ 100 ms", 100, lambda r: rec_stats(r["busy"])["kq"])
            rrow("busy: START → LIVE", "", None, lambda r: rec_stats(r["busy"])["sl"])
            rrow("busy: kill → recover command returned", "", None,
                 lambda r: mmm([(x["returned"] - x["kill"]) * 1e3 for x in r["busy"]]))
            rrow("busy: kill → LIVE", "", None, lambda r: rec_stats(r["busy"])["kl"])
            rrow("busy: LIVE → first completion", "", None,
                 lambda r: mmm([x["first_after_live"] for x in r["stall"]]))
            rrow("busy: **I/O stall**", "≤ 300 ms", 300, lambda r: mmm([x["stall"] for x in r["stall"]]))
            rrow("busy: longest I/O latency", "", None, lambda r: mmm([x["maxlat"] for x in r["stall"]]))
            rrow("idle: kill → QUIESCED", "≤ 100 ms", 100, lambda r: rec_stats(r["idle"])["kq"])
            rrow("idle: START → LIVE", "", None, lambda r: rec_stats(r["idle"])["sl"])
            rrow("idle: kill → recover command returned", "", None,
                 lambda r: mmm([(x["returned"] - x["kill"]) * 1e3 for x in r["idle"]]))
            rrow("idle: kill → LIVE", "", None, lambda r: rec_stats(r["idle"])["kl"])
            errs = [(k, r["fio"]["errors"]) for k, r in self.ref_rec.items() if r["fio"] and r["fio"]["errors"]]
            if errs:
                w("", "fio I/O errors during the busy cycles: " + ", ".join(
                    f"{REF_MOD_LABEL[m]} with {s}: **{e}**" for (m, s), e in errs) + ".")
        w("", "### Kernel log", "")
        if self.ref_kmsg is None:
            w("No kernel log of this part (ref/dmesg.txt).")
        elif not self.ref_kmsg:
            w("No warning, BUG or call trace in the guest's kernel log during this part.")
        else:
            w(f"**{len(self.ref_kmsg)} line(s) the harness counts as a warning**, with the phase "
              "that was running (the module loaded then); the whole log is ref/dmesg.txt:", "", "```")
            w(*[f"[{p}] {line}" for p, line in self.ref_kmsg[:40]])
            w("```")

    def ref_summary(self):
        if not self.ref_wls and not self.ref_rec:
            return
        parts = []
        for name, a, b, _ in self.ref_series():
            vals = [self.ref_ratio(wl, a, b) for wl in self.ref_wls if self.ref_headline(wl)]
            vals = [v[1] for v in vals if v]
            if vals:
                parts.append(f"{name} {statistics.median(vals):.2f} [{min(vals):.2f}-{max(vals):.2f}]")
        if parts:
            print("bench: ref       IOPS ratios at qd32/qd128b (median of the rows' medians "
                  "[lowest-highest row]): " + "; ".join(parts))
        for (mod, s), rec in sorted(self.ref_rec.items()):
            b, i = rec_stats(rec["busy"]), rec_stats(rec["idle"])
            st = mmm([x["stall"] for x in rec["stall"]])

            def f(t):
                return f"{t[1]:.0f} [{t[0]:.0f}-{t[2]:.0f}]" if t else "-"
            print(f"bench: ref       recovery, {REF_MOD_LABEL[mod]} module, {s}: busy kill->QUIESCED "
                  f"{f(b['kq'])} ms, I/O stall {f(st)} ms; idle kill->QUIESCED {f(i['kq'])} ms")
        if self.ref_kmsg:
            print(f"bench: ref       kernel log: {len(self.ref_kmsg)} warning line(s), first in "
                  f"phase '{self.ref_kmsg[0][0]}'")

    # -------------------------------------------------- observations
    def observations(self):
        obs = []
        if self.busy and self.busy_stall:
            b = rec_stats(self.busy)
            st = mmm([s["stall"] for s in self.busy_stall])
            fa = mmm([s["first_after_live"] for s in self.busy_stall])
            if b["kq"] and b["qs"] and b["sl"] and st and fa:
                obs.append(
                    f"Crash stall, medians: kill → QUIESCED {b['kq'][1]:.0f} ms + QUIESCED → START "
                    f"(`kublk recover` start-up) {b['qs'][1]:.0f} ms + START → LIVE {b['sl'][1]:.0f} ms "
                    f"+ LIVE → first completion {fa[1]:.0f} ms; longest gap without completions "
                    f"{st[1]:.0f} ms. The driver's own parts are the first and the third.")
        if self.standby and self.standby_stall:
            sb = rec_stats(self.standby)
            st = mmm([s["stall"] for s in self.standby_stall])
            if sb["kq"] and sb["sl"] and st:
                obs.append(f"With the new server armed before the crash (`recover --standby`): "
                           f"kill → QUIESCED {sb['kq'][1]:.0f} ms, START → LIVE {sb['sl'][1]:.0f} ms, "
                           f"longest gap without completions {st[1]:.0f} ms (median).")
        for a, b in PAIRS:
            for rw in ("randread", "randwrite"):
                wl = f"4k-{rw}-qd1-1q"
                la, lb = self.stat(wl, a, "lat_mean"), self.stat(wl, b, "lat_mean")
                if la and lb:
                    obs.append(f"{wl}: mean latency {la[1]:.0f} µs for {LABEL[a]} vs {lb[1]:.0f} µs "
                               f"for {LABEL[b]}: ≈ {la[1] - lb[1]:.0f} µs more per I/O.")
        for a, _ in PAIRS:
            for rw in ("randread", "randwrite"):
                w1, w2 = f"4k-{rw}-qd32-1q", f"4k-{rw}-qd32-2q"
                i1, i2 = self.stat(w1, a, "iops"), self.stat(w2, a, "iops")
                x1, x2 = self.stat(w1, a, "ctx"), self.stat(w2, a, "ctx")
                c1, c2 = self.stat(w1, a, "cpu_us"), self.stat(w2, a, "cpu_us")
                if i1 and i2 and x1 and x2 and c1 and c2:
                    obs.append(f"{LABEL[a]}, {rw} qd32: {si(i1[1])} IOPS with 1 queue (fio and the "
                               f"queue thread free to run on different vCPUs) vs {si(i2[1])} with 2 "
                               f"(fio job N pinned on CPU N, and kublk pins its queue-N thread on queue "
                               f"N's CPU, the same one); context switches per I/O {x1[1]:.2f} vs "
                               f"{x2[1]:.2f}, CPU µs per I/O {c1[1]:.0f} vs {c2[1]:.0f}.")
        r_, w_ = "4k-randread-qd32-1q", "4k-randwrite-qd32-1q"
        sr, sw = self.stat(r_, "ublk-loop", "srv_us"), self.stat(w_, "ublk-loop", "srv_us")
        xr, xw = self.stat(r_, "ublk-loop", "ctx"), self.stat(w_, "ublk-loop", "ctx")
        if sr and sw and xr and xw:
            obs.append(f"ublk loop at qd32, 1 queue: the server spends {sw[1]:.0f} µs per write vs "
                       f"{sr[1]:.0f} µs per read, with {xw[1]:.2f} vs {xr[1]:.2f} context switches "
                       f"per I/O (buffered writes to the tmpfs file cost the server more than reads).")
        for a, b in PAIRS:
            for wl in self.wls:
                if not wl.startswith("4k") or wl_depth(wl) not in ("qd32", "qd128b") or not wl.endswith("1q"):
                    continue
                ca, cb = self.stat(wl, a, "cpu_us"), self.stat(wl, b, "cpu_us")
                sa = self.stat(wl, a, "srv_us")
                ua, ub = self.stat(wl, a, "util"), self.stat(wl, b, "util")
                if ca and cb and sa and ua and ub:
                    obs.append(f"{wl}: {LABEL[a]} {ca[1]:.0f} CPU µs per I/O ({sa[1]:.0f} in the server) "
                               f"vs {cb[1]:.0f} for {LABEL[b]} (×{ca[1] / cb[1]:.1f}), with the CPUs "
                               f"{ua[1] * 100:.0f}% vs {ub[1] * 100:.0f}% busy.")
        return obs

    # -------------------------------------------------- all
    def run(self):
        env = self.env
        self.load_fio()
        self.load_recovery()
        self.load_beyond()
        self.load_idle()
        self.load_ref()
        w = self.w
        quick = env.get("quick") not in ("", "0", None)
        w("# ublk benchmark", "",
          f"{env.get('date', '')}, kernel {env.get('kernel', '?')}, QEMU TCG with "
          f"{env.get('cpus', '?')} vCPUs and {env.get('mem', '?')}, {env.get('fio', 'fio')}, "
          f"tree {env.get('git', '?')}.", "",
          f"Knobs: runtime {env.get('runtime')} s + ramp {env.get('ramp')} s per fio run, "
          f"{env.get('rounds')} round(s), {env.get('cycles')} recovery cycles, timeline "
          f"{env.get('timeline')} s, parts {env.get('parts')}"
          + (f", only `{env['only']}`" if env.get("only") else "")
          + (f", kublk add `{env['kublk_args']}`" if env.get("kublk_args") else "")
          + (", **quick mode**" if quick else "")
          + f". Measurements took {env.get('elapsed', '?')} s in the guest.", "",
          "Absolute figures under TCG move by 10–40% between runs (more when other VMs share "
          "the host's CPUs): compare the ratios, measured side by side in the same boot. "
          "Nothing here is pass/fail.")
        pp = []
        for when in ("start", "end"):
            x = env.get(f"pingpong_cross_{when}", "").split()
            y = env.get(f"pingpong_same_{when}", "").split()
            z = env.get(f"pingpong_threads_{when}", "").split()
            if len(x) == 3 and len(y) == 3:
                pp.append(f"{x[1]} µs across vCPUs vs {y[1]} µs on one vCPU"
                          + (f" ({z[1]} µs between two threads there)" if len(z) == 3 else "")
                          + f" at the {when}")
        if pp:
            w("", "Wake-up round trip between two processes (pipe ping-pong, mean): " + "; ".join(pp)
              + ". ublk's server thread and loop's worker pay such wake-ups per I/O, null_blk "
              "(completion in softirq) does not: when the first figure is high (a loaded host "
              "deschedules idle vCPUs), ublk and loop slow down much more than null_blk."
              + (" Two threads of one process share an address space; between processes TCG "
                 "also drops its software TLB at each switch, which ublk pays where fio and a "
                 "queue thread share a vCPU (2 queues); see BENCH.md."
                 if env.get("pingpong_threads_start") else ""))
        cp = env.get("copy_4k", "").split()
        if len(cp) == 2:
            erms = env.get("erms") == "1"
            w("", f"Copying: a 4 KiB copy takes {cp[0]} µs with `rep movsb` and {cp[1]} µs with "
              f"`rep movsq` in this guest (QEMU `-cpu {env.get('vm_cpu', '?')}`); the CPU "
              + ("has ERMS, so the kernel copies user data with `rep movsb`. "
                 if erms else "lacks ERMS, so the kernel copies user data with `rep movsq`. ")
              + "ublk copies each request's data once (ublk loop twice: page cache to server "
              "buffer, buffer to request), kernel loop once, null_blk never; see BENCH.md.")
        clk = env.get("clock_read")
        if clk:
            w("", f"Clock: a `clock_gettime()` takes {clk} µs on the guest's "
              f"`{env.get('clocksource', '?')}` clocksource. fio reads the clock several times "
              "per I/O and the block layer twice (I/O statistics); on the `hpet` clocksource "
              "each read is an emulated device access of microseconds; see BENCH.md.")
        ratios_png = self.ratio_plot() if self.wls else None
        tl_png, tl = self.timeline()

        w("", "## Targets (information, not pass/fail)", "",
          "| measure | target | measured: median (min–max) | upstream 6.1 reference | |",
          "|---|---|---|---|---|")
        for r in self.target_rows():
            w("| " + " | ".join(r) + " |")
        if ratios_png:
            w("", f"![throughput ratios]({ratios_png})")

        w("", "## Setup", "",
          "fio: `ioengine=io_uring direct=1 thread time_based`, one job per queue (2 queues: "
          "`cpus_allowed_policy=split`, job N on CPU N), random workloads with "
          "`norandommap randrepeat=0`, `lat_percentiles=1` (latency = submission to "
          "completion). qd128b: iodepth 128 with `iodepth_batch_submit=16 "
          "iodepth_batch_complete_min=16`. One fio process per round runs every workload, "
          "and for each the four contenders back to back (`stonewall`): A B A B in odd "
          "rounds, B A B A in even ones. null_blk: configfs, 1 GiB, `memory_backed=0 "
          "irqmode=1` (softirq), 128 tags, submit_queues = queues; ublk null: `kublk add -t "
          f"null -q N` (depth 128). loop: `losetup --direct-io=off` on a {env.get('loop_size', '?')} "
          "file in tmpfs; ublk loop: `kublk add -t loop -q N -f` the same file (buffered). "
          "I/O scheduler: none everywhere.", "")
        try:
            with open(os.path.join(self.res, "devices.md")) as f:
                w(*f.read().splitlines())
        except OSError:
            pass

        self.fio_section()
        self.recovery_section()
        self.beyond_section()
        self.idle_section()
        self.ref_section()

        w("", "## Timeline of a crash", "")
        if tl_png:
            e, st = tl
            w(f"![timeline]({tl_png})", "",
              f"QUIESCED {(e['quiesced'] - e['kill']) * 1e3:.1f} ms and LIVE "
              f"{(e['live'] - e['kill']) * 1e3:.1f} ms after the kill (START → LIVE "
              f"{e['start_live']:.1f} ms); longest gap without completions {st['stall']:.0f} ms "
              f"(from {st['from']:.0f} to {st['to']:.0f} ms); first completion "
              f"{st['first_after_live']:.0f} ms after LIVE; longest I/O latency {st['maxlat']:.0f} ms. "
              "Data: plots/timeline.dat, timeline/lat.log.gz (fio's per-I/O log), timeline/events.tsv.")
        elif tl:
            w("The timeline plot failed: " + "; ".join(self.notes))
        else:
            w("No timeline (part not run or failed).")

        obs = self.observations()
        if obs:
            w("", "## Where the time goes (measured)", "", *[f"- {o}" for o in obs])
        if self.notes:
            w("", "## Problems", "", *[f"- {n}" for n in self.notes])
        w("", "## Files", "",
          "- `fio/r<round>.fio`, `fio/r<round>.json`: the round's fio job file and raw output "
          "(one section `WORKLOAD@CONTENDER` per run, in the order they ran); "
          "`fio/logs/r<round>/`: fio's IOPS logs (epoch ms), which date each run; "
          "`fio/cpu.txt`: /proc/stat and server CPU samples (10 Hz, see bench-cpustat.c); "
          "`fio/servers.txt`: server pids",
          "- `recovery/busy.tsv`, `recovery/idle.tsv`: cycle, kill, QUIESCED and LIVE "
          "(epoch s), START→LIVE ms (kublk), wait-state ms; `busy-stall.tsv`: stall per "
          "cycle; `standby.tsv`, `standby-stall.tsv`: the same for `recover --standby`; "
          "`busy-lat.log.gz`: fio's per-I/O log (epoch ms, latency ns, ...); `busy-fio.json`",
          "- `beyond/handover.tsv`, `beyond/selfrec.tsv`: rows as recovery/busy.tsv (QUIESCE "
          "in the place of the kill for a handover); `failio.tsv`: cycle, kill, FAIL_IO seen, "
          "first EIO, LIVE; `deadline.tsv`: cycle, kill, EIO; `*-lat.log.gz`, `*-fio.json`: fio's",
          "- `timeline/`: fio's per-I/O log and JSON, the events; `plots/*.dat`: plotted data",
          "- `idle/idle.tsv`: state, window ms, busy CPU ms, context switches, interrupts, "
          "trace events, ublk events, server context switches",
          "- `bench.env`: knobs and versions; `output.log`: the run's log")
        with open(os.path.join(self.res, "report.md"), "w") as f:
            f.write("\n".join(self.md) + "\n")
        self.print_summary()

    def target_rows(self):
        return (self.ratio_target_rows() + self.recovery_target_rows() +
                self.beyond_target_rows() + self.idle_target_rows() + self.ref_target_rows())

    def print_summary(self):
        def med(wl, c):
            t = self.stat(wl, c, "iops")
            return si(t[1]) if t else "–"

        for c in CONTENDERS:
            if not any(k[1] == c for k in self.runs):
                continue
            s = f"bench: {LABEL[c]:<9} 4k rand r/w IOPS (1q) " + ", ".join(
                f"{d} {med(f'4k-randread-{d}-1q', c)}/{med(f'4k-randwrite-{d}-1q', c)}"
                for d in ("qd1", "qd32", "qd128b"))
            sr = self.stat("128k-read-qd32-1q", c, "bw", 1 / 1048576)
            sw = self.stat("128k-write-qd32-1q", c, "bw", 1 / 1048576)
            if sr and sw:
                s += f"; 128k seq r/w {sr[1]:.0f}/{sw[1]:.0f} MiB/s"
            for a, b in PAIRS:
                if c != a:
                    continue
                rs = []
                for d in ("qd1", "qd32", "qd128b"):
                    vals = [self.ratio(f"4k-{rw}-{d}-{q}q", a, b)
                            for rw in ("randread", "randwrite") for q in (1, 2)]
                    vals = [v[1] for v in vals if v]
                    if vals:
                        rs.append(f"{d} {statistics.median(vals):.2f}")
                if rs:
                    s += f"; ratio to {LABEL[b]} " + " ".join(rs)
            print(s)
        if self.busy or self.idle:
            b, i = rec_stats(self.busy), rec_stats(self.idle)
            st = mmm([s["stall"] for s in self.busy_stall])

            def f(t):
                return f"{t[1]:.0f} [{t[0]:.0f}-{t[2]:.0f}]" if t else "-"
            print(f"bench: recovery  busy: kill->QUIESCED {f(b['kq'])} ms, START->LIVE {f(b['sl'])} ms, "
                  f"I/O stall {f(st)} ms; idle: kill->QUIESCED {f(i['kq'])} ms, START->LIVE "
                  f"{f(i['sl'])} ms (median [min-max])")
            if self.standby:
                sb = rec_stats(self.standby)
                print(f"bench: standby   busy, recover --standby: kill->QUIESCED {f(sb['kq'])} ms, "
                      f"START->LIVE {f(sb['sl'])} ms, I/O stall "
                      f"{f(mmm([s['stall'] for s in self.standby_stall]))} ms")
        if self.idle_rows:
            print("bench: idle      " + "; ".join(
                f"{st}: {r['busy_ms_s']:.1f} ms/s CPU, {r['ctxt_s']:.0f} "
                f"switches/s, {count(r['ublk_events'])} ublk events"
                for st, r in self.idle_rows.items()))
        self.ref_summary()
        tm = self.target_rows()
        if tm:
            n = sum(1 for r in tm if r[4].startswith("✅"))
            print(f"bench: targets   {n} of {len(tm)} met (report.md has them all)")


def main(argv):
    if len(argv) == 3 and argv[1] == "--report":
        Report(argv[2]).run()
        return 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))

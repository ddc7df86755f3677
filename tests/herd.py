#!/usr/bin/env python3
"""Many thin clients at once: the driver of tests/integration/herd.sh and
bench/herd.

herd.py DIR N [--warm K] [--restart] [--json FILE]

Run as root in a private mount namespace whose DIR (a tmpfs) holds srv/
with an image a user h001..hN (homeport mkhome), the users known to this
namespace's /etc/passwd.  It makes a server network namespace (a bridge,
10.213.0.1/16) and N client network namespaces, each with a veth to the
bridge (10.213.x.y/16), an agent each with its own run_dir, config, host
name (thin001...) and mount namespace; one nbdkit (file plugin on DIR/srv)
in the server namespace.  The addresses exist only inside these
namespaces.  Then:

  1. every agent starts at the same moment (they wait on one lock);
     measured: time from the start to each agent ready (pid file) and to
     its warm pool full (RUN_DIR/warm), the boot probes' connect and
     handshake times (from the agents' logs), the server's established
     connections every 100 ms and every SYN it receives (tcpdump);
  2. every user logs in at once through `homeport pam` (account, then
     open_session): login times, and the home mounted in its agent's mount
     namespace; the agents' RSS;
  3. with --restart: 7 s later (the homes' journals committed), nbdkit killed
     and started again 2 s after: the SYNs per second from the kill, and
     the time until every warm pool is full again.

Prints a summary; --json FILE gets the figures.  Everything it started
(namespaces, processes, mounts in the agents' namespaces) is gone when it
exits, on every path.
"""
import json
import os
import resource
import signal
import subprocess
import sys
import threading
import time

HOMEPORT = os.environ.get("HOMEPORT", "build/homeport")
PORT = 10809
HOME_CONNS = 4  # [nbd] connections of each agent's home (the default)
SERVER_IP = "10.213.0.1"
BRIDGE = "br0"


def parse_args(argv):
    a = {"dir": argv[1], "n": int(argv[2]), "warm": 2, "restart": False, "json": None}
    i = 3
    while i < len(argv):
        if argv[i] == "--warm":
            a["warm"] = int(argv[i + 1])
            i += 1
        elif argv[i] == "--restart":
            a["restart"] = True
        elif argv[i] == "--json":
            a["json"] = argv[i + 1]
            i += 1
        else:
            sys.exit("herd.py: unknown argument " + argv[i])
        i += 1
    return a


def pct(values, p):
    """The p-th percentile (nearest rank) of values, or None."""
    if not values:
        return None
    v = sorted(values)
    k = max(0, min(len(v) - 1, int(round(p / 100.0 * len(v) + 0.5)) - 1))
    return v[k]


def ip_batch(lines, ns=None):
    subprocess.run(["ip"] + (["-n", ns] if ns else []) + ["-batch", "-"],
                   input="\n".join(lines) + "\n", text=True, check=True)


def client_ip(i):
    return "10.213.%d.%d" % (1 + i // 250, 1 + i % 250)


class Herd:
    def __init__(self, a):
        self.a = a
        self.dir = a["dir"]
        self.n = a["n"]
        self.prefix = "hp%d" % os.getpid()
        self.sns = self.prefix + "s"
        self.netns = []
        self.procs = []  # (name, Popen) to kill at the end
        self.agents = []
        self.nbdkit = None
        self.res = {"agents": self.n, "warm_connections": a["warm"]}
        self.samples = []  # (t, established)
        self.mntns = []  # the agents' mount namespaces, held open (cleanup())
        self.stop_sampling = threading.Event()

    # --- network -----------------------------------------------------------------
    def make_network(self):
        self.netns.append(self.sns)
        cmds = ["netns add " + self.sns]
        for i in range(self.n):
            ns = "%sa%d" % (self.prefix, i)
            self.netns.append(ns)
            cmds.append("netns add " + ns)
        ip_batch(cmds)
        s = self.sns
        ip_batch(["link add eth0 netns %sa%d type veth peer name v%d netns %s" % (self.prefix, i, i, s)
                  for i in range(self.n)])
        cmds = ["link set lo up", "link add %s type bridge" % BRIDGE,
                "addr add %s/16 dev %s" % (SERVER_IP, BRIDGE), "link set %s up" % BRIDGE]
        for i in range(self.n):
            cmds += ["link set v%d master %s" % (i, BRIDGE), "link set v%d up" % i]
        ip_batch(cmds, s)
        for i in range(self.n):
            ip_batch(["link set lo up", "addr add %s/16 dev eth0" % client_ip(i), "link set eth0 up"],
                     "%sa%d" % (self.prefix, i))

    def in_server(self, argv):
        return ["ip", "netns", "exec", self.sns] + argv

    # --- the server ----------------------------------------------------------------
    def start_nbdkit(self):
        def more_fds():
            hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        log = open(os.path.join(self.dir, "nbdkit.log"), "a")
        self.nbdkit = subprocess.Popen(
            self.in_server(["nbdkit", "-f", "-i", SERVER_IP, "-p", str(PORT), "file",
                            "dir=" + os.path.join(self.dir, "srv")]),
            stdout=log, stderr=log, preexec_fn=more_fds)
        self.procs.append(("nbdkit", self.nbdkit))
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.count_established(listening=True):
                return
            time.sleep(0.05)
        raise RuntimeError("nbdkit did not listen on %s:%d" % (SERVER_IP, PORT))

    def count_established(self, listening=False):
        """Established connections to the NBD port (or: is it listening),
        from the server namespace's /proc/net/tcp, read through nbdkit."""
        want = "0A" if listening else "01"
        n = 0
        try:
            with open("/proc/%d/net/tcp" % self.nbdkit.pid) as f:
                next(f)
                for line in f:
                    p = line.split()
                    if p[3] == want and int(p[1].split(":")[1], 16) == PORT:
                        n += 1
        except (OSError, StopIteration):
            return 0
        return n

    def sampler(self):
        while not self.stop_sampling.is_set():
            self.samples.append((time.monotonic(), self.count_established()))
            time.sleep(0.1)

    def start_tcpdump(self):
        out = open(os.path.join(self.dir, "syn.log"), "w")
        err = open(os.path.join(self.dir, "tcpdump.log"), "w")
        p = subprocess.Popen(self.in_server(
            ["tcpdump", "-i", BRIDGE, "-n", "-l", "-tt", "-Q", "in",
             "tcp dst port %d and tcp[tcpflags] & (tcp-syn|tcp-ack) == tcp-syn" % PORT]),
            stdout=out, stderr=err)
        self.procs.append(("tcpdump", p))
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if "listening on" in open(os.path.join(self.dir, "tcpdump.log")).read():
                return
            time.sleep(0.05)
        raise RuntimeError("tcpdump did not start")

    def syn_times(self, with_source=False):
        """The SYNs seen so far, as CLOCK_REALTIME seconds (and the source
        address)."""
        out = []
        for line in open(os.path.join(self.dir, "syn.log")):
            try:
                w = line.split()
                t = float(w[0])
                out.append((t, w[2].rsplit(".", 1)[0]) if with_source else t)
            except (ValueError, IndexError):
                pass
        return out

    # --- the agents ----------------------------------------------------------------
    def write_conf(self, i):
        d = os.path.join(self.dir, "a%03d" % (i + 1))
        for sub in ("run", "state", "home/profiletemp", "tmp"):
            os.makedirs(os.path.join(d, sub), exist_ok=True)
        conf = os.path.join(d, "homeport.conf")
        with open(conf, "w") as f:
            f.write("""[agent]
run_dir = {d}/run
state_dir = {d}/state
log = stderr
[boot]
staging_dir = {d}/home/profiletemp
home_root = {d}/home
flag_files = {d}/tmp/flag_*
[nbd]
servers = {ip}:{port}
connect_timeout = 30s
warm_connections = {warm}
connections = {home_conns}
[home]
mount_dir = {d}/home/%u
attach = fuse
[session]
kill_grace = 1s
lease = 600s
pam_timeout = 300s
""".format(d=d, ip=SERVER_IP, port=PORT, warm=self.a["warm"], home_conns=HOME_CONNS))
        return d, conf

    def start_agents(self):
        lock = os.path.join(self.dir, "start.lock")
        lf = open(lock, "w")
        import fcntl
        fcntl.flock(lf, fcntl.LOCK_EX)
        for i in range(self.n):
            d, conf = self.write_conf(i)
            ns = "%sa%d" % (self.prefix, i)
            log = open(os.path.join(d, "agent.log"), "w")
            p = subprocess.Popen(
                ["ip", "netns", "exec", ns, "unshare", "--uts", "--mount",
                 "--propagation", "private", "--", "sh", "-c",
                 'hostname "$1" && flock -s "$2" true && exec "$3" -c "$4" -v agent -f',
                 "sh", "thin%03d" % (i + 1), lock, HOMEPORT, conf],
                stdout=log, stderr=log, start_new_session=True)
            self.procs.append(("agent", p))
            self.agents.append({"i": i, "dir": d, "conf": conf, "p": p,
                                "user": "h%03d" % (i + 1)})
        time.sleep(1.0)  # every one of them waiting on the lock (late ones pass at once)
        self.t0 = time.monotonic()
        self.t0_real = time.time()
        fcntl.flock(lf, fcntl.LOCK_UN)
        lf.close()

    def hold_mntns(self, pid):
        """Hold the agent's mount namespace, so that its last reference is
        never dropped by one of its FUSE workers as it exits: that one
        would unmount the home on the loop device on its own FUSE file,
        and wait for itself forever (cleanup())."""
        try:
            self.mntns.append(os.open("/proc/%d/ns/mnt" % pid, os.O_RDONLY | os.O_CLOEXEC))
        except OSError:
            pass

    def warm_ready(self, ag):
        """The ready count of the agent's warm pool (RUN_DIR/warm), or -1."""
        try:
            with open(os.path.join(ag["dir"], "run", "warm")) as f:
                lines = f.read().splitlines()
            return int(lines[1].split("\t")[2])
        except (OSError, IndexError, ValueError):
            return -1

    def wait_ready(self, timeout):
        """Time from the start to each agent's pid file, and to its warm
        pool full."""
        ready, full = {}, {}
        deadline = self.t0 + timeout
        while time.monotonic() < deadline and (len(ready) < self.n or len(full) < self.n):
            now = time.monotonic() - self.t0
            for ag in self.agents:
                i = ag["i"]
                if i not in ready and os.path.exists(os.path.join(ag["dir"], "run", "agent.pid")):
                    ready[i] = now
                    self.hold_mntns(ag["p"].pid)
                if i not in full and self.warm_ready(ag) >= self.a["warm"]:
                    full[i] = now
                if ag["p"].poll() is not None and i not in ready:
                    raise RuntimeError("agent %d exited (%s)" % (i, ag["dir"]))
            time.sleep(0.02)
        return ready, full

    def boot_probes(self):
        """connect and handshake ms of each agent's boot probe (its log)."""
        import re
        conn, hs = [], []
        for ag in self.agents:
            text = open(os.path.join(ag["dir"], "agent.log"), errors="replace").read()
            m = re.search(r"connect ([0-9.]+) ms, handshake ([0-9.]+) ms", text)
            if m:
                conn.append(float(m.group(1)))
                hs.append(float(m.group(2)))
        return conn, hs

    def pam(self, ag, stage):
        env = dict(os.environ, PAM_TYPE=stage, PAM_USER=ag["user"], PAM_SERVICE="login")
        s = time.monotonic()
        r = subprocess.run([HOMEPORT, "-c", ag["conf"], "pam"], env=env, capture_output=True,
                           text=True, timeout=600)
        return r.returncode, time.monotonic() - s, r.stdout + r.stderr

    def logins(self):
        results = [None] * self.n

        def one(ag):
            rc1, t1, o1 = self.pam(ag, "account")
            rc2, t2, o2 = self.pam(ag, "open_session") if rc1 == 0 else (rc1, 0.0, "")
            results[ag["i"]] = {"rc": rc1 or rc2, "account_s": t1, "login_s": t1 + t2,
                                "out": o1 + o2}
        threads = [threading.Thread(target=one, args=(ag,)) for ag in self.agents]
        s = time.monotonic()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        return results, time.monotonic() - s

    def mounted(self, ag):
        home = os.path.join(ag["dir"], "home", ag["user"])
        r = subprocess.run(["nsenter", "-t", str(ag["p"].pid), "-m", "mountpoint", "-q", home])
        return r.returncode == 0

    def rss_kib(self, pid):
        try:
            for line in open("/proc/%d/status" % pid):
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        except OSError:
            pass
        return None

    # --- the restart ---------------------------------------------------------------
    def restart(self, timeout):
        # A restart at an ordinary moment: the homes' journals committed
        # (ext4 commits 5 s after the logins, all at once, which would have
        # every FUSE worker reconnect together) and the warm connections
        # older than the agent's 5 s "young" limit.  (No sync(2): it would
        # wait on every file system of the machine.)
        time.sleep(7.0)
        self.nbdkit.kill()
        self.nbdkit.wait()
        t_kill = time.time()
        m_kill = time.monotonic()
        time.sleep(2.0)
        t_start = time.time()
        self.start_nbdkit()
        s = time.monotonic()
        back = None
        while time.monotonic() - s < timeout:
            if all(self.warm_ready(ag) >= self.a["warm"] for ag in self.agents):
                back = time.monotonic() - s
                break
            time.sleep(0.05)
        time.sleep(1.0)  # the last SYNs reach the log
        by_src = {}
        for t, src in self.syn_times(True):
            if t >= t_kill:
                by_src.setdefault(src, []).append(round(t - t_kill, 2))
        syns = [t for t in self.syn_times() if t >= t_kill]
        per_s = {}
        for t in syns:
            per_s[int(t - t_kill)] = per_s.get(int(t - t_kill), 0) + 1
        # the most SYNs in any 1 s window (sliding, from each SYN)
        syns.sort()
        most, j = 0, 0
        for k in range(len(syns)):
            while syns[k] - syns[j] >= 1.0:
                j += 1
            most = max(most, k - j + 1)
        conns = {}
        for t, c in self.samples:
            if t >= m_kill:
                conns[int(t - m_kill)] = c
        return {"by_source": by_src, "down_s": t_start - t_kill,
                "connections_at_s": [conns.get(k) for k in range(max(conns) + 1)] if conns else [], "pools_back_s": back, "syns": len(syns),
                "syns_max_1s": most,
                "syns_per_s": [per_s.get(k, 0) for k in range(max(per_s) + 1)] if per_s else []}

    # --- cleanup -----------------------------------------------------------------------
    def cleanup(self):
        self.stop_sampling.set()
        for ag in self.agents:  # homes: unmount in each agent's namespace, kill the workers
            if ag["p"].poll() is None:
                try:
                    subprocess.run(["nsenter", "-t", str(ag["p"].pid), "-m", HOMEPORT, "-c",
                                    ag["conf"], "umount", ag["user"]], capture_output=True,
                                   timeout=60)
                except subprocess.TimeoutExpired:
                    pass
        for _, p in self.procs:
            if p.poll() is None:
                try:
                    os.killpg(p.pid, signal.SIGKILL) if _ == "agent" else p.kill()
                except OSError:
                    pass
        for _, p in self.procs:
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                pass
        # workers run in sessions of their own: kill what is left of each
        # run_dir's records, and see them gone
        workers = []
        for ag in self.agents:
            hd = os.path.join(ag["dir"], "run", "homes")
            for f in os.listdir(hd) if os.path.isdir(hd) else []:
                for line in open(os.path.join(hd, f), errors="replace"):
                    if line.startswith("worker="):
                        try:
                            os.kill(int(line[7:]), signal.SIGKILL)
                            workers.append(int(line[7:]))
                        except (OSError, ValueError):
                            pass
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and any(os.path.exists("/proc/%d" % w) for w in workers):
            time.sleep(0.1)
        for fd in self.mntns:  # now the homes go, here: their workers are gone
            os.close(fd)
        if self.netns:
            subprocess.run(["ip", "-batch", "-"], input="".join(
                "netns del %s\n" % ns for ns in self.netns), text=True, capture_output=True)


def summarize(h, res, ready, full, probes, logins, wave_s, rss):
    n = h.n
    res["ready_s"] = {"max": max(ready.values()) if ready else None, "count": len(ready),
                      "p50": pct(list(ready.values()), 50)}
    res["warm_full_s"] = {"max": max(full.values()) if full else None, "count": len(full)}
    conn, hs = probes
    res["probe_ms"] = {"count": len(hs), "connect_p50": pct(conn, 50), "connect_p99": pct(conn, 99),
                       "handshake_p50": pct(hs, 50), "handshake_p90": pct(hs, 90),
                       "handshake_p99": pct(hs, 99), "handshake_max": max(hs) if hs else None}
    ok = [r for r in logins if r and r["rc"] == 0]
    lt = [r["login_s"] * 1000 for r in ok]
    res["logins"] = {"ok": len(ok), "wave_s": wave_s, "p50_ms": pct(lt, 50), "p99_ms": pct(lt, 99),
                     "max_ms": max(lt) if lt else None,
                     "failed": [(i, r["out"][-300:]) for i, r in enumerate(logins)
                                if not r or r["rc"] != 0][:5]}
    kib = [v for v in rss if v]
    res["agent_rss_kib"] = {"p50": pct(kib, 50), "max": max(kib) if kib else None,
                            "sum": sum(kib)}
    est = [c for _, c in h.samples]
    res["server_connections"] = {"max": max(est) if est else 0,
                                 "bound": n * (h.a["warm"] + HOME_CONNS)}
    # the timeline: established connections at each second since the start
    tl = {}
    for t, c in h.samples:
        tl[int(t - h.t0)] = c
    res["connections_at_s"] = [tl.get(k) for k in range(max(tl) + 1)] if tl else []
    syns = sorted(t - h.t0_real for t in h.syn_times())
    per_s = {}
    for t in syns:
        if t >= 0:
            per_s[int(t)] = per_s.get(int(t), 0) + 1
    res["boot_syns_per_s"] = [per_s.get(k, 0) for k in range(max(per_s) + 1)] if per_s else []


def fmt(v, unit=""):
    return "-" if v is None else ("%.1f%s" % (v, unit) if isinstance(v, float) else "%s%s" % (v, unit))


def ms(s):
    return None if s is None else s * 1000.0


def report(res):
    n = res["agents"]
    print("agents ready (pid file): %d/%d, p50 %s ms, all within %s ms" % (
        res["ready_s"]["count"], n, fmt(ms(res["ready_s"]["p50"])), fmt(ms(res["ready_s"]["max"]))))
    print("warm pools full (%d each): %d/%d, all within %s s" % (
        res["warm_connections"], res["warm_full_s"]["count"], n, fmt(res["warm_full_s"]["max"])))
    p = res["probe_ms"]
    print("boot probes (%d): connect p50 %s ms p99 %s ms; handshake p50 %s ms p90 %s ms p99 %s ms "
          "max %s ms" % (p["count"], fmt(p["connect_p50"]), fmt(p["connect_p99"]),
                         fmt(p["handshake_p50"]), fmt(p["handshake_p90"]), fmt(p["handshake_p99"]),
                         fmt(p["handshake_max"])))
    print("SYNs to the server each second from the start: %s" % res["boot_syns_per_s"])
    print("server connections each second (established): %s" % res["connections_at_s"])
    print("server connections at most: %d (bound: agents x (warm + %d for a home) = %d)" % (
        res["server_connections"]["max"], HOME_CONNS, res["server_connections"]["bound"]))
    lg = res["logins"]
    print("logins at once (account + open_session): %d/%d ok in %s s; p50 %s ms, p99 %s ms, max %s ms"
          % (lg["ok"], n, fmt(lg["wave_s"]), fmt(lg["p50_ms"]), fmt(lg["p99_ms"]),
             fmt(lg["max_ms"])))
    for i, out in lg["failed"]:
        print("  failed: agent %d: %s" % (i + 1, out.strip().replace("\n", " | ")))
    r = res["agent_rss_kib"]
    print("agents' RSS after the logins: p50 %s KiB, max %s KiB, all %s MiB" % (
        fmt(r["p50"]), fmt(r["max"]), fmt(r["sum"] / 1024.0 if r["sum"] else None)))
    if "restart" in res:
        rs = res["restart"]
        print("server restart (down %.1f s): %d SYNs; per second from the kill: %s; at most %d in "
              "any 1 s; every warm pool full again %s s after the restart" % (
                  rs["down_s"], rs["syns"], rs["syns_per_s"], rs["syns_max_1s"],
                  fmt(rs["pools_back_s"])))
        print("server connections each second from the kill (established): %s" %
              rs["connections_at_s"])


def main():
    a = parse_args(sys.argv)
    h = Herd(a)
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, lambda s, f: sys.exit(128 + s))
    res = h.res
    try:
        res["netns_prefix"] = h.prefix  # every namespace made is named PREFIXs or PREFIXaN
        h.make_network()
        h.start_tcpdump()
        h.start_nbdkit()
        threading.Thread(target=h.sampler, daemon=True).start()
        h.start_agents()
        ready, full = h.wait_ready(120 + a["n"])
        probes = h.boot_probes()
        logins, wave_s = h.logins()
        res["mounted"] = sum(1 for ag in h.agents if h.mounted(ag))
        rss = [h.rss_kib(ag["p"].pid) for ag in h.agents]
        summarize(h, res, ready, full, probes, logins, wave_s, rss)
        if a["restart"]:
            res["restart"] = h.restart(120 + a["n"])
    finally:
        h.cleanup()
    report(res)
    if a["json"]:
        with open(a["json"], "w") as f:
            json.dump(res, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())

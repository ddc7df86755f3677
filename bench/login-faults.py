#!/usr/bin/env python3
"""bench/login-faults.py TRACE AGENT_BIN RUNS: the page faults and forks of
homeport's PAM stages, from a tracefs dump (bench/login-faults makes it).

The trace holds sched_process_exec/fork/exit and exceptions:page_fault_user
events of a bench/login --quick run.  The execs of AGENT_BIN (a path's
end: the bench's copy, ".../bin/homeport"): the agent is the first that
lives a second or more; after it, the PAM clients, an untimed first login,
then RUNS (account, open_session, close_session) triples, homeport's single
logins.  For each of account and open_session it prints the medians, per
process role, of the user page faults taken between the client's exec and
its exit, by kind (the x86 error code):

  exec   instruction fetch of a page not mapped (text)
  read   read of a page not mapped (file data, or the shared zero page)
  new    write to a page not mapped (a fresh zero-filled page)
  cow    write to a page mapped read-only (copy-on-write after a fork)
"""
import re
import statistics
import sys

EVENT = re.compile(r'\s*(.+?)-(\d+)\s+\[\d+\]\s+\S+\s+([\d.]+): (\w+): (.*)')
KIND = {0x14: 'exec', 0x15: 'exec', 0x4: 'read', 0x5: 'read', 0x6: 'new', 0x7: 'cow'}
KINDS = ('exec', 'read', 'new', 'cow')
ROLES = ('client', 'agent', 'job', 'worker', 'other')


def load(path):
    events = []
    with open(path, errors='replace') as f:
        for line in f:
            m = EVENT.match(line)
            if m:
                events.append((int(m.group(2)), float(m.group(3)), m.group(4), m.group(5)))
    return events


def execs(events, binary):
    """(pid, exec index, exit index or None) of each exec of binary, in order."""
    out, open_ = [], {}
    for i, (pid, _t, name, rest) in enumerate(events):
        if name == 'sched_process_exec' and rest.split()[0].endswith(binary):
            open_[pid] = len(out)
            out.append([pid, i, None])
        elif name == 'sched_process_exit' and pid in open_:
            out[open_.pop(pid)][2] = i
    return out


def count(events, client, lo, hi, agent):
    """Faults by role and kind between lo and hi, and the stage's ms."""
    role = {client: 'client', agent: 'agent'}
    faults = {r: dict.fromkeys(KINDS, 0) for r in ROLES}
    forks = 0
    for pid, _t, name, rest in events[lo:hi + 1]:
        if name == 'sched_process_fork':
            parent = int(re.search(r' pid=(\d+)', rest).group(1))
            child = int(re.search(r'child_pid=(\d+)', rest).group(1))
            if parent == agent:
                role[child], forks = 'job', forks + 1
            elif role.get(parent) == 'job':
                role[child], forks = 'worker', forks + 1
            elif role.get(parent) == 'worker':
                role[child] = 'worker'  # its threads
        elif name == 'page_fault_user':
            code = int(re.search(r'error_code=0x([0-9a-f]+)', rest).group(1), 16)
            kind = KIND.get(code & 0x17)
            if kind:
                faults[role.get(pid, 'other')][kind] += 1
    return faults, forks, (events[hi][1] - events[lo][1]) * 1000


def main():
    path, binary, runs = sys.argv[1], sys.argv[2], int(sys.argv[3])
    events = load(path)
    all_execs = execs(events, binary)
    # the agent: the first exec that outlives a second (or the trace)
    agent_at = next((k for k, (_p, lo, hi) in enumerate(all_execs)
                     if hi is None or events[hi][1] - events[lo][1] >= 1.0), None)
    if agent_at is None:
        sys.exit('login-faults: no agent in the trace')
    agent = all_execs[agent_at][0]
    # its clients (and a --version or two): the first account is the first
    # stage whose job starts a worker (two forks); it is the untimed
    # warm-up, the runs come after its triple
    after = [e for e in all_execs[agent_at + 1:] if e[2] is not None]
    first = next((k for k, (pid, lo, hi) in enumerate(after)
                  if count(events, pid, lo, hi, agent)[1] == 2), None)
    if first is None:
        sys.exit('login-faults: no account stage (a job that starts a worker) in the trace')
    clients = after[first + 3:first + 3 + 3 * runs]
    if len(clients) < 3 * runs:
        sys.exit(f'login-faults: {len(clients)} PAM clients in the trace, not {3 * runs}')
    for which, name in ((0, 'account'), (1, 'open_session')):
        per = [count(events, pid, lo, hi, agent) for pid, lo, hi in clients[which::3]]
        ms = statistics.median(p[2] for p in per)
        forks = statistics.median(p[1] for p in per)
        print(f'{name}: {len(per)} stages, median {ms:.2f} ms (client exec to exit, traced), '
              f'{forks:.0f} forks by the agent and its job')
        total = 0
        for r in ROLES:
            med = {k: statistics.median(p[0][r][k] for p in per) for k in KINDS}
            n = sum(med.values())
            total += n
            if n:
                print(f'  {r:<7} {n:5.0f} faults: ' +
                      ', '.join(f'{k} {med[k]:.0f}' for k in KINDS))
        print(f'  all     {total:5.0f} faults (sum of the medians)')


if __name__ == '__main__':
    main()

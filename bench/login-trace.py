#!/usr/bin/env python3
"""bench/login-trace.py TRACE STAGE N MIN_US: the timeline of one PAM
stage of homeport from a tracefs dump (bench/login-trace makes it).

The trace holds sched_process_exec/fork/exit, sched_switch/wakeup,
raw_syscalls sys_enter/sys_exit and fuse_request_send/end events of a
bench/login --quick run.  The execs of a ".../bin/homeport": the agent is
the first that lives a second or more; the PAM clients follow.  An
account is a client during which the agent's child (the job) forks the
worker, which is still there at the client's exit (a logout's job forks
a short-lived probe), or mounts (on a spare worker the agent started
before: a logout's job does not mount); the open_session is the client
after it.  The
first account is the untimed warm-up and is skipped; N counts from the
one after it.

Each line: microseconds from the client's exec, [CPU], then a syscall of
a process of the stage (client, agent, job, worker or spare; "+" marks a thread or
child of the one before) with its duration and result, or a switch
(prev(state) => next), a wake-up, a fork, or a FUSE request.  Syscalls
are printed at their start, once they have ended; MIN_US leaves out the
shorter ones.
"""
import re
import sys

EVENT = re.compile(r'\s*(.+?)-(\d+)\s+\[(\d+)\]\s+\S+\s+([\d.]+): (\w+): (.*)')
UNISTD = '/usr/include/x86_64-linux-gnu/asm/unistd_64.h'


def syscall_names():
    names = {}
    try:
        with open(UNISTD) as f:
            for line in f:
                m = re.match(r'#define __NR_(\w+) (\d+)', line)
                if m:
                    names[int(m.group(2))] = m.group(1)
    except OSError:
        pass  # numbers then
    return names


def load(path):
    with open(path, errors='replace') as f:
        return [(m.group(1), int(m.group(2)), int(m.group(3)), float(m.group(4)), m.group(5),
                 m.group(6)) for m in map(EVENT.match, f) if m]


def fork_pids(rest):
    return (int(re.search(r' pid=(\d+)', rest).group(1)),
            int(re.search(r'child_pid=(\d+)', rest).group(1)))


def clients(events):
    """(pid, exec index, exit index) of each exec of homeport, and the agent's pid."""
    out, open_ = [], {}
    for i, e in enumerate(events):
        if e[4] == 'sched_process_exec' and e[5].split()[0].endswith('/bin/homeport'):
            open_[e[1]] = len(out)
            out.append([e[1], i, None])
        elif e[4] == 'sched_process_exit' and e[1] in open_:
            out[open_.pop(e[1])][2] = i
    k = next((k for k, (_p, lo, hi) in enumerate(out)
              if hi is None or events[hi][3] - events[lo][3] >= 1.0), None)
    if k is None:
        sys.exit('login-trace: no agent in the trace')
    return [c for c in out[k + 1:] if c[2] is not None], out[k][0]


def prepares(events, lo, hi, agent, mount_nr):
    """Whether, during the client [lo, hi], the agent's child (the job)
    prepares a home: it forks a process that is still there at the
    client's exit (the home's worker), or it mounts (a home on a spare
    worker started before).  A logout's job forks too (its probe for the
    user's processes), but that child has exited by then, and it does not
    mount."""
    jobs, kept, mounts = set(), set(), False
    for e in events[lo:hi + 1]:
        if e[4] == 'sched_process_fork':
            parent, child = fork_pids(e[5])
            if parent == agent:
                jobs.add(child)
            elif parent in jobs:
                kept.add(child)
        elif e[4] == 'sched_process_exit':
            kept.discard(e[1])
        elif e[4] == 'sys_enter' and e[1] in jobs and int(e[5].split()[1]) == mount_nr:
            mounts = True
    return bool(kept) or mounts


def spares_before(events, lo, agent):
    """The roles of what the agent started before the stage and that may
    serve it: its spare workers ("spare"), their threads and children
    ("spare+")."""
    role = {}
    for e in events[:lo]:
        if e[4] == 'sched_process_fork':
            parent, child = fork_pids(e[5])
            if parent == agent:
                role[child] = 'spare'
            elif parent in role:
                role[child] = 'spare+'
        elif e[4] == 'sched_process_exit':
            role.pop(e[1], None)
    return role


def main():
    path, stage, n, min_us = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
    events = load(path)
    names = syscall_names()
    cl, agent = clients(events)
    mount_nr = next((nr for nr, name in names.items() if name == 'mount'), 165)
    accounts = [k for k, (_p, lo, hi) in enumerate(cl)
                if prepares(events, lo, hi, agent, mount_nr)]
    picks = [cl[k + (1 if stage == 'open' else 0)] for k in accounts[1:] if k + 1 < len(cl)]
    if n >= len(picks):
        sys.exit(f'login-trace: {len(picks)} {stage} stages in the trace, no number {n}')
    pid, lo, hi = picks[n]
    t0 = events[lo][3]
    role = spares_before(events, lo, agent)
    role.update({pid: 'client', agent: 'agent'})
    print(f'# {stage} {n}: client pid {pid}, {(events[hi][3] - t0) * 1e6:.0f} us from its exec '
          'to its exit (traced)')
    pending = {}
    for comm, p, cpu, t, name, rest in events[lo:hi + 1]:
        us = (t - t0) * 1e6
        who = role.get(p)
        if name == 'sched_process_fork':
            parent, child = fork_pids(rest)
            if parent in role:
                role[child] = {'agent': 'job', 'job': 'worker'}.get(role[parent], role[parent] + '+')
                print(f'{us:8.0f} [{cpu}] {role[parent]} forks {child} ({role[child]})')
        elif name == 'sys_enter':
            if who:
                pending[p] = (t, int(rest.split()[1]))
        elif name == 'sys_exit':
            if who and p in pending:
                ts, nr = pending.pop(p)
                d = (t - ts) * 1e6
                if d >= min_us:
                    print(f'{(ts - t0) * 1e6:8.0f} [{cpu}] {who:<8} {names.get(nr, nr):<16} '
                          f'{d:6.0f} us -> {rest.split("=")[-1].strip()}')
        elif name == 'sched_switch':
            m = re.search(r'prev_comm=(.*) prev_pid=(\d+) .*prev_state=(\S+) ==> '
                          r'next_comm=(.*) next_pid=(\d+)', rest)
            a = role.get(int(m.group(2)), f'{m.group(1)}:{m.group(2)}')
            b = role.get(int(m.group(5)), f'{m.group(4)}:{m.group(5)}')
            print(f'{us:8.0f} [{cpu}] switch {a}({m.group(3)}) => {b}')
        elif name == 'sched_wakeup':
            m = re.search(r'comm=(.*) pid=(\d+)', rest)
            woken = int(m.group(2))
            if woken in role or who:
                print(f'{us:8.0f} [{cpu}] {who or comm + ":" + str(p)} wakes '
                      f'{role.get(woken, m.group(1) + ":" + m.group(2))}')
        elif name.startswith('fuse_request'):
            print(f'{us:8.0f} [{cpu}] {who or comm + ":" + str(p)} {name} {rest[:70]}')
        elif who and name in ('sched_process_exec', 'sched_process_exit'):
            print(f'{us:8.0f} [{cpu}] {who} {name[14:]}')


if __name__ == '__main__':
    main()

"""Processes and time in the lab: every program it runs starts in its own
process group and is stopped on exit, on failure and on a signal; timers
fire the events of a run (a kill, a drain); one log line format.
"""

import os
import signal
import subprocess
import sys
import threading
import time

started = []  # every subprocess.Popen this run started
timers = []  # every threading.Timer this run started
# Set on SIGTERM/SIGHUP and at the end of a run: drivers stop sending and return.
stop_requested = threading.Event()


def log(*args):
    print("[lab %s]" % time.strftime("%H:%M:%S"), *args, file=sys.stderr, flush=True)


def start(cmd, logfile, cwd=None):
    out = open(logfile, "ab")
    p = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                         cwd=cwd, start_new_session=True)
    out.close()
    started.append(p)
    return p


def stop(p, sig=signal.SIGTERM, wait=5.0):
    """Signals p's process group, waits, and kills the group if it lingers."""
    if p is None or p.poll() is not None:
        return
    try:
        os.killpg(p.pid, sig)
    except ProcessLookupError:
        return
    try:
        p.wait(timeout=wait)
    except subprocess.TimeoutExpired:
        try:
            os.killpg(p.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        p.wait(timeout=5)


def stop_many(ps):
    """Signals all first, then waits for each: stopping them in turn would
    add up their shutdown times."""
    for p in ps:
        if p is not None and p.poll() is None:
            try:
                os.killpg(p.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
    for p in ps:
        stop(p, wait=5.0)


def stop_all():
    stop_many([p for p in started if p.poll() is None])
    # process groups may hold children whose leader already exited
    for p in started:
        try:
            os.killpg(p.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass


def timer(delay, fn, *args):
    t = threading.Timer(max(0.0, delay), fn, args)
    t.daemon = True
    timers.append(t)
    t.start()
    return t


def request_stop():
    stop_requested.set()
    for t in timers:
        t.cancel()


def on_signal(signum, frame):
    if stop_requested.is_set():
        return
    stop_requested.set()
    raise KeyboardInterrupt("signal %d" % signum)


def handle_signals():
    """SIGTERM and SIGHUP end the run like Ctrl-C: cleanly, stopping everything."""
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGHUP, on_signal)

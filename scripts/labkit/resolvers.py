"""The four recursive resolvers, each run in the foreground on its own
address with its own configuration in a fresh directory, iterating from the
lab's private root: Unbound, BIND 9, PowerDNS Recursor and Knot Resolver.
Also the versions of the DNS software a run used.
"""

import os
import re
import shutil
import subprocess
import time

from .dnswire import ask
from .procs import start, stop
from .topology import PARENT_ADDR, RESOLVER_ADDRS, root_hints


class Resolver:
    name = ""  # short name: --resolvers, results.json
    label = ""  # name in the report
    binary = ""

    def __init__(self, work, addr=None, instance=""):
        """addr: another address than the family's usual one; the instance
        then also sends its queries from it (so that the closed-loop lab's
        relays can tell the instances apart). instance: a suffix that keeps
        several instances' directories apart."""
        self.work = work
        self.addr = addr or RESOLVER_ADDRS[self.name]
        self.source = addr  # outgoing address, None: the system's choice
        self.instance = instance
        self.proc = None
        self.dir = None
        self.runs = 0
        # The private root's DS record: validate from it (see dnssec.py);
        # None: no validation.
        self.anchor = None
        # False: while validating, do not answer names from the validated
        # cache's NSEC and wildcard records (RFC 8198) where the resolver
        # has a setting for it; every name then reaches an authoritative.
        self.synthesis = True

    def available(self):
        return shutil.which(self.binary) or os.path.exists("/usr/sbin/" + self.binary)

    def start(self):
        """A fresh instance: new directory, empty cache."""
        self.runs += 1
        self.dir = os.path.join(self.work, "res", "%s%s-%d" % (self.name, self.instance, self.runs))
        os.makedirs(self.dir)
        shutil.copy(root_hints(self.work), self.dir)
        cmd = self.configure()
        self.proc = start(cmd, os.path.join(self.dir, "stdout.log"), cwd=self.dir)

    def configure(self):
        """Writes the configuration into self.dir; returns the command line."""
        raise NotImplementedError

    def wait_ready(self, limit=20.0):
        end = time.monotonic() + limit
        while time.monotonic() < end:
            if self.proc.poll() is not None:
                return False
            r = ask(self.addr, "ns.lab", timeout=0.5)
            if r and r["status"] == "ok":
                return True
            time.sleep(0.2)
        return False

    def stop(self):
        stop(self.proc)
        self.proc = None

    def log_tail(self):
        try:
            with open(os.path.join(self.dir, "stdout.log"), errors="replace") as f:
                return f.read()[-1500:]
        except OSError:
            return ""


class Unbound(Resolver):
    name, label, binary = "unbound", "Unbound", "unbound"

    def configure(self):
        conf = f"""server:
    interface: {self.addr}
    port: 53
    do-ip6: no
    username: ""
    chroot: ""
    directory: "{self.dir}"
    pidfile: "{self.dir}/unbound.pid"
    use-syslog: no
    logfile: ""
    verbosity: 1
    num-threads: 1
    access-control: 127.0.0.0/8 allow
    root-hints: "{self.dir}/root.hints"
    do-not-query-localhost: no
    module-config: "{'validator iterator' if self.anchor else 'iterator'}"
{f'    trust-anchor: "{self.anchor}"' if self.anchor else ''}
{'    aggressive-nsec: no' if self.anchor and not self.synthesis else ''}
{"    outgoing-interface: %s" % self.source if self.source else ""}
remote-control:
    control-enable: no
"""
        path = os.path.join(self.dir, "unbound.conf")
        with open(path, "w") as f:
            f.write(conf)
        return ["unbound", "-d", "-c", path]


class Bind(Resolver):
    name, label, binary = "bind", "BIND 9", "named"

    def configure(self):
        conf = f"""options {{
    directory "{self.dir}";
    pid-file "{self.dir}/named.pid";
    session-keyfile "{self.dir}/session.key";
    managed-keys-directory "{self.dir}";
    listen-on port 53 {{ {self.addr}; }};
    listen-on-v6 {{ none; }};
    recursion yes;
    allow-query {{ any; }};
    allow-recursion {{ any; }};
    dnssec-validation {'yes' if self.anchor else 'no'};
    {'synth-from-dnssec no;' if self.anchor and not self.synthesis else ''}
    notify no;
    querylog no;
    max-cache-size 64m;
    {"query-source address %s;" % self.source if self.source else ""}
}};
controls {{ }};
logging {{
    channel out {{ stderr; severity warning; print-time yes; }};
    category default {{ out; }};
    category lame-servers {{ null; }};
}};
zone "." {{ type hint; file "{self.dir}/root.hints"; }};
"""
        if self.anchor:
            tag, alg, digest_type, digest = self.anchor.split()[-4:]
            conf += f'trust-anchors {{ . static-ds {tag} {alg} {digest_type} "{digest}"; }};\n'
        path = os.path.join(self.dir, "named.conf")
        with open(path, "w") as f:
            f.write(conf)
        return ["named", "-f", "-4", "-n", "1", "-c", path]


class PowerDNS(Resolver):
    name, label, binary = "pdns", "PowerDNS Recursor", "pdns_recursor"

    def configure(self):
        conf = f"""local-address={self.addr}
local-port=53
allow-from=127.0.0.0/8
hint-file={self.dir}/root.hints
dnssec={'validate' if self.anchor else 'off'}
{'aggressive-nsec-cache-size=0' if self.anchor and not self.synthesis else ''}
dont-query=
daemon=no
write-pid=no
socket-dir={self.dir}
threads=1
disable-syslog=yes
loglevel=4
quiet=yes
security-poll-suffix=
{"query-local-address=%s" % self.source if self.source else ""}
"""
        if self.anchor:
            ta = os.path.join(self.dir, "anchor.lua")
            with open(ta, "w") as f:
                f.write('clearTA()\naddTA(".", "%s")\n' % " ".join(self.anchor.split()[-4:]))
            conf += "lua-config-file=%s\n" % ta
        with open(os.path.join(self.dir, "recursor.conf"), "w") as f:
            f.write(conf)
        return ["pdns_recursor", "--config-dir=" + self.dir]


class Knot(Resolver):
    name, label, binary = "kresd", "Knot Resolver", "kresd"

    def configure(self):
        conf = f"""-- lab instance: iterate from the private root on loopback
net.ipv6 = false
net.listen('{self.addr}', 53, {{ kind = 'dns' }})
trust_anchors.remove('.')
{f"trust_anchors.add('{self.anchor}')" if self.anchor else ''}
modules.load('hints > iterate')
hints.root({{ ['ns.lab.'] = '{PARENT_ADDR}' }})
-- the lab's name servers live on 127.0.0.0/8, which kresd skips unless allowed
policy.add(policy.all(policy.FLAGS({{'ALLOW_LOCAL'}})))
cache.size = 32 * MB
log_level('warning')
{"net.outgoing_v4('%s')" % self.source if self.source else ""}
"""
        path = os.path.join(self.dir, "kresd.conf")
        with open(path, "w") as f:
            f.write(conf)
        return ["kresd", "-n", "-c", path, self.dir]


RESOLVERS = [Unbound, Bind, PowerDNS, Knot]


def versions():
    """{program: version} of the installed DNS software."""
    out = {}
    for name, cmd in [("NSD", ["nsd", "-v"]), ("Unbound", ["unbound", "-V"]),
                      ("BIND", ["named", "-v"]), ("PowerDNS Recursor", ["pdns_recursor", "--version"]),
                      ("Knot Resolver", ["kresd", "--version"])]:
        try:
            r = subprocess.run(cmd, capture_output=True, text=True, timeout=5)
        except (OSError, subprocess.TimeoutExpired):
            continue
        m = re.search(r"(\d+\.\d+\.\d+)", r.stdout + r.stderr)
        if m:
            out[name] = m.group(1)
    return out

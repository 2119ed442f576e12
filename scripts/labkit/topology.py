"""Where the lab's parts live and how the servers are started: the
addresses, the zone files and the NSD that serves the private root and the
parent zone, the nginx hosts with the module (and the delaying relays in
front of them), the network namespace and its loopback addresses, and the
nginx build the hosts run.
"""

import json
import os
import signal
import string
import subprocess
import sys
import time
import urllib.request

from . import LAB_D, ROOT
from .dnswire import ask
from .procs import log, start, stop

ZONE = "www.example.com"
PARENT_ADDR = "127.0.0.2"
# The address-move experiment's parent: BIND 9 as example.com's primary,
# accepting RFC 2136 updates of ns1-www.example.com (see addrmove.py).
BIND_PARENT_ADDR = "127.0.0.3"
HOSTS = [  # name, glue address, relay back-end address (distance experiment), status port
    ("host1", "127.0.0.11", "127.0.1.11", 8001),
    ("host2", "127.0.0.12", "127.0.1.12", 8002),
    ("host3", "127.0.0.13", "127.0.1.13", 8003),
]
# an answer's address (glue, or back-end behind a relay) → host index
HOST_OF_ADDR = {addr: i for i, h in enumerate(HOSTS) for addr in (h[1], h[2])}
RESOLVER_ADDRS = {"unbound": "127.0.0.21", "bind": "127.0.0.22", "pdns": "127.0.0.23",
                  "kresd": "127.0.0.24"}

# The hosts' dns_silence unless an experiment sets another. It is always
# written into the configuration, so that the measurements do not change
# meaning when the module's default does.
LAB_SILENCE = "drop"

NETNS_ENV = "DNS_LAB_IN_NETNS"  # set to 1 in the lab's own network namespace


# ---------------------------------------------------------------- parent zone server

def parent_dir(work):
    return os.path.join(work, "nsd")


def root_hints(work):
    """The root hints file every resolver starts from."""
    return os.path.join(parent_dir(work), "root.hints")


SOA = "SOA ns.lab. hostmaster.lab. 1 3600 600 86400 3600"


def example_zone(delegation):
    """The example.com zone file's text: www delegated to the NS names of
    delegation = [(label below example.com, [glue addresses])], each name
    with its A records as glue."""
    lines = ["$TTL 3600", "example.com.  IN %s" % SOA, "example.com.  IN NS ns.lab.",
             "; delegate www to the hosts that run the application"]
    lines += ["www      3600 IN NS %s.example.com." % label for label, _ in delegation]
    lines.append("; glue: the address(es) behind each name")
    lines += ["%-8s 3600 IN A  %s" % (label, addr) for label, addrs in delegation for addr in addrs]
    return "\n".join(lines) + "\n"


def zone_files(d):
    soa = SOA
    files = {
        "root.zone": f"""$TTL 86400
.           IN {soa}
.           IN NS ns.lab.
ns.lab.     IN A {PARENT_ADDR}
com.        IN NS ns.lab.
""",
        "com.zone": f"""$TTL 86400
com.          IN {soa}
com.          IN NS ns.lab.
example.com.  IN NS ns.lab.
""",
        "example.com.zone": example_zone([("ns%d-www" % (i + 1), [h[1]])
                                          for i, h in enumerate(HOSTS)]),
        "root.hints": f""".        3600000 IN NS ns.lab.
ns.lab.  3600000 IN A  {PARENT_ADDR}
""",
    }
    for name, text in files.items():
        with open(os.path.join(d, name), "w") as f:
            f.write(text)


def start_parent(work, example_zone=None, tag="nsd", extra="", example_at=None):
    """NSD serving the private root, com. and example.com.; returns once it
    answers. example_zone replaces the example.com zone file's text (the
    closed-loop lab's round-robin policy); tag names its directory under
    work; extra goes into the server section. example_at: an address;
    NSD then serves only the root and com., and com. delegates
    example.com. to ns-parent.lab. at that address (another server is
    example.com's primary)."""
    d = os.path.join(work, tag)
    os.makedirs(d)
    zone_files(d)
    if example_zone is not None:
        with open(os.path.join(d, "example.com.zone"), "w") as f:
            f.write(example_zone)
    example_stanza = """zone:
    name: "example.com."
    zonefile: "example.com.zone"
"""
    if example_at is not None:
        with open(os.path.join(d, "root.zone"), "a") as f:
            f.write("ns-parent.lab. IN A %s\n" % example_at)
        path = os.path.join(d, "com.zone")
        with open(path) as f:
            text = f.read().replace("example.com.  IN NS ns.lab.", "example.com.  IN NS ns-parent.lab.")
        with open(path, "w") as f:
            f.write(text)
        example_stanza = ""
    conf = f"""server:{extra}
    ip-address: {PARENT_ADDR}
    port: 53
    server-count: 1
    username: ""
    chroot: ""
    zonesdir: "{d}"
    database: ""
    zonelistfile: "{d}/zone.list"
    xfrdfile: "{d}/xfrd.state"
    pidfile: "{d}/nsd.pid"
    logfile: "{d}/nsd.log"
    hide-version: yes
    verbosity: 1
remote-control:
    control-enable: no
zone:
    name: "."
    zonefile: "root.zone"
zone:
    name: "com."
    zonefile: "com.zone"
""" + example_stanza
    with open(os.path.join(d, "nsd.conf"), "w") as f:
        f.write(conf)
    p = start(["nsd", "-d", "-c", os.path.join(d, "nsd.conf")], os.path.join(d, "stdout.log"))
    for _ in range(50):
        r = ask(PARENT_ADDR, "ns.lab", timeout=0.2)
        if r and r["status"] in ("ok", "nodata", "other"):
            return p
        if p.poll() is not None:
            break
        time.sleep(0.1)
    raise RuntimeError("NSD did not start: see %s" % d)


# ---------------------------------------------------------------- hosts

class Host:
    """One application host: nginx with the module from scripts/lab.d/host.conf,
    its load file, and optionally a delaying relay on its glue address."""

    def __init__(self, index, work, nginx, module, spec=None):
        """spec: (name, glue address, relay back-end address, status port),
        another host than HOSTS[index]."""
        self.index = index
        self.nginx = nginx
        self.module = module
        self.name, self.glue, self.backend, self.status_port = spec or HOSTS[index]
        self.dir = os.path.join(work, self.name)
        os.makedirs(os.path.join(self.dir, "logs"), exist_ok=True)
        os.chmod(self.dir, 0o755)
        self.proc = None
        self.relay = None
        self.listen = self.glue
        # the dns_dnssec_* lines every (re)start uses unless told otherwise
        self.dnssec = ""
        self.set_load("0")

    def set_load(self, text):
        # written aside and renamed, so the module never reads half a file
        tmp = os.path.join(self.dir, "load.tmp")
        with open(tmp, "w") as f:
            f.write("%s\n" % text)
        os.chmod(tmp, 0o644)
        os.replace(tmp, os.path.join(self.dir, "load"))

    def write_conf(self, ttl="10s", silence=LAB_SILENCE, probe="", dnssec="", listens=None,
                   server_extra="", stream_extra=""):
        """Writes nginx.conf from the template; returns its path. listens:
        the addresses to listen on (default: self.listen); server_extra and
        stream_extra: more lines for the server block and the stream block."""
        silence_line = "dns_silence %s;" % silence if silence is not None else ""
        listen_lines = "\n        ".join("listen %s:53 udp reuseport;\n        listen %s:53;" % (a, a)
                                         for a in (listens or [self.listen]))
        with open(os.path.join(LAB_D, "host.conf")) as f:
            conf = string.Template(f.read()).substitute(
                module=self.module, dir=self.dir, status_port=self.status_port,
                listens=listen_lines, ttl=ttl, silence=silence_line, probe=probe, dnssec=dnssec,
                server_extra=server_extra, stream_extra=stream_extra)
        path = os.path.join(self.dir, "nginx.conf")
        with open(path, "w") as f:
            f.write(conf)
        return path

    def start(self, ttl="10s", silence=LAB_SILENCE, probe="", behind_relay_ms=None, dnssec=None,
              listens=None, server_extra="", stream_extra=""):
        """(Re)starts nginx; silence=None leaves dns_silence out of the
        configuration, so the module's default applies; dnssec: the
        dns_dnssec_* lines, if any (None: self.dnssec); listens,
        server_extra, stream_extra: see write_conf."""
        self.stop()
        dnssec = self.dnssec if dnssec is None else dnssec
        self.listen = self.backend if behind_relay_ms is not None else self.glue
        path = self.write_conf(ttl=ttl, silence=silence, probe=probe, dnssec=dnssec, listens=listens,
                               server_extra=server_extra, stream_extra=stream_extra)
        self.proc = start([self.nginx, "-p", self.dir, "-c", path],
                          os.path.join(self.dir, "stdout.log"))
        if behind_relay_ms is not None:
            self.relay = start([sys.executable, os.path.join(LAB_D, "relay.py"), self.glue,
                                self.backend, str(behind_relay_ms)],
                               os.path.join(self.dir, "relay.log"))
        for _ in range(100):
            if self.status() is not None:
                break
            if self.proc.poll() is not None:
                raise RuntimeError("nginx for %s exited: see %s/error.log" % (self.name, self.dir))
            time.sleep(0.05)
        else:
            raise RuntimeError("nginx for %s did not start" % self.name)
        if behind_relay_ms is not None:
            time.sleep(0.5)  # time for the relay to bind its sockets

    def reload(self, **conf):
        """Rewrites the configuration (write_conf's arguments) and reloads
        nginx (SIGHUP to the master): no restart, the shared state stays."""
        self.write_conf(**conf)
        os.kill(self.proc.pid, signal.SIGHUP)

    def stop(self, sig=signal.SIGTERM):
        if self.relay is not None:
            stop(self.relay)
            self.relay = None
        if self.proc is not None:
            stop(self.proc, sig=sig)
            self.proc = None

    def kill(self):
        """A crash: SIGKILL to nginx's master and worker."""
        if self.proc is not None:
            stop(self.proc, sig=signal.SIGKILL)
            self.proc = None

    def status(self):
        """The service's object from the status endpoint's JSON, or None."""
        try:
            opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
            with opener.open("http://127.0.0.1:%d/status?format=json" % self.status_port,
                             timeout=1) as r:
                doc = json.loads(r.read())
            return doc["services"][0]
        except (OSError, ValueError, KeyError, IndexError):
            return None


# ---------------------------------------------------------------- network namespace

def in_own_netns():
    return os.environ.get(NETNS_ENV) == "1"


def reexec_in_own_netns(argv):
    """Runs argv again in a new network namespace; does not return."""
    os.environ[NETNS_ENV] = "1"
    os.execvp("unshare", ["unshare", "--net", "--"] + argv)


def loopback_up():
    """A new network namespace starts with lo down."""
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)


def add_addresses():
    """BIND listens only on addresses that an interface carries: put every lab
    address on lo (127.0.0.0/8 routes there anyway). Returns those added."""
    have = subprocess.run(["ip", "-4", "-o", "addr", "show", "dev", "lo"], capture_output=True,
                          text=True).stdout
    want = [PARENT_ADDR, BIND_PARENT_ADDR] + list(RESOLVER_ADDRS.values()) + [h[1] for h in HOSTS] + \
        [h[2] for h in HOSTS]
    added = []
    for a in want:
        if " %s/32 " % a in have:
            continue
        if subprocess.run(["ip", "addr", "add", a + "/32", "dev", "lo"]).returncode == 0:
            added.append(a)
    return added


def add_extra_addresses(addrs):
    """addrs on lo as well (an experiment's own hosts); returns those added."""
    added = []
    for a in addrs:
        if subprocess.run(["ip", "addr", "add", a + "/32", "dev", "lo"],
                          stderr=subprocess.DEVNULL).returncode == 0:
            added.append(a)
    return added


def remove_addresses(addrs):
    for a in addrs:
        subprocess.run(["ip", "addr", "del", a + "/32", "dev", "lo"], stderr=subprocess.DEVNULL)


# ---------------------------------------------------------------- the build

def built(profile):
    """(nginx, module) of target/PROFILE, the newest nginx if several; None if absent."""
    d = os.path.join(ROOT, "target", profile, "build")
    nginxes = []
    for e in os.listdir(d) if os.path.isdir(d) else []:
        p = os.path.join(d, e, "out", "objs", "nginx")
        if e.startswith("nginx-sys-") and os.path.exists(p):
            nginxes.append(p)
    module = os.path.join(ROOT, "target", profile, "libngx_stream_dns_service_module.so")
    if not nginxes or not os.path.exists(module):
        return None
    return max(nginxes, key=os.path.getmtime), module


def find_build(no_build):
    """(nginx, module, profile) for the hosts. Builds the release profile
    unless no_build; with no_build an existing release build is preferred
    and a debug build is used when there is none."""
    if not no_build:
        log("cargo build --release")
        subprocess.run(["cargo", "build", "--release"], cwd=ROOT, check=True,
                       stdout=sys.stderr)
    profiles = ["release", "debug"] if no_build else ["release"]
    for profile in profiles:
        found = built(profile)
        if found:
            return found + (profile,)
    raise RuntimeError("no nginx binary and module under %s (run cargo build --release)" %
                       " or ".join("target/" + p for p in profiles))

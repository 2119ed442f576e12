"""The resolver lab behind scripts/lab, as a package.

Modules, from the wire up:
  dnswire      DNS queries and responses, the rate-limited driver
  procs        processes in their own groups, signals, timers, the log
  topology     addresses, zone files, the parent NSD, the nginx hosts
               (and relays), the network namespace, the nginx build
  resolvers    Unbound, BIND 9, PowerDNS Recursor, Knot Resolver
  analysis     shares, latencies and time bins from the driver's records
  dnssec       the signed chain: signed root and parent, keyed hosts,
               validating resolvers, shedding, drain and failover with
               validation on (experiment "dnssec"), docs/lab-dnssec.md
  addrmove     host 1 moves to a new address and pushes its glue to a
               BIND 9 parent with RFC 2136 (experiment "address-move")
  experiments  the Lab: set-up, the module's defaults, every experiment
  closedloop   the closed loop: hosts with real applications, twelve
               resolvers at their own distances, client sessions, the
               policies compared and the figures per scenario
  nsaddr       several addresses per NS name: nine hosts behind three NS
               names with three addresses each, phases of idle, loaded
               and drained hosts (experiment "ns-addresses"), and what
               each resolver's source limits per delegation
  report       docs/lab.md and docs/lab-share.svg from results.json
               (docs/lab-dnssec.md from dnssec-results.json, docs/lab-address-move.md
               from address-move-results.json, docs/lab-ns-addresses.md from
               ns-addresses-results.json); the closed loop's
               closed-loop.json, section and pictures
"""

import os

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
LAB_D = os.path.join(ROOT, "scripts", "lab.d")  # host templates, relay, application, client driver

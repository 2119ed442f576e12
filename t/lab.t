#!/usr/bin/perl
# scripts/lab in its quick mode: real recursive resolvers (Unbound, BIND 9,
# PowerDNS Recursor, Knot Resolver) iterating from a private root to three
# nginx hosts with the module. Proves the lab runs and reports a share for
# every host and every working resolver; the shares themselves are not
# asserted (they are what the lab measures). Runs only with DNS_LAB=1: it
# needs root, port 53 in its own network namespace and a few minutes.
use strict;
use warnings;
use File::Temp qw(tempdir);
use Test::More;
use LabTest;

LabTest::require_lab();

my $root = "$ENV{PWD}";
my $out = tempdir(CLEANUP => 1);
my $log = `timeout 600 $root/scripts/lab --quick --out $out --results $out/results.json 2>&1`;
is($? >> 8, 0, 'lab exits 0') or diag(substr($log, -4000));

ok(-s "$out/lab.md", 'lab.md written');
ok(-s "$out/lab-share.svg", 'picture written');
open my $fh, '<', "$out/lab.md" or die "lab.md: $!";
my $md = do { local $/; <$fh> };
close $fh;
my $lab_md_text = $md;

my $cell = qr/\d+\.\d%/;
my @working;
for my $r ('Unbound', 'BIND 9', 'PowerDNS Recursor', 'Knot Resolver') {
    if ($md =~ /^\| \Q$r\E \| `[\d.]+` \| works \|/m) {
        push @working, $r;
    } else {
        my $tag = { 'Unbound' => 'unbound', 'BIND 9' => 'bind', 'PowerDNS Recursor' => 'pdns',
                    'Knot Resolver' => 'kresd' }->{$r};
        like($md, qr/^\| \Q$tag\E \| — \| skipped \| \S.+\|$/m, "$r: skipped with a reason");
    }
}
ok(@working >= 1, 'at least one resolver works: ' . join(', ', @working));

my ($baseline) = $md =~ /^## 1\. Baseline.*?\n(\|.*?)\n\n/sm;
ok(defined $baseline, 'baseline table');
for my $r (@working) {
    like($baseline // '', qr/^\| \Q$r\E \| $cell[^|]* \| $cell[^|]* \| $cell[^|]* \|/m,
        "baseline: $r has a share for each host");
}

my ($sweep_summary) = $md =~ /^Host 1's share of the answers:\n\n(\|.*?)\n\n/sm;
ok(defined $sweep_summary, 'load sweep table');
my @sweep_rows = grep { /^\| \d/ } split /\n/, $sweep_summary // '';
ok(@sweep_rows >= 5, 'load sweep has several settings');
for my $r (@working) {
    my ($t) = $md =~ /^### \Q$r\E\n\n(\|.*?)\n\n/sm;
    ok(defined $t, "load sweep table for $r") or next;
    my @rows = grep { /^\| \d/ } split /\n/, $t;
    ok(@rows >= 5, "$r: one row per setting");
    my @bad = grep { !/^\| [\d.]+(?: refuse)? \| $cell \| $cell \| $cell \|/ } @rows;
    is(scalar @bad, 0, "$r: a share for each host in every setting") or diag(join "\n", @bad);
}

for my $section ('3. Failover', '4. Drain and return', '5. Startup gating', '6. Distance against load') {
    like($md, qr/^## \Q$section\E\b/m, "section $section");
}
my ($distance) = $md =~ /^## 6\. Distance.*?\n(\|.*?)\n\n/sm;
for my $r (@working) {
    my ($col) = grep { $_ } map { /\| \Q$r\E \|/ ? 1 : 0 } ($distance // '');
    ok($col, "distance table has a column for $r");
}
like($distance // '', qr/^\| 0\.00 \| [^|]+ \| $cell \/ $cell \/ $cell \|/m,
    'distance: shares of the three hosts');

# The signed chain: every working resolver validates, or fails without a DS.
ok(-s "$out/lab-dnssec.md", 'lab-dnssec.md written');
open my $dfh, '<', "$out/lab-dnssec.md" or die "lab-dnssec.md: $!";
my $dnssec = do { local $/; <$dfh> };
for my $r (@working) {
    like($dnssec, qr/^\| \Q$r\E \|(?: AD=1 ×4 \|){6} SERVFAIL \| (?:AD=1 ×\d+, from [^|]+|SERVFAIL ×\d+ \(none accepted from host 1\) )\|$/m,
        "dnssec: $r validates every host in both modes, SERVFAIL without a DS");
}
unlike($dnssec, qr/\*\*failed\*\*/, 'dnssec: no failed cell');

# Shedding, drain and failover with validation on: a row per resolver and
# phase; without wildcard synthesis the drained host 1 gets no query after
# the first 5 s (Knot Resolver cannot be told not to synthesize); every
# answer validated in both resolver set-ups.
like($dnssec, qr/^## Shedding, drain and failover with validation on$/m, 'dnssec scenarios: section written');
my ($nosyn) = $dnssec =~ /^### No synthesis\n(.*?)(?=^### |\z)/sm;
my ($defaults) = $dnssec =~ /^### Resolver defaults\n(.*?)(?=^### |\z)/sm;
ok(defined $nosyn && defined $defaults, 'dnssec scenarios: both resolver set-ups');
my $row = qr/\d+ of \d+ \| \d+% \| \d+% \| \d+% \| \d+% \| \d+ \| \d+ \|$/m;
for my $r (@working) {
    for my $phase ('host 1 load 0', 'host 1 load 0.95', 'drop: normal', 'drop: rest of drain', 'refuse: rest',
                   'before the kill', 'after the kill') {
        like($nosyn // '', qr/^\| \Q$phase\E \| \Q$r\E \| $row/m, "dnssec scenarios: $r, $phase");
    }
    for my $phase ('refuse: rest of drain', 'after the kill') {
        like($defaults // '', qr/^\| \Q$phase\E \| \Q$r\E \| $row/m, "dnssec scenarios, defaults: $r, $phase");
    }
    if ($r ne 'Knot Resolver') {
        for my $silence ('drop', 'refuse') {
            like($nosyn // '', qr/^\| $silence: rest of drain \| \Q$r\E \| \d+ of \d+ \| 0% \|/m,
                "dnssec scenarios: $r, dns_silence $silence: no answer from drained host 1");
        }
    }
    for my $part ([$nosyn, 'no synthesis'], [$defaults, 'defaults']) {
        like($part->[0] // '', qr/^- \*\*\Q$r\E\*\*: .*every answer with an address AD=1, no SERVFAIL\.$/m,
            "dnssec scenarios, $part->[1]: $r validated every answer");
    }
}

# Zonemaster against the shared-key delegation: the DNSSEC module ran and
# logged no ERROR or CRITICAL.
SKIP: {
    skip 'zonemaster-cli not installed', 4
        unless grep { -x "$_/zonemaster-cli" } split /:/, $ENV{PATH};
    like($dnssec, qr/^## Zonemaster$/m, 'zonemaster: section written');
    unlike($dnssec, qr/^It did not complete/m, 'zonemaster: completed');
    my ($crit, $err) = $dnssec =~ /^\| DNSSEC \| (\d+) \| (\d+) \| \d+ \| \d+ \| \d+ \| \d+ \| DNSSEC/m;
    ok(defined $crit, 'zonemaster: the DNSSEC module ran');
    is(($crit // 1) + ($err // 1), 0, 'zonemaster: no CRITICAL or ERROR from the DNSSEC module');
}

# The address move (its own page; scripts/lab --only address-move and
# t/lab_address_move.t check it in detail).
ok(-s "$out/lab-address-move.md", 'lab-address-move.md written');
like($lab_md_text, qr/^## Address move$/m, 'lab.md links it');

done_testing();

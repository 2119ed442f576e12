#!/usr/bin/perl
# scripts/lab --only ns-addresses --quick: nine hosts behind three NS names
# with three addresses each, every phase through every working resolver.
# Proves the experiment runs, writes lab-ns-addresses.md with a share for
# each of the nine hosts per resolver and phase, keeps its raw data apart
# and leaves lab.md and results.json alone. The shares themselves are not
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
my $log = `timeout 600 $root/scripts/lab --only ns-addresses --quick --out $out --results $out/results.json 2>&1`;
is($? >> 8, 0, 'lab exits 0') or diag(substr($log, -4000));

ok(-s "$out/lab-ns-addresses.md", 'lab-ns-addresses.md written');
ok(-s "$out/ns-addresses-results.json", 'raw data beside results.json');
ok(!-e "$out/lab.md", 'lab.md not written');
ok(!-e "$out/results.json", 'results.json not written');
open my $fh, '<', "$out/lab-ns-addresses.md" or die "lab-ns-addresses.md: $!";
my $md = do { local $/; <$fh> };
close $fh;

like($md, qr/^## Conclusions \(computed from this run\)\n\n\S/m, 'conclusions');
for my $limit ('max-delegation-servers', 'max-ns-per-resolve', 'MAX_DP_TARGET_COUNT', 'addr_budget') {
    like($md, qr/\Q$limit\E/, "resolver limits: $limit");
}
my $cell = qr/\d+\.\d%/;
for my $phase ('A', 'B1', 'B2', 'B3', 'C') {
    my ($t) = $md =~ /^## Phase \Q$phase\E:.*?\n(\|.*?)(?:\n\n|\n*\z)/sm;
    ok(defined $t, "phase $phase table") or next;
    my @rows = grep { /^\| (Unbound|BIND 9|PowerDNS Recursor|Knot Resolver) \|/ } split /\n/, $t;
    ok(@rows >= 1, "phase $phase: a row per working resolver");
    my @bad = grep { !/^\| [^|]+ \|(?: $cell \|){12} \d \(\d\) \| \d+ \/ \d+ \|/ } @rows;
    is(scalar @bad, 0, "phase $phase: nine host shares and three name shares per resolver")
        or diag(join "\n", @bad);
    like($t, qr/^\| queries reaching the host \|(?: \d+ \|){12}/m, "phase $phase: host counters");
}
done_testing;

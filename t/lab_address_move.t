#!/usr/bin/perl
# scripts/lab --only address-move: host 1 moves to a new address, pushes its
# glue to a BIND 9 parent with RFC 2136, and the resolvers follow. Checks
# the report the run writes: every working resolver resolved without a
# failure in every phase, the parent served the new glue, every resolver
# left the old address within the glue's TTL of the push and reached host 1
# at its new address once the old one was gone; lab.md gets the paragraph
# and the rest of an existing lab.md stays. Runs only with DNS_LAB=1: it
# needs root, port 53 in its own network namespace and about two minutes.
use strict;
use warnings;
use File::Temp qw(tempdir);
use Test::More;
use LabTest;

LabTest::require_lab(tools => [qw(nsd named tsig-keygen unshare ip)]);

my $root = "$ENV{PWD}";
my $out = tempdir(CLEANUP => 1);
open my $fh, '>', "$out/lab.md" or die $!;
print {$fh} "# Resolver lab\n\nearlier results\n\n## Running it\n\nhow\n";
close $fh;
my $log = `timeout 600 $root/scripts/lab --no-build --only address-move --out $out --results $out/results.json 2>&1`;
is($? >> 8, 0, 'lab exits 0') or diag(substr($log, -4000));
ok(-s "$out/address-move-results.json", 'raw data beside the results file');
ok(!-e "$out/results.json", 'the open-loop results file is not written');

open $fh, '<', "$out/lab-address-move.md" or die "lab-address-move.md: $!";
my $md = do { local $/; <$fh> };
close $fh;
my %seen;
my @working = grep { !$seen{$_}++ } $md =~ /^\| (Unbound|BIND 9|PowerDNS Recursor|Knot Resolver) \| \d+ \| /mg;
ok(@working >= 1, 'at least one resolver: ' . join(', ', @working));
for my $r (@working) {
    like($md, qr/^\| \Q$r\E \| \d+ \| 0 \/ 0 \/ 0 \| 0 \/ 0 \/ 0 \| 0 \/ 0 \/ 0 \|/m, "$r: no failed resolution");
}
like($md, qr/^\| BIND serves the new glue .* \| \d+\.\d+ s \|$/m, 'the parent served the new glue');
like($md, qr/^- no failed resolution .*: \*\*yes\*\*/m, 'target: no failure');
like($md, qr/^- every resolver stops using the old glue .*: \*\*yes\*\*/m, 'target: old glue left in time');
like($md, qr/^- every resolver reaches host 1 at its new address .*: \*\*yes\*\*/m, 'target: new address reached');
like($md, qr/glue update of ns1-www\.example\.com in example\.com at 127\.0\.0\.3:53: done \(127\.0\.0\.31\)/,
    'the module logged the push');

open $fh, '<', "$out/lab.md" or die $!;
my $lab = do { local $/; <$fh> };
close $fh;
like($lab, qr/^earlier results$/m, 'lab.md keeps what it had');
like($lab, qr/^## Address move\n\n.*\n\nThe figures per resolver: \[lab-address-move\.md\]/ms, 'and gets the paragraph');
ok(index($lab, '## Address move') < index($lab, '## Running it'), 'before "Running it"');

done_testing();

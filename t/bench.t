#!/usr/bin/perl
# scripts/bench in its quick mode: proves the harness starts every server,
# drives dnsperf against each and reports a full table. Timings are not
# asserted (the machine is shared and noisy); the bench itself reports them.
use strict;
use warnings;
use Test::More;
use FindBin;
use lib "$FindBin::Bin/lib";
use DnsTest;

my $root = "$ENV{PWD}";
for my $tool (qw(dnsperf nsd knotd taskset gcc dig)) {
    DnsTest::skip_all_unless_ci("$tool not installed (scripts/setup installs it)")
        unless grep { -x "$_/$tool" } split /:/, "$ENV{PATH}:/usr/sbin";
}
local $ENV{PATH} = "$ENV{PATH}:/usr/sbin";

my $out = `timeout 300 $root/scripts/bench --quick --no-build --profile debug 2>&1`;
is($? >> 8, 0, 'bench exits 0') or diag($out);

my @servers = ('nginx+module', 'nginx+module, shedding on (load 0)', 'nginx+module, session path',
    'NSD', 'Knot DNS', 'C floor (fixed reply)');
for my $server (@servers) {
    my ($row) = grep { /^\| \Q$server\E \|/ } split /\n/, $out;
    ok(defined $row, "row for $server") or next;
    my @cells = map { s/^\s+|\s+$//gr } split /\|/, $row;
    # cells: '', name, cpu, qps, lost, avg, max, tcp, rss
    like($cells[2], qr/^\d+\.\d+/, "$server: CPU per query measured");
    like($cells[3], qr/^\d+/, "$server: queries/s measured");
    cmp_ok((split ' ', $cells[3])[0], '>', 0, "$server: answered queries at full rate");
}
like($out, qr/module ÷ better of NSD and Knot: \*\*\d+\.\d+\*\*/, 'ratio against the peers reported');
like($out, qr/module ÷ C floor: \*\*\d+\.\d+\*\*/, 'ratio against the floor reported');

done_testing();

#!/usr/bin/perl
# scripts/lab --only closed-loop --quick: the closed loop (three hosts with
# real applications, twelve resolvers, client sessions) runs in under ten
# minutes and writes closed-loop.json with exactly the fields of its
# contract for every scenario and policy. The figures themselves are not
# asserted (they are what the lab measures). Runs only with DNS_LAB=1: it
# needs root, port 53 in its own network namespace and several minutes.
use strict;
use warnings;
use File::Temp qw(tempdir);
use JSON::PP ();
use Test::More;
use LabTest;
use Time::HiRes qw(time);

LabTest::require_lab(what => 'the closed-loop lab');

my $root = "$ENV{PWD}";
my $out = tempdir(CLEANUP => 1);
my $t0 = time;
my $log = `timeout 660 $root/scripts/lab --only closed-loop --quick --out $out --results $out/results.json 2>&1`;
my $took = time - $t0;
is($? >> 8, 0, 'lab exits 0') or diag(substr($log, -4000));
cmp_ok($took, '<', 600, sprintf('quick closed loop within 10 minutes (%.0f s)', $took));

open my $fh, '<', "$out/closed-loop.json" or BAIL_OUT("closed-loop.json: $!");
my $doc = JSON::PP::decode_json(do { local $/; <$fh> });
close $fh;
is_deeply([sort keys %$doc], ['scenarios'], 'one key: scenarios');
my @s = @{ $doc->{scenarios} // [] };
ok(@s >= 8, scalar(@s) . ' scenario entries (two scenarios under four policies at least)');
my %policies = map { $_->{policy} => 1 } @s;
is_deeply([sort keys %policies], [qw(default nearest previous round-robin)], 'all four policies');

my @keys = sort qw(name policy duration_s host_capacity peak_load swing flips_per_min settle_s
    failed_sessions sessions);
my $num = qr/^-?\d+(\.\d+)?([eE][-+]?\d+)?$/;
for my $e (@s) {
    my $what = "$e->{name} / $e->{policy}";
    is_deeply([sort keys %$e], \@keys, "$what: exactly the contract's fields");
    ok(!ref $e->{name} && !ref $e->{policy}, "$what: name and policy are strings");
    like($e->{duration_s}, $num, "$what: duration_s is a number");
    for my $list (qw(host_capacity peak_load swing)) {
        my $l = $e->{$list};
        ok(ref $l eq 'ARRAY' && @$l == 3 && !(grep { !defined || $_ !~ $num } @$l), "$what: $list has 3 numbers");
    }
    ok(!(grep { $_ < 0 || $_ > 1 } @{ $e->{peak_load} }), "$what: peak loads are fractions of capacity");
    like($e->{flips_per_min}, $num, "$what: flips_per_min is a number");
    ok(!defined $e->{settle_s} || $e->{settle_s} =~ $num, "$what: settle_s is a number or null");
    like($e->{$_}, qr/^\d+$/, "$what: $_ is an integer") for qw(failed_sessions sessions);
    cmp_ok($e->{failed_sessions}, '<=', $e->{sessions}, "$what: failed ≤ sessions");
}
done_testing;

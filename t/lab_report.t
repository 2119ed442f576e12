#!/usr/bin/perl
# The resolver lab's code without running the lab: the signed chain's
# scenario report (shedding, drain and failover with validation on) from
# synthetic data, the validating query, that a run of the signed chain
# alone leaves lab.md as it was (scripts/labkit/test_dnssec_report.py);
# the sweep, drain and failover runs against stand-in hosts and resolvers,
# as the open-loop experiments and as the signed chain call them
# (scripts/labkit/test_experiments.py).
use strict;
use warnings;
use FindBin;
use Test::More;

my $scripts = "$FindBin::Bin/../scripts";
my $out = `cd $scripts && python3 -m unittest labkit.test_dnssec_report labkit.test_experiments 2>&1`;
is($? >> 8, 0, 'labkit.test_dnssec_report and labkit.test_experiments pass') or diag($out);
like($out, qr/^Ran [1-9]\d* tests?/m, 'the tests ran');

done_testing();

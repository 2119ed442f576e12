#!/usr/bin/perl
# The resolver lab's report code without running the lab: the signed
# chain's scenario report (shedding, drain and failover with validation
# on) from synthetic data, the validating query, and that a run of the
# signed chain alone leaves lab.md as it was (scripts/labkit/test_dnssec_report.py).
use strict;
use warnings;
use FindBin;
use Test::More;

my $scripts = "$FindBin::Bin/../scripts";
my $out = `cd $scripts && python3 -m unittest labkit.test_dnssec_report 2>&1`;
is($? >> 8, 0, 'labkit.test_dnssec_report passes') or diag($out);
like($out, qr/^Ran [1-9]\d* tests?/m, 'the tests ran');

done_testing();

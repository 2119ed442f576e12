#!/usr/bin/perl
# The resolver lab's own unit tests (Python, standard library): the
# population model (scripts/labkit/test_popsim.py) and the address move's
# figures and report (scripts/labkit/test_addrmove.py). Needs no root and
# starts no server.
use strict;
use warnings;
use FindBin;
use Test::More;

my $scripts = "$FindBin::Bin/../scripts";
for my $module (qw(labkit.test_popsim labkit.test_addrmove labkit.test_nsaddr)) {
    my $out = `cd $scripts && python3 -m unittest $module 2>&1`;
    is($? >> 8, 0, "$module passes") or diag($out);
    like($out, qr/^OK$/m, "$module: OK");
}
done_testing();

package LabTest;

# What every resolver-lab test needs before it runs scripts/lab: DNS_LAB=1
# (the lab takes minutes), root (port 53 in its own network namespace) and
# the tools it starts. Skips the whole test file otherwise.

use strict;
use warnings;
use Test::More ();

sub require_lab {
    my (%o) = @_;
    my $what = $o{what} // 'the resolver lab';
    Test::More::plan(skip_all => "set DNS_LAB=1 to run $what (root, port 53 in a network namespace, minutes)")
        unless $ENV{DNS_LAB};
    Test::More::plan(skip_all => 'the lab needs root') if $> != 0;
    $ENV{PATH} = "$ENV{PATH}:/usr/sbin:/sbin";
    for my $tool (@{ $o{tools} // [qw(nsd unshare ip)] }) {
        Test::More::plan(skip_all => "$tool not installed (scripts/lab --install)")
            unless grep { -x "$_/$tool" } split /:/, $ENV{PATH};
    }
}

1;

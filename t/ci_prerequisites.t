#!/usr/bin/perl

# Under CI (CI=true, as .ci/run sets) a missing nginx build or module fails
# the suite instead of skipping it, so that a broken build cannot pass as
# "0 tests"; outside CI the same test file is skipped.

use strict;
use warnings;

use FindBin;
use Test::More;

my $test = "$FindBin::Bin/dns_ttl.t";
my %missing = (NGINX_BINARY => '/nonexistent/nginx', NGINX_MODULE => '/nonexistent/module.so');

sub run_with {
    my (%env) = @_;
    local @ENV{keys %env} = values %env;
    my $out = `$^X -I$FindBin::Bin/lib $test 2>&1`;
    return ($? >> 8, $out);
}

my ($rc, $out) = run_with(%missing, CI => 'true');
isnt($rc, 0, 'CI=true, no nginx: the test file fails');
like($out, qr/Bail out!.*nginx binary not found.*CI=true/, 'CI=true: it says why');

($rc, $out) = run_with(%missing, CI => '');
is($rc, 0, 'outside CI, no nginx: the test file passes as skipped');
like($out, qr/^1\.\.0 # SKIP nginx binary not found/m, 'outside CI: skipped, with the reason');

done_testing();

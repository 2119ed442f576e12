#!/usr/bin/perl

# DNS cookies (RFC 7873, server cookies per RFC 9018) with real dig: a
# client cookie gets a server cookie back; the server cookie is accepted by
# every worker, over UDP and TCP, after a reload, and by another nginx that
# shares the secret file; a rotated secret file still accepts cookies made
# with the previous secret; dns_cookies off ignores the option.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";

use Test::More;
use File::Temp qw(tempdir);
use Time::HiRes qw(sleep);
use DnsTest;

DnsTest::skip_all_unless_ci('dig not installed') unless grep { -x "$_/dig" } split /:/, $ENV{PATH};

my $CLIENT = '0011223344556677';

sub dig {
    my ($port, @args) = @_;
    return scalar `dig \@127.0.0.1 -p $port www.example.com A +time=2 +tries=1 @args 2>&1`;
}

# Whether the server accepts a server cookie: a cookie-only query (no
# question, RFC 7873 §5.4) gets NOERROR for a valid one, BADCOOKIE otherwise.
sub verdict {
    my ($port, $cookie, @args) = @_;
    my $out = `dig \@127.0.0.1 -p $port +header-only +nobadcookie +cookie=$cookie +time=2 +tries=1 @args 2>&1`;
    my ($status) = $out =~ /status: (\w+)/;
    return ($status // '') eq 'NOERROR' ? 'good' : ($status // 'no answer');
}

# (status, cookie hex, dig's verdict) from dig's output
sub cookie_of {
    my ($out) = @_;
    my ($status) = $out =~ /status: (\w+)/;
    my ($cookie, $verdict) = $out =~ /; COOKIE: ([0-9a-fA-F]+)(?: \((\w+)\))?/;
    return ($status // '', lc($cookie // ''), $verdict // '');
}

my $dir = tempdir(CLEANUP => 1);
my $secret1 = '00112233445566778899aabbccddeeff';
my $secret2 = 'ffeeddccbbaa99887766554433221100';
open my $fh, '>', "$dir/secret" or die;
print $fh "$secret1\n";
close $fh;

# Default: secret in shared memory, two workers.
my $t = DnsTest->new(ports => 1);
$t->write_config(DnsTest::conf(workers => 2));
$t->run or BAIL_OUT('nginx did not start: ' . $t->error_log);
my $port = $t->port;

my ($status, $cookie) = cookie_of(dig($port, "+cookie=$CLIENT"));
is($status, 'NOERROR', 'client cookie only: answered');
is(length $cookie, 48, 'client cookie only: client + 16-octet server cookie returned');
is(substr($cookie, 0, 16), $CLIENT, 'the client cookie is echoed');
is(substr($cookie, 16, 8), '01000000', 'server cookie version 1, reserved zero (RFC 9018)');

my %verdicts;
for (1 .. 20) {
    $verdicts{verdict($port, $cookie)}++;
}
is_deeply(\%verdicts, { good => 20 }, 'the server cookie is valid at every worker (20 queries)');
is(verdict($port, $cookie, '+tcp'), 'good', 'and over TCP');
is(verdict($port, $CLIENT), 'good', 'a cookie-only query with a client cookie alone: NOERROR');

my $forged = substr($cookie, 0, 46) . (substr($cookie, 46, 2) eq '00' ? '01' : '00');
is(verdict($port, $forged), 'BADCOOKIE', 'a forged server cookie: BADCOOKIE to a cookie-only query');
($status, my $fresh) = cookie_of(dig($port, "+cookie=$forged"));
is($status, 'NOERROR', 'a bad server cookie still gets an answer');
isnt($fresh, $forged, 'and a fresh server cookie');

my $bad = `dig \@127.0.0.1 -p $port www.example.com +time=2 +tries=1 +cookie=0011 2>&1`;
like($bad, qr/status: FORMERR/, 'a malformed cookie option: FORMERR');

$t->reload or diag('reload failed');
sleep 1;
is(verdict($port, $cookie), 'good', 'the secret survives nginx -s reload');

# A shared secret file: two nginx accept each other's cookies.
my @hosts;
for (1 .. 2) {
    my $h = DnsTest->new(ports => 1);
    $h->write_config(DnsTest::conf(server => "dns_cookie_secret $dir/secret;"));
    $h->run or BAIL_OUT('nginx did not start: ' . $h->error_log);
    push @hosts, $h;
}
my (undef, $from_a) = cookie_of(dig($hosts[0]->port, "+cookie=$CLIENT"));
is(verdict($hosts[1]->port, $from_a), 'good', 'a cookie from host A is valid at host B (shared secret file)');
is(verdict($port, $from_a), 'BADCOOKIE', 'but not at a host with another secret');

# Rotation: new secret first, the previous one second; reload.
open $fh, '>', "$dir/secret" or die;
print $fh "$secret2\n$secret1\n";
close $fh;
$hosts[1]->reload or diag('reload failed');
sleep 1;
is(verdict($hosts[1]->port, $from_a), 'good', 'after rotation, a cookie made with the previous secret is still valid');
(undef, my $rotated) = cookie_of(dig($hosts[1]->port, "+cookie=$CLIENT"));
is(verdict($hosts[0]->port, $rotated), 'BADCOOKIE', 'a host still on the old secret does not accept the new one');

# Bad secret files fail nginx -t.
open $fh, '>', "$dir/short" or die;
print $fh "0011\n";
close $fh;
my $c = DnsTest->new(ports => 1);
$c->write_config(DnsTest::conf(server => "dns_cookie_secret $dir/short;"));
my ($rc, $out) = $c->test_config;
isnt($rc, 0, 'a malformed secret file fails nginx -t');
like($out, qr/"dns_cookie_secret".*nginx\.conf:\d+/, '... naming the directive and the line');
$c->write_config(DnsTest::conf(server => "dns_cookie_secret $dir/missing;"));
($rc, $out) = $c->test_config;
isnt($rc, 0, 'a missing secret file fails nginx -t');

# Cookies off: the option is ignored.
my $off = DnsTest->new(ports => 1);
$off->write_config(DnsTest::conf(server => 'dns_cookies off;'));
$off->run or BAIL_OUT('nginx did not start: ' . $off->error_log);
($status, $cookie) = cookie_of(dig($off->port, "+cookie=$CLIENT"));
is($status, 'NOERROR', 'cookies off: answered');
is($cookie, '', 'cookies off: no cookie in the response');

is(scalar(my @crashes = $t->crash_lines), 0, 'no worker crashed');
done_testing();

#!/usr/bin/perl

# nginx-conf/example-update.conf as shipped (only its ports, log, pid and
# module path moved into the test's prefix): `nsupdate -k
# nginx-conf/update.key` replaces the A record of www.example.com with
# 192.0.2.7, answered over UDP and TCP, with the state kept under the
# prefix.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";

use File::Copy qw(copy);
use Test::More;
use AddrTest;
use DnsTest;

DnsTest::skip_all_unless_ci('nsupdate is needed (Debian: dnsutils)') unless `which nsupdate 2>/dev/null`;

my $t = DnsTest->new(ports => 2);
my $repo = DnsTest::repo_dir();
my $prefix = $t->prefix;

open my $fh, '<', "$repo/nginx-conf/example-update.conf" or die $!;
my $conf = do { local $/; <$fh> };
close $fh;
$conf =~ s{^load_module .*$}{load_module %%MODULE%%;}m or die 'load_module';
$conf =~ s{^error_log .*$}{error_log %%PREFIX%%/error.log notice;\npid %%PREFIX%%/nginx.pid;}m or die 'error_log';
$conf =~ s/127\.0\.0\.1:5353/127.0.0.1:%%PORT%%/g;
$conf =~ s/127\.0\.0\.1:8053/127.0.0.1:%%PORT2%%/g;
$t->write_config($conf);
# The key sits next to the configuration, as in nginx-conf/.
copy("$repo/nginx-conf/update.key", "$prefix/update.key") or die "copy: $!";

my ($rc, $out) = $t->test_config;
is($rc, 0, 'example-update.conf passes nginx -t') or diag($out);
$t->run or BAIL_OUT('nginx did not start: ' . $t->error_log);

is(AddrTest::addresses($t, 'A'), '192.0.2.1', 'before: dns_address');
($rc, $out) = AddrTest::nsupdate($t, dir => $prefix, key => "$repo/nginx-conf/update.key", commands => [
    'update delete www.example.com A',
    'update add www.example.com 10 A 192.0.2.7',
]);
is($rc, 0, 'nsupdate -k nginx-conf/update.key replaces the A record') or diag($out);
is(AddrTest::addresses($t, 'A'), '192.0.2.7', 'the next query, at once, gets 192.0.2.7');
ok(defined AddrTest::everywhere($t, 'A', '192.0.2.7'), 'every worker answers 192.0.2.7 over UDP');
is(AddrTest::addresses($t, 'A', proto => 'tcp'), '192.0.2.7', 'and over TCP');
like($t->read_file('dns_state/www.example.com.state'), qr/^addresses 192\.0\.2\.7$/m,
    'the state is kept under the prefix');
is(AddrTest::status($t->port(2))->{origin}, 'update', 'the status says where it came from');
$t->stop;

done_testing;

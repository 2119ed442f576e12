#!/usr/bin/perl

# With "error_log ... debug", every query's decision is logged with its
# reason (answered, delayed by the curve, refused while silent), on the UDP
# fast path, the UDP session path and TCP; at "info" nothing is logged per
# query.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";

use Test::More;
use Time::HiRes qw(sleep);
use DnsTest;

sub start {
    my (%o) = @_;
    my $t = DnsTest->new(ports => 2);
    my $conf = DnsTest::conf(
        # at load 0.9 half the queries are delayed, half refused
        server  => "dns_load_file %%PREFIX%%/app.load;\ndns_load_smoothing 0;\n"
                 . "dns_shed 0.5:0 0.9:100ms:refuse=0.5;",
        servers => DnsTest::server_block(port => 'PORT2', service => 'api.example.com',
            extra => "dns_udp_fast_path off;"),
    );
    $conf =~ s{error_log (\S+) info;}{error_log $1 $o{level};};
    $t->write_config($conf);
    $t->run or BAIL_OUT('nginx did not start: ' . $t->error_log);
    return $t;
}

sub set_load {
    my ($t, $text) = @_;
    open my $fh, '>', $t->prefix . '/app.load' or die;
    print $fh "$text\n";
    close $fh;
    sleep 0.8;
}

my $t = start(level => 'debug');
$t->udp_exchange(DnsTest::make_query(), timeout => 1);
$t->tcp_exchange(DnsTest::make_query(), timeout => 1);
$t->udp_exchange(DnsTest::make_query(name => 'api.example.com'), port => $t->port(2), timeout => 1);
set_load($t, '0.9');
$t->udp_exchange(DnsTest::make_query(), timeout => 1) for 1 .. 12;
set_load($t, 'drain');
$t->udp_exchange(DnsTest::make_query(), timeout => 1);
sleep 0.2;
my $log = $t->error_log;

like($log, qr/\[debug\].*dns_service www\.example\.com: UDP query from 127\.0\.0\.1 answered, state ready/,
    'fast path: answered, with the state');
like($log, qr/\[debug\].*dns_service www\.example\.com: TCP query from 127\.0\.0\.1 answered/, 'TCP: answered');
like($log, qr/\[debug\].*dns_service api\.example\.com: UDP query from 127\.0\.0\.1 answered/,
    'session path: answered');
like($log, qr/dns_service www\.example\.com: UDP query .* delayed by the shedding curve \(\d+ ms\), state shedding, load 0\.9/,
    'a delay says how long, the state and the load');
like($log, qr/dns_service www\.example\.com: UDP query .* refused by the shedding curve, state shedding, load 0\.9/,
    'a refusal by the curve says so');
like($log, qr/dns_service www\.example\.com: UDP query .* refused: the service is silent \(dns_silence refuse\), state draining/,
    'a refusal says why');
$t->stop;

my $quiet = start(level => 'info');
$quiet->udp_exchange(DnsTest::make_query(), timeout => 1);
$quiet->tcp_exchange(DnsTest::make_query(), timeout => 1);
sleep 0.2;
unlike($quiet->error_log, qr/UDP query|TCP query/, 'at level info, queries are not logged');

done_testing();

#!/usr/bin/perl

# Stream variables $dns_qname, $dns_qtype, $dns_rcode in an access log.
# UDP queries reach access_log on the stream session path only, so the
# server has dns_udp_fast_path off.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";

use Test::More;
use Time::HiRes qw(sleep);
use DnsTest;

my $t = DnsTest->new(ports => 1);
$t->write_config(DnsTest::conf(
    stream => "    log_format dns '\$dns_qname \$dns_qtype \$dns_rcode';",
    server => "access_log %%PREFIX%%/dns.log dns;\ndns_udp_fast_path off;",
));
$t->run or BAIL_OUT('nginx did not start: ' . $t->error_log);

my @udp = (
    ['www.example.com',    'A',         'NOERROR'],
    ['nx.www.example.com', 'AAAA',      'NXDOMAIN'],
    ['example.org',        'TXT',       'REFUSED'],
    ['WwW.ExAmPlE.CoM',    'NS',        'NOERROR'],
    ['www.example.com',    'TYPE65280', 'NOERROR'],
    ['www.example.com.',   'MX',        'NOERROR'],
);
for my $q (@udp) {
    my ($name, $type, $rcode) = @$q;
    my $p = $t->ask(name => $name, type => $type);
    is($p && $p->header->rcode, $rcode, "udp query $name $type answered $rcode");
}

# NOTIMP and BADVERS
{
    my $p = $t->ask(name => 'www.example.com', type => 'SOA', opcode => 4);
    is($p && $p->header->rcode, 'NOTIMP', 'udp NOTIFY answered NOTIMP');
    $p = $t->ask(name => 'ver.www.example.com', type => 'A', edns => { version => 1 });
    is($p && $p->header->rcode, 'BADVERS', 'udp EDNS version 1 answered BADVERS');
}

# TCP: two queries on one connection, the last one is logged
{
    my $s = $t->tcp_connect;
    for my $q (['www.example.com', 'A'], ['tcp.www.example.com', 'NS']) {
        DnsTest::tcp_write($s, DnsTest::frame(DnsTest::make_query(name => $q->[0],
            type => $q->[1])));
        ok(defined DnsTest::tcp_read_msg($s, 2), "tcp query $q->[0] $q->[1] answered");
    }
    close $s;
}

# a query dropped without response: QR=1
$t->udp_exchange(DnsTest::make_query(qr => 1, name => 'dropped.www.example.com'),
    timeout => 0.2);

sleep 0.2;
$t->stop;

my $log = $t->read_file('dns.log');
my @lines = split /\n/, $log;

my @want = (
    'www.example.com A NOERROR',
    'nx.www.example.com AAAA NXDOMAIN',
    'example.org TXT REFUSED',
    'WwW.ExAmPlE.CoM NS NOERROR',
    'www.example.com TYPE65280 NOERROR',
    'www.example.com MX NOERROR',
    'ver.www.example.com A BADVERS',
    'tcp.www.example.com NS NXDOMAIN',
);
for my $w (@want) {
    ok(scalar(grep { $_ eq $w } @lines), "log has '$w'");
}
ok(scalar(grep { / NOTIMP$/ } @lines), 'log has a NOTIMP line');
ok(scalar(grep { $_ eq 'www.example.com SOA NOTIMP' || $_ eq '- - NOTIMP' } @lines),
    'NOTIMP line: the question or nothing');

# UDP lines in the order of the queries
my @order = grep { my $l = $_; grep { $_ eq $l } @want[0 .. 5] } @lines;
is_deeply(\@order, [@want[0 .. 5]],
    'UDP lines in query order, each once (the TCP connection adds one line only)');

ok(!scalar(grep { /dropped/ } @lines), 'a dropped query logs no qname');
ok(!scalar(grep { /^tcp\.www\.example\.com/ && !/NXDOMAIN$/ } @lines),
    'tcp connection logged with its last query');

diag("dns.log:\n$log") unless Test::More->builder->is_passing;
is(join("\n", $t->crash_lines), '', 'no crash in error log');

done_testing();

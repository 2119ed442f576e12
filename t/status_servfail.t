#!/usr/bin/perl

# SERVFAIL has its own response counter in the status endpoint (JSON,
# Prometheus, HTML), not `other`. The module answers SERVFAIL to a DNSSEC
# query on a local address it cannot sign for: a wildcard listen with room
# for one signed address (filled by the interface address at start), asked
# on other loopback addresses, over UDP and TCP, by two workers.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";

use Test::More;
use DnsTest;
use LoadTest;

my $t = DnsTest->new(ports => 2);
my $REPO = DnsTest::repo_dir();
my $KEY = "$REPO/nginx-conf/dnssec-test-key/Kwww.example.com.+013+15572";
my $SVC = 'www.example.com';

$t->write_config(DnsTest::conf(
    workers => 2,
    main    => LoadTest::status_http('PORT2'),
    no_default_server => 1,
    servers => DnsTest::server_block(
        listen => "        listen 0.0.0.0:%%PORT%% udp;\n        listen 0.0.0.0:%%PORT%%;\n",
        extra  => "dns_dnssec_key $KEY;\ndns_dnssec_signing max_addresses=1;",
    ),
));
$t->run or BAIL_OUT('nginx did not start: ' . $t->error_log);
my $SP = $t->port(2);

sub rcode_of {
    my (%o) = @_;
    my $p = $t->ask(name => $SVC, type => 'A', %o);
    return $p ? $p->header->rcode : 'no answer';
}

my @asked = (
    # [proto, local address, DO, expected rcode]
    (map { ['udp', '127.0.0.5', 1, 'SERVFAIL'] } 1 .. 3),
    ['tcp', '127.0.0.6', 1, 'SERVFAIL'],
    (map { ['udp', '127.0.0.1', 1, 'NOERROR'] } 1 .. 2),
    ['udp', '127.0.0.5', 0, 'NOERROR'],
);
for my $q (@asked) {
    my ($proto, $addr, $do, $want) = @$q;
    is(rcode_of(proto => $proto, addr => $addr, ($do ? (edns => { do => 1, size => 1232 }) : ())), $want,
        "$proto on $addr, DO=$do: $want");
}

my $s;
LoadTest::wait_for(2, sub { $s = LoadTest::service(LoadTest::status_json($SP), $SVC);
    $s && $s->{responses}{NOERROR} + $s->{responses}{SERVFAIL} == 7 });
is_deeply($s && $s->{responses},
    { NOERROR => 3, NXDOMAIN => 0, SERVFAIL => 4, REFUSED => 0, FORMERR => 0, NOTIMP => 0, BADVERS => 0, other => 0 },
    'JSON: four SERVFAIL, none counted as other') or diag(explain($s && $s->{responses}));
is($s && $s->{answered}, 7, 'JSON: seven answered');

my $m = LoadTest::prometheus(LoadTest::status_get($SP)->{content});
is($m->{qq(dns_service_responses_total{service="$SVC",rcode="SERVFAIL"})}, 4, 'Prometheus: rcode="SERVFAIL" 4');
is($m->{qq(dns_service_responses_total{service="$SVC",rcode="other"})}, 0, 'Prometheus: rcode="other" 0');
is($m->{qq(dns_service_responses_total{service="$SVC",rcode="NOERROR"})}, 3, 'Prometheus: rcode="NOERROR" 3');

my $page = LoadTest::status_get($SP, '?format=html')->{content} // '';
like($page, qr{<th>responses SERVFAIL</th><td class="n">4</td>}, 'HTML: responses SERVFAIL 4');
like($page, qr{<th>responses other</th><td class="n">0</td>}, 'HTML: responses other 0');

done_testing();

#!/usr/bin/perl

# Configuration checks: every bad value makes "nginx -t" fail with a message
# naming the directive and the file:line; good configurations pass; two
# server blocks serve two names side by side.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";

use Test::More;
use DnsTest;

my $t = DnsTest->new(ports => 2);

my $NS = 'ns1-www.example.com ns2-www.example.com ns3-www.example.com';

# Each case: [description, directive named in the message, conf() options,
#             regex of the offending line (the last matching line counts)]
my @bad = (
    ['empty label in service name', 'dns_service',
        { service => 'www..example.com' }, qr/dns_service www\.\.example/],
    ['64-octet label in service name', 'dns_service',
        { service => ('a' x 64) . '.example.com' }, qr/dns_service a{64}/],
    ['service name over 255 octets', 'dns_service',
        { service => join('.', ('a' x 60) x 5) }, qr/dns_service a{60}\./],
    ['space in service name', 'dns_service',
        { service => '"ex ample.com"' }, qr/dns_service "ex ample/],
    ['punctuation in service name', 'dns_service',
        { service => 'a_b!.example.com' }, qr/dns_service a_b!/],
    ['service name is an address', 'dns_service',
        { service => '"www.example.com/24"' }, qr{dns_service "www\.example\.com/24"}],
    ['dns_service twice', 'dns_service',
        { server => 'dns_service www.example.com;' }, qr/^\s*dns_service www\.example\.com;/],
    ['dns_service without an argument', 'dns_service',
        { service => '' }, qr/^\s*dns_service\s*;/],

    ['name server is an IPv4 address', 'dns_nameservers',
        { nameservers => '192.0.2.1' }, qr/dns_nameservers 192\.0\.2\.1/],
    ['name server is an IPv6 address', 'dns_nameservers',
        { nameservers => 'ns1-www.example.com 2001:db8::53' }, qr/dns_nameservers .*2001:db8::53/],
    ['name server inside the zone', 'dns_nameservers',
        { nameservers => 'ns1.www.example.com ns2-www.example.com' },
        qr/dns_nameservers ns1\.www\.example\.com/],
    ['name server is the apex', 'dns_nameservers',
        { nameservers => 'www.example.com ns2-www.example.com' },
        qr/dns_nameservers www\.example\.com/],
    ['name server with punctuation', 'dns_nameservers',
        { nameservers => 'ns1_!.example.org' }, qr/dns_nameservers ns1_!/],
    ['name server with empty label', 'dns_nameservers',
        { nameservers => 'ns1..example.org' }, qr/dns_nameservers ns1\.\./],

    ['address 300.1.1.1', 'dns_address',
        { server => 'dns_address 300.1.1.1;' }, qr/dns_address 300/],
    ['address not-an-ip', 'dns_address',
        { server => 'dns_address not-an-ip;' }, qr/dns_address not-an-ip/],
    ['address with a prefix length', 'dns_address',
        { server => 'dns_address 192.0.2.0/24;' }, qr{dns_address 192\.0\.2\.0/24}],
    ['address auto mixed with an address', 'dns_address',
        { server => 'dns_address auto 192.0.2.1;' }, qr/dns_address auto 192/],
    ['address list empty', 'dns_address',
        { server => 'dns_address;' }, qr/dns_address;/],

    ['ttl 0', 'dns_ttl', { server => 'dns_ttl 0;' }, qr/dns_ttl 0;/],
    ['ttl 8d', 'dns_ttl', { server => 'dns_ttl 8d;' }, qr/dns_ttl 8d/],
    ['ttl abc', 'dns_ttl', { server => 'dns_ttl abc;' }, qr/dns_ttl abc/],
    ['jitter above ttl', 'dns_ttl',
        { server => 'dns_ttl 10s jitter=20s;' }, qr/dns_ttl 10s jitter=20s/],
    ['jitter equal to ttl', 'dns_ttl',
        { server => 'dns_ttl 10s jitter=10s;' }, qr/dns_ttl 10s jitter=10s/],
    ['jitter not a time', 'dns_ttl',
        { server => 'dns_ttl 10s jitter=abc;' }, qr/dns_ttl 10s jitter=abc/],
    ['unknown ttl parameter', 'dns_ttl',
        { server => 'dns_ttl 10s spread=2s;' }, qr/dns_ttl 10s spread/],

    ['edns payload 100', 'dns_edns_payload',
        { server => 'dns_edns_payload 100;' }, qr/dns_edns_payload 100/],
    ['edns payload 70000', 'dns_edns_payload',
        { server => 'dns_edns_payload 70000;' }, qr/dns_edns_payload 70000/],
    ['edns payload 4097', 'dns_edns_payload',
        { server => 'dns_edns_payload 4097;' }, qr/dns_edns_payload 4097/],
    ['edns payload abc', 'dns_edns_payload',
        { server => 'dns_edns_payload abc;' }, qr/dns_edns_payload abc/],

    ['nsid hex:zz', 'dns_nsid', { server => 'dns_nsid hex:zz;' }, qr/dns_nsid hex:zz/],
    ['nsid hex odd digits', 'dns_nsid', { server => 'dns_nsid hex:abc;' }, qr/dns_nsid hex:abc/],

    ['soa refresh=abc', 'dns_soa',
        { server => 'dns_soa refresh=abc;' }, qr/dns_soa refresh=abc/],
    ['soa contact empty', 'dns_soa',
        { server => 'dns_soa contact=;' }, qr/dns_soa contact=;/],
    ['soa unknown parameter', 'dns_soa',
        { server => 'dns_soa serial=5;' }, qr/dns_soa serial=5/],
    ['soa minimum=0x', 'dns_soa',
        { server => 'dns_soa minimum=0x;' }, qr/dns_soa minimum=0x/],

    ['tcp timeout abc', 'dns_tcp_timeout',
        { server => 'dns_tcp_timeout abc;' }, qr/dns_tcp_timeout abc/],
    ['tcp max connections abc', 'dns_tcp_max_connections',
        { server => 'dns_tcp_max_connections abc;' }, qr/dns_tcp_max_connections abc/],

    ['dns_service at stream level', 'dns_service',
        { stream => '    dns_service www.example.com;' }, qr/^\s*dns_service www\.example\.com;/,
        'first'],
);

sub last_line {
    my ($re, $which) = @_;
    my @lines = split /\n/, $t->config_text;
    my @hits = grep { $lines[$_] =~ $re } 0 .. $#lines;
    return undef unless @hits;
    return ($which && $which eq 'first' ? $hits[0] : $hits[-1]) + 1;
}

for my $case (@bad) {
    my ($what, $directive, $conf, $re, $which) = @$case;
    my %c = %$conf;
    $t->write_config(DnsTest::conf(%c));
    my $line = last_line($re, $which);
    ok($line, "$what: offending line found in the test config") or next;
    my ($rc, $out) = $t->test_config;
    isnt($rc, 0, "$what: nginx -t fails");
    like($out, qr/"\Q$directive\E"/, "$what: message names \"$directive\"");
    like($out, qr/nginx\.conf:$line\b/, "$what: message points at nginx.conf:$line")
        or diag($out);
    unlike($out, qr/panicked|exited on signal|Segmentation/, "$what: no crash");
}

# dns_service without dns_nameservers: named in the message; the line may be
# that of dns_service or another one of the stream block

{
    my $conf = DnsTest::conf(no_default_server => 1, servers => <<'EOF');
    server {
        listen 127.0.0.1:%%PORT%% udp;
        dns_service www.example.com;
    }
EOF
    $t->write_config($conf);
    my $first = last_line(qr/^stream \{/);
    my $last = scalar(split /\n/, $t->config_text);
    my ($rc, $out) = $t->test_config;
    isnt($rc, 0, 'no dns_nameservers: nginx -t fails');
    like($out, qr/dns_nameservers/, 'no dns_nameservers: message names dns_nameservers');
    my ($line) = $out =~ /nginx\.conf:(\d+)/;
    ok(defined $line && $line >= $first && $line <= $last,
        'no dns_nameservers: message points at a line of the stream block')
        or diag($out);
}

# good configurations pass

my @good = (
    ['base configuration', {}],
    ['trailing dot in service name', { service => 'www.example.com.' }],
    ['every directive set', { server => <<'EOF' }],
dns_address 192.0.2.1 2001:db8::1;
dns_ttl 7d jitter=1h;
dns_soa contact=admin@example.net refresh=2h retry=15m expire=2w minimum=30s;
dns_edns_payload 4096;
dns_nsid hostname;
dns_tcp_timeout 5s;
dns_tcp_max_connections 10;
EOF
    ['explicit defaults', { server => <<'EOF' }],
dns_address auto;
dns_ttl 10s;
dns_soa contact=hostmaster.www.example.com refresh=1h retry=10m expire=1w minimum=10s;
dns_edns_payload 1232;
dns_nsid off;
dns_tcp_timeout 10s;
dns_tcp_max_connections 512;
EOF
    ['ttl 1s, payload 512, nsid hex', { server => "dns_ttl 1s;\ndns_edns_payload 512;\ndns_nsid hex:0a0B;" }],
    ['nsid text', { server => 'dns_nsid test-host-1;' }],
    ['soa contact in DNS form', { server => 'dns_soa contact=user.example.org;' }],
    ['single name server', { nameservers => 'ns.example.net' }],
    ['name servers in another zone', { nameservers => 'a.ns.example.org b.ns.example.net' }],
    ['service name with hyphen and digits', { service => 'svc-01.example.com' }],
);
for my $case (@good) {
    my ($what, $conf) = @$case;
    $t->write_config(DnsTest::conf(%$conf));
    my ($rc, $out) = $t->test_config;
    is($rc, 0, "good: $what: nginx -t passes") or diag($out);
    like($out, qr/test is successful/, "good: $what: test is successful");
}

# two server blocks, two names

{
    $t->write_config(DnsTest::conf(servers => DnsTest::server_block(
        port        => 'PORT2',
        service     => 'api.example.net',
        nameservers => 'ns1.example.org ns2.example.org',
        extra       => 'dns_address 192.0.2.7;',
    )));
    $t->run or BAIL_OUT('nginx did not start: ' . $t->error_log);

    for my $proto (qw(udp tcp)) {
        my $p = $t->ask(proto => $proto, name => 'www.example.com', type => 'A');
        is(join(',', map { $_->address } grep { $_->type eq 'A' } ($p ? $p->answer : ())),
            '127.0.0.1', "$proto: first server answers www.example.com");
        $p = $t->ask(proto => $proto, name => 'api.example.net', type => 'A');
        is($p && $p->header->rcode, 'REFUSED', "$proto: first server refuses api.example.net");

        $p = $t->ask(proto => $proto, port => $t->port(2), name => 'api.example.net', type => 'A');
        is(join(',', map { $_->address } grep { $_->type eq 'A' } ($p ? $p->answer : ())),
            '192.0.2.7', "$proto: second server answers api.example.net");
        is($p && $p->header->aa, 1, "$proto: second server AA");
        $p = $t->ask(proto => $proto, port => $t->port(2), name => 'www.example.com', type => 'A');
        is($p && $p->header->rcode, 'REFUSED', "$proto: second server refuses www.example.com");

        $p = $t->ask(proto => $proto, port => $t->port(2), name => 'api.example.net', type => 'NS');
        is_deeply([sort map { lc $_->nsdname } grep { $_->type eq 'NS' } ($p ? $p->answer : ())],
            ['ns1.example.org', 'ns2.example.org'], "$proto: second server NS set");
        $p = $t->ask(proto => $proto, port => $t->port(2), name => 'api.example.net', type => 'SOA');
        my ($soa) = grep { $_->type eq 'SOA' } ($p ? $p->answer : ());
        is(DnsTest::soa_rname($soa), 'hostmaster.api.example.net', "$proto: second server RNAME");
        is($soa && lc($soa->mname), 'ns1.example.org', "$proto: second server MNAME");
    }
    $t->stop;
    is(join("\n", $t->crash_lines), '', 'no crash in error log');
}

done_testing();

#!/usr/bin/perl

# Answers of the responder for the apex, names below it and names outside
# the zone, over UDP and TCP: flags, sections, TTLs, 0x20 case, ID echo;
# explicit dns_address lists and dns_ttl; dns_address auto over IPv6.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";

use Test::More;
use DnsTest;

# PORT: the default server (UDP on the fast path); PORT2: explicit
# addresses and TTL; PORT3: the default server with UDP on the stream
# session path.
my $t = DnsTest->new(ports => 3);
$t->write_config(DnsTest::conf(servers => DnsTest::server_block(
    port  => 'PORT2',
    extra => "dns_address 192.0.2.1 192.0.2.2 2001:db8::1;\ndns_ttl 300s;",
) . DnsTest::server_block(port => 'PORT3', extra => 'dns_udp_fast_path off;')));
$t->run or BAIL_OUT('nginx did not start: ' . $t->error_log);

my @NS = qw(ns1-www.example.com ns2-www.example.com ns3-www.example.com);

sub lcname { my $n = lc shift; $n =~ s/\.$//; return $n }

sub soa_in_authority {
    my ($p, $ttl, $what) = @_;
    my @soa = grep { $_->type eq 'SOA' } $p->authority;
    is(scalar @soa, 1, "$what: one SOA in authority");
    if (@soa) {
        is(lcname($soa[0]->owner), 'www.example.com', "$what: SOA owner is the apex");
        is($soa[0]->ttl, $ttl, "$what: SOA TTL $ttl");
    }
}

for my $tr (['udp', 1, 'udp'], ['udp', 3, 'udp session path'], ['tcp', 1, 'tcp']) {
    my ($proto, $pn, $w) = @$tr;
    my $port = $t->port($pn);

    # apex A

    my $p = $t->ask(proto => $proto, port => $port, name => 'www.example.com', type => 'A', id => 0x1234);
    ok($p, "$w: apex A answered") or next;
    is($p->header->id, 0x1234, "$w: apex A id echoed");
    is($p->header->qr, 1, "$w: apex A QR");
    is($p->header->rcode, 'NOERROR', "$w: apex A NOERROR");
    is($p->header->aa, 1, "$w: apex A AA");
    is($p->header->ra, 0, "$w: apex A RA clear");
    is($p->header->tc, 0, "$w: apex A TC clear");
    is($p->header->opcode, 'QUERY', "$w: apex A opcode");
    my @an = $p->answer;
    is(scalar @an, 1, "$w: apex A one answer record");
    is($an[0] && $an[0]->type, 'A', "$w: apex A answer type");
    is($an[0] && $an[0]->address, '127.0.0.1', "$w: apex A address is the local address");
    is($an[0] && $an[0]->ttl, 10, "$w: apex A TTL 10");
    is($an[0] && lcname($an[0]->owner), 'www.example.com', "$w: apex A owner");
    is($an[0] && $an[0]->class, 'IN', "$w: apex A class");
    is(scalar(grep { $_->type eq 'OPT' } $p->additional), 0, "$w: no OPT without EDNS in query");

    # apex AAAA over IPv4 with dns_address auto: NODATA

    $p = $t->ask(proto => $proto, port => $port, name => 'www.example.com', type => 'AAAA');
    ok($p, "$w: apex AAAA answered") or next;
    is($p->header->rcode, 'NOERROR', "$w: apex AAAA NOERROR");
    is($p->header->aa, 1, "$w: apex AAAA AA");
    is($p->header->ancount, 0, "$w: apex AAAA no answer over IPv4");
    soa_in_authority($p, 10, "$w: apex AAAA");

    # apex NS

    $p = $t->ask(proto => $proto, port => $port, name => 'www.example.com', type => 'NS');
    ok($p, "$w: apex NS answered") or next;
    is($p->header->rcode, 'NOERROR', "$w: apex NS NOERROR");
    is($p->header->aa, 1, "$w: apex NS AA");
    @an = $p->answer;
    is_deeply([sort map { lcname($_->nsdname) } grep { $_->type eq 'NS' } @an], \@NS,
        "$w: apex NS lists the name servers");
    is(scalar @an, 3, "$w: apex NS three records");
    is_deeply([map { $_->ttl } @an], [10, 10, 10], "$w: apex NS TTL 10");

    # apex SOA

    $p = $t->ask(proto => $proto, port => $port, name => 'www.example.com', type => 'SOA');
    ok($p, "$w: apex SOA answered") or next;
    is($p->header->rcode, 'NOERROR', "$w: apex SOA NOERROR");
    is($p->header->aa, 1, "$w: apex SOA AA");
    @an = $p->answer;
    is(scalar @an, 1, "$w: apex SOA one record");
    my ($soa) = grep { $_->type eq 'SOA' } @an;
    ok($soa, "$w: apex SOA record") or next;
    is(lcname($soa->owner), 'www.example.com', "$w: SOA owner");
    is(lcname($soa->mname), 'ns1-www.example.com', "$w: SOA MNAME is the first name server");
    is(DnsTest::soa_rname($soa), 'hostmaster.www.example.com', "$w: SOA RNAME default");
    is($soa->refresh, 3600, "$w: SOA refresh");
    is($soa->retry, 600, "$w: SOA retry");
    is($soa->expire, 604800, "$w: SOA expire");
    is($soa->minimum, 10, "$w: SOA minimum");
    is($soa->ttl, 10, "$w: SOA TTL");

    # ANY: one RRset (RFC 8482)

    $p = $t->ask(proto => $proto, port => $port, name => 'www.example.com', type => 'ANY');
    ok($p, "$w: apex ANY answered") or next;
    is($p->header->rcode, 'NOERROR', "$w: apex ANY NOERROR");
    is($p->header->aa, 1, "$w: apex ANY AA");
    @an = $p->answer;
    ok(@an >= 1, "$w: apex ANY has an answer");
    my %sets = map { lcname($_->owner) . '/' . $_->type . '/' . $_->class => 1 } @an;
    is(scalar keys %sets, 1, "$w: apex ANY answer is exactly one RRset")
        or diag(join ' ', sort keys %sets);
    is(join(',', map { $_->type . ' ' . ($_->can('address') ? $_->address : '') } @an),
        'A 127.0.0.1', "$w: apex ANY answers with the address RRset");

    # MAILA / MAILB: NOTIMP
    for my $type (qw(MAILA MAILB)) {
        $p = $t->ask(proto => $proto, port => $port, name => 'www.example.com', type => $type);
        is($p && $p->header->rcode, 'NOTIMP', "$w: apex $type NOTIMP");
    }

    # qtype OPT in the question: FORMERR
    $p = $t->ask(proto => $proto, port => $port, name => 'www.example.com', type => 'OPT');
    is($p && $p->header->rcode, 'FORMERR', "$w: qtype OPT FORMERR");

    # other types at the apex: NODATA

    for my $type (qw(MX TXT TYPE65280)) {
        $p = $t->ask(proto => $proto, port => $port, name => 'www.example.com', type => $type);
        ok($p, "$w: apex $type answered") or next;
        is($p->header->rcode, 'NOERROR', "$w: apex $type NOERROR");
        is($p->header->aa, 1, "$w: apex $type AA");
        is($p->header->ancount, 0, "$w: apex $type no answer (NODATA)");
        soa_in_authority($p, 10, "$w: apex $type");
    }

    # names below the apex: NXDOMAIN

    for my $q (['foo.www.example.com', 'A'], ['a.b.www.example.com', 'AAAA'],
               ['ns1.www.example.com', 'NS'])
    {
        my ($name, $type) = @$q;
        $p = $t->ask(proto => $proto, port => $port, name => $name, type => $type);
        ok($p, "$w: $name $type answered") or next;
        is($p->header->rcode, 'NXDOMAIN', "$w: $name NXDOMAIN");
        is($p->header->aa, 1, "$w: $name AA");
        is($p->header->ancount, 0, "$w: $name no answer");
        soa_in_authority($p, 10, "$w: $name");
    }

    # names outside the zone: REFUSED

    for my $q (['example.com', 'A'], ['www.example.org', 'A'],
               ['xwww.example.com', 'A'], ['com', 'NS'], ['.', 'NS'],
               ['www.example.com.evil.net', 'A'])
    {
        my ($name, $type) = @$q;
        my ($rp, $raw, $query) = $t->ask(proto => $proto, port => $port, name => $name, type => $type,
            id => 0xbeef);
        ok($rp, "$w: '$name' answered") or next;
        my $h = DnsTest::header($raw);
        is($h->{rcode}, 5, "$w: '$name' REFUSED");
        is($h->{aa}, 0, "$w: '$name' AA clear");
        is($h->{id}, 0xbeef, "$w: '$name' id echoed");
        is("$h->{ancount}/$h->{nscount}/$h->{arcount}", '0/0/0', "$w: '$name' no records");
        is($h->{qdcount}, 1, "$w: '$name' question count 1");
        is_deeply([DnsTest::raw_question($raw)], [DnsTest::raw_question($query)],
            "$w: '$name' question echoed");
    }

    # class other than IN: REFUSED

    for my $q (['www.example.com', 'A', 'CH'], ['version.bind', 'TXT', 'CH'],
               ['id.server', 'TXT', 'CH'], ['www.example.com', 'A', 'HS'])
    {
        my ($name, $type, $class) = @$q;
        my ($rp, $raw) = $t->ask(proto => $proto, port => $port, name => $name, type => $type,
            class => $class);
        ok($rp, "$w: $class $name answered") or next;
        is($rp->header->rcode, 'REFUSED', "$w: $class $name $type REFUSED");
        is($rp->header->ancount, 0, "$w: $class $name no answer");
    }

    # flags copied from the query: RD and CD

    for my $rd (0, 1) {
        $p = $t->ask(proto => $proto, port => $port, name => 'www.example.com', type => 'A', rd => $rd);
        is($p && $p->header->rd, $rd, "$w: RD=$rd copied");
        is($p && $p->header->ra, 0, "$w: RA clear with RD=$rd");
        is($p && $p->header->rcode, 'NOERROR', "$w: RD=$rd still answered");
    }
    for my $cd (0, 1) {
        $p = $t->ask(proto => $proto, port => $port, name => 'www.example.com', type => 'A', cd => $cd);
        is($p && $p->header->cd, $cd, "$w: CD=$cd copied");
    }

    # ID echo

    # (read from the wire: Net::DNS replaces an id of 0 by a random one)
    for my $id (0, 1, 0x7fff, 0x8000, 0xffff) {
        my ($rp, $raw) = $t->ask(proto => $proto, port => $port, name => 'www.example.com', type => 'A',
            id => $id);
        my $h = DnsTest::header($raw) // {};
        is($h->{id}, $id, "$w: id $id echoed");
    }

    # letter case of the question is kept (0x20)

    for my $name (qw(wWw.ExAmPlE.cOm WWW.EXAMPLE.COM)) {
        my ($rp, $raw, $query) = $t->ask(proto => $proto, port => $port, name => $name, type => 'A');
        ok($rp, "$w: $name answered") or next;
        my ($qn) = DnsTest::raw_question($raw);
        my ($sent) = DnsTest::raw_question($query);
        is($qn, $sent, "$w: question bytes keep the case of $name");
        is($rp->header->rcode, 'NOERROR', "$w: $name NOERROR");
        is($rp->header->aa, 1, "$w: $name AA");
        my @a = grep { $_->type eq 'A' } $rp->answer;
        is(join(',', map { $_->address } @a), '127.0.0.1', "$w: $name gets the apex answer");
    }

    # trailing-dot-less / mixed case below apex is still NXDOMAIN
    $p = $t->ask(proto => $proto, port => $port, name => 'FOO.WWW.Example.COM', type => 'A');
    is($p && $p->header->rcode, 'NXDOMAIN', "$w: mixed-case name below the apex NXDOMAIN");
}

# zone transfer requests are refused

{
    my $p = $t->ask(proto => 'tcp', name => 'www.example.com', type => 'AXFR');
    ok($p, 'AXFR over TCP answered');
    is($p && $p->header->rcode, 'REFUSED', 'AXFR over TCP REFUSED');
    is($p && $p->header->ancount, 0, 'AXFR no records');

    $p = $t->ask(proto => 'tcp', name => 'www.example.com', type => 'IXFR');
    is($p && $p->header->rcode, 'REFUSED', 'IXFR over TCP REFUSED');
}

# Net::DNS::Resolver sees the same thing

{
    my $p = $t->query('www.example.com', 'A');
    is(join(',', map { $_->address } grep { $_->type eq 'A' } ($p ? $p->answer : ())),
        '127.0.0.1', 'resolver UDP: apex A');
    $p = $t->query('www.example.com', 'NS', proto => 'tcp');
    is(scalar(grep { $_->type eq 'NS' } ($p ? $p->answer : ())), 3, 'resolver TCP: apex NS');
}

# explicit addresses and TTL (second server)

for my $proto (qw(udp tcp)) {
    my $p = $t->ask(proto => $proto, port => $t->port(2), name => 'www.example.com', type => 'A');
    ok($p, "$proto: explicit A answered");
    my @a = grep { $_->type eq 'A' } ($p ? $p->answer : ());
    is_deeply([sort map { $_->address } @a], ['192.0.2.1', '192.0.2.2'],
        "$proto: explicit A returns both IPv4 addresses");
    is(($p ? $p->header->ancount : -1), 2, "$proto: explicit A nothing else in answer");
    is_deeply([map { $_->ttl } @a], [300, 300], "$proto: explicit A TTL 300");
    is($p && $p->header->aa, 1, "$proto: explicit A AA");

    $p = $t->ask(proto => $proto, port => $t->port(2), name => 'www.example.com', type => 'AAAA');
    my @aaaa = grep { $_->type eq 'AAAA' } ($p ? $p->answer : ());
    is(join(',', map { $_->address_short } @aaaa), '2001:db8::1',
        "$proto: explicit AAAA returns the IPv6 address");
    is(($p ? $p->header->ancount : -1), 1, "$proto: explicit AAAA nothing else in answer");
    is(join(',', map { $_->ttl } @aaaa), '300', "$proto: explicit AAAA TTL 300");

    $p = $t->ask(proto => $proto, port => $t->port(2), name => 'www.example.com', type => 'NS');
    is_deeply([map { $_->ttl } ($p ? $p->answer : ())], [300, 300, 300],
        "$proto: NS TTL follows dns_ttl");

    $p = $t->ask(proto => $proto, port => $t->port(2), name => 'www.example.com', type => 'SOA');
    my ($soa) = grep { $_->type eq 'SOA' } ($p ? $p->answer : ());
    is($soa && $soa->ttl, 300, "$proto: SOA TTL follows dns_ttl");
    is($soa && $soa->minimum, 10, "$proto: SOA minimum stays 10");

    # negative answers carry min(TTL, minimum)
    $p = $t->ask(proto => $proto, port => $t->port(2), name => 'www.example.com', type => 'MX');
    my ($nsoa) = grep { $_->type eq 'SOA' } ($p ? $p->authority : ());
    is($nsoa && $nsoa->ttl, 10, "$proto: NODATA SOA TTL is min(300, 10)");
    $p = $t->ask(proto => $proto, port => $t->port(2), name => 'x.www.example.com', type => 'A');
    ($nsoa) = grep { $_->type eq 'SOA' } ($p ? $p->authority : ());
    is($p && $p->header->rcode, 'NXDOMAIN', "$proto: explicit server NXDOMAIN");
    is($nsoa && $nsoa->ttl, 10, "$proto: NXDOMAIN SOA TTL is min(300, 10)");
}

$t->stop;
is(join("\n", $t->crash_lines), '', 'no crash in error log');

# dns_address auto over IPv6: AAAA ::1, A NODATA

SKIP: {
    skip 'no IPv6 loopback', 12 unless DnsTest::have_ipv6();

    my $t6 = DnsTest->new(ports => 1, ipv6 => 1);
    $t6->write_config(DnsTest::conf(no_default_server => 1, servers => DnsTest::server_block(
        listen => "        listen [::1]:%%PORT%% udp;\n        listen [::1]:%%PORT%%;\n"
                . "        listen 127.0.0.1:%%PORT%% udp;\n        listen 127.0.0.1:%%PORT%%;\n",
    )));
    $t6->run or BAIL_OUT('nginx did not start: ' . $t6->error_log);

    for my $proto (qw(udp tcp)) {
        my $p = $t6->ask(proto => $proto, addr => '::1', name => 'www.example.com', type => 'AAAA');
        my @aaaa = grep { $_->type eq 'AAAA' } ($p ? $p->answer : ());
        is(join(',', map { $_->address_short } @aaaa), '::1', "$proto over IPv6: AAAA is ::1");
        is($p && $p->header->aa, 1, "$proto over IPv6: AAAA AA");

        $p = $t6->ask(proto => $proto, addr => '::1', name => 'www.example.com', type => 'A');
        is($p && $p->header->rcode, 'NOERROR', "$proto over IPv6: A NOERROR");
        is($p && $p->header->ancount, 0, "$proto over IPv6: A NODATA");
        is(scalar(grep { $_->type eq 'SOA' } ($p ? $p->authority : ())), 1,
            "$proto over IPv6: A NODATA has SOA");

        $p = $t6->ask(proto => $proto, addr => '127.0.0.1', name => 'www.example.com', type => 'A');
        is(join(',', map { $_->address } grep { $_->type eq 'A' } ($p ? $p->answer : ())),
            '127.0.0.1', "$proto: same server over IPv4 answers A 127.0.0.1");
    }
    $t6->stop;
}

done_testing();

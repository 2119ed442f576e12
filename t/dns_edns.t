#!/usr/bin/perl

# EDNS(0): OPT echoed with the advertised payload size (dns_edns_payload),
# DO bit, BADVERS for unknown versions, unknown options ignored, NSID
# (dns_nsid text, hex:, hostname, off).

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";

use Test::More;
use Sys::Hostname qw(hostname);
use DnsTest;

# Servers 1-4 (UDP on the fast path) and 5-8 (the same with UDP on the
# stream session path): 1 defaults, 2 payload 1400 and NSID text, 3 NSID hex,
# 4 NSID hostname.
my @EXTRA = ('', "dns_edns_payload 1400;\ndns_nsid test-host-1;",
    'dns_nsid hex:6e732d3031;', 'dns_nsid hostname;');

my $t = DnsTest->new(ports => 8);
$t->write_config(DnsTest::conf(servers => join '',
    (map { DnsTest::server_block(port => 'PORT' . ($_ + 1), extra => $EXTRA[$_]) } 1 .. 3),
    (map { DnsTest::server_block(port => 'PORT' . ($_ + 5),
        extra => "$EXTRA[$_]\ndns_udp_fast_path off;") } 0 .. 3),
));
$t->run or BAIL_OUT('nginx did not start: ' . $t->error_log);

my $NSID = 3;

# the transport ('udp' or 'tcp') and the default port of the current round
our ($TRANSPORT, $DEFAULT_PORT) = ('udp', $t->port(1));

sub ask {
    my (%o) = @_;
    $o{port} //= $DEFAULT_PORT;
    my ($p, $raw) = $t->ask(name => 'www.example.com', type => 'A', %o,
        proto => $TRANSPORT);
    return ($p, $raw);
}

sub a_addrs {
    my ($p) = @_;
    return join ',', map { $_->address } grep { $_->type eq 'A' } ($p ? $p->answer : ());
}

for my $tr (['udp', 0, 'udp'], ['udp', 4, 'udp session path'], ['tcp', 0, 'tcp']) {
    my ($transport, $shift, $proto) = @$tr;
    my $P = sub { return $t->port($_[0] + $shift) };
    local $TRANSPORT = $transport;
    local $DEFAULT_PORT = $P->(1);

    # OPT echoed, version 0, advertised payload

    my ($p, $raw) = ask(edns => { size => 4096 });
    ok($p, "$proto: EDNS query answered");
    is(scalar(DnsTest::raw_opts($raw)), 1, "$proto: response has one OPT");
    my $opt = DnsTest::raw_opt($raw) // {};
    is($opt->{version}, 0, "$proto: OPT version 0");
    is($opt->{size}, 1232, "$proto: advertised payload 1232 by default");
    is($opt->{extrcode}, 0, "$proto: extended rcode 0");
    is($opt->{do}, 0, "$proto: DO clear when not asked");
    is($p && $p->header->rcode, 'NOERROR', "$proto: EDNS query NOERROR");
    is(a_addrs($p), '127.0.0.1', "$proto: EDNS query answer");

    ($p, $raw) = ask(edns => { size => 4096 }, port => $P->(2));
    $opt = DnsTest::raw_opt($raw) // {};
    is($opt->{size}, 1400, "$proto: dns_edns_payload 1400 advertised");

    # a client payload below 512 is treated as 512; the answer still fits
    ($p, $raw) = ask(edns => { size => 100 });
    is(a_addrs($p), '127.0.0.1', "$proto: EDNS payload 100 answered");
    is($p && $p->header->tc, 0, "$proto: EDNS payload 100 not truncated");

    # no OPT in the query: none in the response

    ($p, $raw) = ask();
    is(scalar(DnsTest::raw_opts($raw)), 0, "$proto: no OPT without EDNS");

    # DO bit

    ($p, $raw) = ask(edns => { size => 4096, do => 1 });
    $opt = DnsTest::raw_opt($raw) // {};
    is($opt->{do}, 1, "$proto: DO echoed");
    is(a_addrs($p), '127.0.0.1', "$proto: DO query answered");

    # unknown EDNS version: BADVERS

    ($p, $raw) = ask(edns => { size => 4096, version => 1 }, id => 0x5151);
    ok($p, "$proto: EDNS version 1 answered");
    is($p && $p->header->rcode, 'BADVERS', "$proto: EDNS version 1 BADVERS");
    my $h = DnsTest::header($raw) // {};
    is($h->{rcode}, 0, "$proto: BADVERS header rcode bits 0");
    is($h->{id}, 0x5151, "$proto: BADVERS id echoed");
    $opt = DnsTest::raw_opt($raw);
    ok($opt, "$proto: BADVERS has OPT");
    is($opt && $opt->{extrcode}, 1, "$proto: BADVERS extended rcode 1 (16)");
    is($opt && $opt->{version}, 0, "$proto: BADVERS OPT version 0");
    is($h->{ancount}, 0, "$proto: BADVERS no answer");

    ($p, $raw) = ask(edns => { size => 4096, version => 255 });
    is($p && $p->header->rcode, 'BADVERS', "$proto: EDNS version 255 BADVERS");

    # unknown option ignored

    ($p, $raw) = ask(edns => { size => 4096, options => [[65001, 'abcd']] });
    is($p && $p->header->rcode, 'NOERROR', "$proto: unknown option NOERROR");
    is(a_addrs($p), '127.0.0.1', "$proto: unknown option answered normally");
    $opt = DnsTest::raw_opt($raw) // {};
    ok(!exists $opt->{options}{65001}, "$proto: unknown option not echoed");

    # NSID

    ($p, $raw) = ask(port => $P->(2),
        edns => { size => 1232, options => [[$NSID, '']] });
    $opt = DnsTest::raw_opt($raw) // {};
    is($opt->{options}{$NSID}, 'test-host-1', "$proto: NSID returned");
    is(a_addrs($p), '127.0.0.1', "$proto: NSID query answered");

    ($p, $raw) = ask(port => $P->(2),
        edns => { size => 1232, options => [[65001, 'x'], [$NSID, '']] });
    $opt = DnsTest::raw_opt($raw) // {};
    is($opt->{options}{$NSID}, 'test-host-1', "$proto: NSID returned after unknown option");

    ($p, $raw) = ask(port => $P->(2), edns => { size => 1232 });
    $opt = DnsTest::raw_opt($raw) // {};
    ok(!exists $opt->{options}{$NSID}, "$proto: no NSID when not asked");

    ($p, $raw) = ask(port => $P->(2));
    is(scalar(DnsTest::raw_opts($raw)), 0, "$proto: no OPT, no NSID without EDNS");

    ($p, $raw) = ask(edns => { size => 1232, options => [[$NSID, '']] });
    $opt = DnsTest::raw_opt($raw) // {};
    ok($opt->{size}, "$proto: dns_nsid off: OPT present");
    ok(!exists $opt->{options}{$NSID}, "$proto: dns_nsid off: no NSID");

    ($p, $raw) = ask(port => $P->(3),
        edns => { size => 1232, options => [[$NSID, '']] });
    $opt = DnsTest::raw_opt($raw) // {};
    is($opt->{options}{$NSID}, 'ns-01', "$proto: dns_nsid hex: value");

    ($p, $raw) = ask(port => $P->(4),
        edns => { size => 1232, options => [[$NSID, '']] });
    $opt = DnsTest::raw_opt($raw) // {};
    is(lc($opt->{options}{$NSID} // ''), lc(hostname()), "$proto: dns_nsid hostname");

    # NSID on negative answers too
    ($p, $raw) = ask(port => $P->(2), name => 'nx.www.example.com',
        edns => { size => 1232, options => [[$NSID, '']] });
    $opt = DnsTest::raw_opt($raw) // {};
    is($p && $p->header->rcode, 'NXDOMAIN', "$proto: NXDOMAIN with NSID request");
    is($opt->{options}{$NSID}, 'test-host-1', "$proto: NSID on NXDOMAIN");

    # OPT on REFUSED and NODATA answers
    ($p, $raw) = ask(name => 'www.example.org', edns => { size => 1232 });
    is($p && $p->header->rcode, 'REFUSED', "$proto: EDNS REFUSED");
    is(scalar(DnsTest::raw_opts($raw)), 1, "$proto: OPT on REFUSED");
    ($p, $raw) = ask(type => 'MX', edns => { size => 1232 });
    is(scalar(DnsTest::raw_opts($raw)), 1, "$proto: OPT on NODATA");
    is(scalar(grep { $_->type eq 'SOA' } ($p ? $p->authority : ())), 1,
        "$proto: NODATA with EDNS has SOA");

    # more than one OPT in the query: FORMERR (RFC 6891 6.1.1)
    ($p, $raw) = ask(edns => { size => 1232 }, opts => 2);
    is($p && $p->header->rcode, 'FORMERR', "$proto: two OPT records FORMERR");
}

# the resolver's own EDNS handling

{
    my $p = $t->query('www.example.com', 'A', dnssec => 1, udppacketsize => 4096);
    ok($p, 'resolver with DO answered');
    is($p && $p->header->do, 1, 'resolver sees DO echoed');
    is($p && $p->edns->version, 0, 'resolver sees OPT version 0');
}

$t->stop;
is(join("\n", $t->crash_lines), '', 'no crash in error log');

done_testing();

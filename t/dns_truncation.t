#!/usr/bin/perl

# Truncation: an apex A set of 40 addresses does not fit 512 bytes, so UDP
# without EDNS gets TC=1 and no records; TCP and EDNS with a large enough
# payload get all 40; the resolver falls back to TCP. dns_edns_payload
# bounds UDP answers.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";

use Test::More;
use DnsTest;

my @ADDR = map { "10.0.0.$_" } 1 .. 40;

# PORT: 40 addresses; PORT2: the same with dns_edns_payload 512; PORT3: as
# PORT with UDP on the stream session path instead of the fast path.
my $t = DnsTest->new(ports => 3);
$t->write_config(DnsTest::conf(
    server  => "dns_address @ADDR;",
    servers => DnsTest::server_block(port => 'PORT2',
        extra => "dns_address @ADDR;\ndns_edns_payload 512;")
      . DnsTest::server_block(port => 'PORT3',
        extra => "dns_address @ADDR;\ndns_udp_fast_path off;"),
));
$t->run or BAIL_OUT('nginx did not start: ' . $t->error_log);

sub addrs {
    my ($p) = @_;
    return [sort { $a cmp $b } map { $_->address } grep { $_->type eq 'A' } ($p ? $p->answer : ())];
}

my @SORTED = sort { $a cmp $b } @ADDR;

for my $tr ([1, 'udp'], [3, 'udp session path']) {
    my ($pn, $w) = @$tr;
    my $port = $t->port($pn);

    # UDP without EDNS: truncated

    {
        my ($p, $raw, $q) = $t->ask(port => $port, name => 'www.example.com', type => 'A',
            id => 0x7777);
        ok($p, "$w no EDNS: answered");
        my $h = DnsTest::header($raw) // {};
        is($h->{tc}, 1, "$w no EDNS: TC set");
        is($h->{ancount}, 0, "$w no EDNS: no answer records");
        is($h->{nscount}, 0, "$w no EDNS: no authority records");
        is($h->{arcount}, 0, "$w no EDNS: no additional records");
        is($h->{rcode}, 0, "$w no EDNS: NOERROR");
        is($h->{id}, 0x7777, "$w no EDNS: id echoed");
        is($h->{qdcount}, 1, "$w no EDNS: question kept");
        is_deeply([DnsTest::raw_question($raw)], [DnsTest::raw_question($q)],
            "$w no EDNS: question echoed");
        ok(length($raw // '') <= 512, "$w no EDNS: at most 512 bytes");
    }

    # small answers from the same server are not truncated

    {
        my ($p, $raw) = $t->ask(port => $port, name => 'www.example.com', type => 'NS');
        is($p && $p->header->tc, 0, "$w no EDNS: NS not truncated");
        is($p && $p->header->ancount, 3, "$w no EDNS: NS answered");
    }
}

# TCP: everything

{
    my ($p, $raw) = $t->ask(proto => 'tcp', name => 'www.example.com', type => 'A');
    is($p && $p->header->tc, 0, 'tcp: TC clear');
    is_deeply(addrs($p), \@SORTED, 'tcp: all 40 addresses');
    is($p && $p->header->ancount, 40, 'tcp: 40 answer records');
}

for my $tr ([1, 'udp'], [3, 'udp session path']) {
    my ($pn, $w) = @$tr;
    my $port = $t->port($pn);

    # UDP with EDNS 1232: everything

    {
        my ($p, $raw) = $t->ask(port => $port, name => 'www.example.com', type => 'A',
            edns => { size => 1232 });
        is($p && $p->header->tc, 0, "$w EDNS 1232: TC clear");
        is_deeply(addrs($p), \@SORTED, "$w EDNS 1232: all 40 addresses");
        ok(length($raw // '') <= 1232, "$w EDNS 1232: within the payload size");
        is(scalar(DnsTest::raw_opts($raw)), 1, "$w EDNS 1232: OPT present");
    }

    # UDP with EDNS but a payload too small for the answer

    {
        my ($p, $raw) = $t->ask(port => $port, name => 'www.example.com', type => 'A',
            edns => { size => 600 });
        my $h = DnsTest::header($raw) // {};
        is($h->{tc}, 1, "$w EDNS 600: TC set");
        is($h->{ancount}, 0, "$w EDNS 600: no answer records");
        ok(length($raw // '') <= 600, "$w EDNS 600: within the payload size");
    }
}

# dns_edns_payload 512 bounds UDP answers whatever the client offers

{
    my ($p, $raw) = $t->ask(port => $t->port(2), name => 'www.example.com', type => 'A',
        edns => { size => 4096 });
    my $h = DnsTest::header($raw) // {};
    is($h->{tc}, 1, 'dns_edns_payload 512: TC set for a 4096 client');
    is($h->{ancount}, 0, 'dns_edns_payload 512: no answer records');
    ok(length($raw // '') <= 512, 'dns_edns_payload 512: at most 512 bytes');
    my $opt = DnsTest::raw_opt($raw);
    is($opt && $opt->{size}, 512, 'dns_edns_payload 512: advertised') if $opt;

    ($p) = $t->ask(proto => 'tcp', port => $t->port(2), name => 'www.example.com', type => 'A',
        edns => { size => 4096 });
    is_deeply(addrs($p), \@SORTED, 'dns_edns_payload 512: TCP still gets all 40');
}

# the resolver falls back to TCP on TC

{
    my $p = $t->query('www.example.com', 'A', igntc => 0);
    ok($p, 'resolver: answered');
    is_deeply(addrs($p), \@SORTED, 'resolver without igntc: all 40 via TCP');
    is($p && $p->header->tc, 0, 'resolver: final answer not truncated');

    $p = $t->query('www.example.com', 'A', igntc => 1);
    is($p && $p->header->tc, 1, 'resolver with igntc: sees TC');
}

$t->stop;
is(join("\n", $t->crash_lines), '', 'no crash in error log');

done_testing();

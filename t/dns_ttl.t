#!/usr/bin/perl

# TTLs and SOA contents: dns_ttl with jitter, dns_soa minimum/contact/timers,
# negative TTL = min(TTL, minimum), and a serial derived from the zone
# (equal on two instances with the same config, different when the name
# servers change).

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";

use Test::More;
use DnsTest;

sub lcname { my $n = lc shift; $n =~ s/\.$//; return $n }

sub make_conf {
    return DnsTest::conf(
        server  => 'dns_ttl 100s jitter=50s;',
        servers =>
            DnsTest::server_block(port => 'PORT2',
                extra => "dns_soa minimum=5s contact=admin\@example.net;")
          . DnsTest::server_block(port => 'PORT3',
                extra => 'dns_soa contact=user.example.org refresh=2h retry=15m expire=2w;')
          . DnsTest::server_block(port => 'PORT4',
                nameservers => 'ns1-www.example.com ns2-www.example.com ns4-www.example.com')
          . DnsTest::server_block(port => 'PORT5')
          . DnsTest::server_block(port => 'PORT6', extra => 'dns_ttl 5s;'),
    );
}

my $t = DnsTest->new(ports => 6);
$t->write_config(make_conf());
$t->run or BAIL_OUT('nginx did not start: ' . $t->error_log);

sub soa_of {
    my ($inst, $port, $section) = @_;
    my $p = $inst->ask(port => $port, name => 'www.example.com', type => 'SOA');
    my @rr = $p ? ($section && $section eq 'authority' ? $p->authority : $p->answer) : ();
    my ($soa) = grep { $_->type eq 'SOA' } @rr;
    return $soa;
}

# jitter: TTL in [100 - 50, 100], not always the same

{
    my (%seen, @bad, $answered);
    for my $i (1 .. 50) {
        my $p = $t->ask(name => 'www.example.com', type => 'A');
        next unless $p;
        my @a = grep { $_->type eq 'A' } $p->answer;
        next unless @a;
        $answered++;
        for my $rr (@a) {
            $seen{$rr->ttl}++;
            push @bad, $rr->ttl if $rr->ttl < 50 || $rr->ttl > 100;
        }
    }
    is($answered, 50, 'jitter: 50 queries answered');
    is("@bad", '', 'jitter: every TTL within [50, 100]');
    ok(keys(%seen) >= 2, 'jitter: at least two distinct TTLs')
        or diag('TTLs seen: ' . join(' ', sort { $a <=> $b } keys %seen));
}

# dns_soa minimum and contact

{
    my $soa = soa_of($t, $t->port(2));
    ok($soa, 'minimum=5s: SOA answered');
    is($soa && $soa->minimum, 5, 'minimum=5s: SOA minimum field');
    is($soa && $soa->ttl, 10, 'minimum=5s: SOA record TTL stays dns_ttl');
    is(DnsTest::soa_rname($soa), 'admin.example.net', 'contact=admin@example.net: RNAME');
    is($soa && $soa->refresh, 3600, 'default refresh kept');

    for my $q (['nx.www.example.com', 'A', 'NXDOMAIN'], ['www.example.com', 'MX', 'NOERROR']) {
        my ($name, $type, $rcode) = @$q;
        my $p = $t->ask(port => $t->port(2), name => $name, type => $type);
        is($p && $p->header->rcode, $rcode, "minimum=5s: $name $type $rcode");
        my ($nsoa) = grep { $_->type eq 'SOA' } ($p ? $p->authority : ());
        is($nsoa && $nsoa->ttl, 5, "minimum=5s: $name $type SOA TTL 5");
        is($nsoa && $nsoa->minimum, 5, "minimum=5s: $name $type SOA minimum 5");
    }
}

{
    my $soa = soa_of($t, $t->port(3));
    is(DnsTest::soa_rname($soa), 'user.example.org', 'contact in DNS form: RNAME');
    is($soa && $soa->refresh, 7200, 'refresh=2h');
    is($soa && $soa->retry, 900, 'retry=15m');
    is($soa && $soa->expire, 1209600, 'expire=2w');
    is($soa && $soa->minimum, 10, 'minimum default 10');
}

# dns_ttl below the SOA minimum: the negative TTL is the TTL

{
    my $p = $t->ask(port => $t->port(6), name => 'www.example.com', type => 'A');
    is(join(',', map { $_->ttl } ($p ? $p->answer : ())), '5', 'dns_ttl 5s: A TTL 5');
    $p = $t->ask(port => $t->port(6), name => 'nx.www.example.com', type => 'A');
    my ($nsoa) = grep { $_->type eq 'SOA' } ($p ? $p->authority : ());
    is($nsoa && $nsoa->ttl, 5, 'dns_ttl 5s: NXDOMAIN SOA TTL min(5, 10)');
    my $soa = soa_of($t, $t->port(6));
    is($soa && $soa->ttl, 5, 'dns_ttl 5s: SOA TTL 5');
    is($soa && $soa->minimum, 10, 'dns_ttl 5s: SOA minimum still 10');
}

# the serial is derived from the configuration

{
    my $t2 = DnsTest->new(ports => 6);
    $t2->write_config(make_conf());
    $t2->run or BAIL_OUT('second nginx did not start: ' . $t2->error_log);

    for my $n (2, 3, 5, 6) {
        my $s1 = soa_of($t, $t->port($n));
        my $s2 = soa_of($t2, $t2->port($n));
        ok($s1 && $s2, "serial: server $n answered on both instances");
        is($s1 && $s1->serial, $s2 && $s2->serial,
            "serial: server $n identical on two instances with the same config");
    }

    my $s5 = soa_of($t, $t->port(5));
    my $s4 = soa_of($t, $t->port(4));
    ok($s4 && $s5 && $s4->serial != $s5->serial,
        'serial: differs when the name servers change')
        or diag('serials ' . ($s4 ? $s4->serial : '-') . ' ' . ($s5 ? $s5->serial : '-'));

    # the SOA in negative answers carries the same serial
    my $p = $t->ask(port => $t->port(5), name => 'nx.www.example.com', type => 'A');
    my ($nsoa) = grep { $_->type eq 'SOA' } ($p ? $p->authority : ());
    is($nsoa && $nsoa->serial, $s5 && $s5->serial, 'serial: same in the NXDOMAIN SOA');

    # stable over time and restarts
    $t2->stop;
    $t2->run or BAIL_OUT('second nginx did not restart: ' . $t2->error_log);
    my $again = soa_of($t2, $t2->port(5));
    is($again && $again->serial, $s5 && $s5->serial, 'serial: same after a restart');
    $t2->stop;
    is(join("\n", $t2->crash_lines), '', 'second instance: no crash in error log');
}

$t->stop;
is(join("\n", $t->crash_lines), '', 'no crash in error log');

done_testing();

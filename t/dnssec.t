#!/usr/bin/perl

# Signed answers through real nginx, over UDP (fast path and session path)
# and TCP: RRSIGs only with DO; AD never set, CD copied; NXDOMAIN and
# NODATA proved by the apex's NSEC; DS at the apex is NODATA; DNSKEY, CDS,
# CDNSKEY; truncation and the TCP retry with many signatures; the DNSKEY
# RRset of a multi-signer host; wildcard answers; addresses of a wildcard
# listen signed on demand, in a bounded table; a draining host's REFUSED is
# not signed. delv (BIND) validates the answers from a trust anchor for
# www.example.com itself, and rejects them with another key.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";

use Test::More;
use Time::Local qw(timegm);
use DnsTest;

my $t = DnsTest->new(ports => 6);
my $prefix = $t->prefix;
my $REPO = DnsTest::repo_dir();
my $KEY = "$REPO/nginx-conf/dnssec-test-key/Kwww.example.com.+013+15572";
my $DATA = "$REPO/src/dns/testdata";
my @OTHERS = map { "$DATA/Kwww.example.com.$_" } '+013+19397', '+015+54010', '+013+49098';
my $FOREIGN = "$DATA/Kwww.example.com.+013+64987.key";
my $CDS_DIGEST = '512DA97365E2645A5F18FD2F84AC738A89010F3B9A17DE03E61709FEFE7F3F03';

sub wildcard_listen {
    my ($port) = @_;
    return "        listen 0.0.0.0:%%$port%% udp;\n        listen 0.0.0.0:%%$port%%;\n";
}

my $d = DnsTest->new(ports => 1);
open my $fh, '>', $d->prefix . '/drain.load' or die $!;
print {$fh} "drain\n";
close $fh;
$d->write_config(DnsTest::conf(server => "dns_dnssec_key $KEY;\ndns_load_file %%PREFIX%%/drain.load;"));
$d->run or BAIL_OUT('nginx did not start: ' . $d->error_log);

# PORT: one key; PORT2: four signing keys and another signer's key; PORT3:
# a wildcard listen (fast path); PORT4: the same on the session path;
# PORT5: a wildcard listen with room for one signed address; PORT6:
# dns_wildcard on. A second nginx drains (servers of one name share their
# load state).
$t->write_config(DnsTest::conf(
    server  => "dns_dnssec_key $KEY;",
    servers => DnsTest::server_block(
        port  => 'PORT2',
        extra => join("\n", map({ "dns_dnssec_key $_;" } $KEY, @OTHERS), "dns_dnssec_public_keys $FOREIGN;"),
    ) . DnsTest::server_block(
        port   => 'PORT3',
        listen => wildcard_listen('PORT3'),
        extra  => "dns_dnssec_key $KEY;",
    ) . DnsTest::server_block(
        port   => 'PORT4',
        listen => wildcard_listen('PORT4'),
        extra  => "dns_dnssec_key $KEY;\ndns_udp_fast_path off;",
    ) . DnsTest::server_block(
        port   => 'PORT5',
        listen => wildcard_listen('PORT5'),
        extra  => "dns_dnssec_key $KEY;\ndns_dnssec_signing max_addresses=1;",
    ) . DnsTest::server_block(
        port  => 'PORT6',
        extra => "dns_dnssec_key $KEY;\ndns_wildcard on;",
    ),
));
$t->run or BAIL_OUT('nginx did not start: ' . $t->error_log);

sub lcname { my $n = lc shift; $n =~ s/\.$//; return $n }
sub of_type { my ($type, @rr) = @_; return grep { $_->type eq $type } @rr }
sub covering { my ($type, @rr) = @_; return grep { $_->type eq 'RRSIG' && $_->typecovered eq $type } @rr }
# The first RRSIG over $type, or undef.
sub sig_over { my ($type, @rr) = @_; my ($sig) = covering($type, @rr); return $sig }
sub epoch { my ($s) = @_; my @f = $s =~ /^(\d{4})(\d\d)(\d\d)(\d\d)(\d\d)(\d\d)$/ or return 0;
    return timegm($f[5], $f[4], $f[3], $f[2], $f[1] - 1, $f[0]) }

sub dnssec_ask {
    my (%o) = @_;
    return $t->ask(edns => { do => 1, size => $o{size} // 1232 }, %o);
}

# Checks one RRSIG made with the test key.
sub good_rrsig {
    my ($sig, $type, $ttl, $w) = @_;
    ok($sig, "$w: RRSIG over $type") or return;
    is($sig->algorithm, 13, "$w: algorithm 13");
    is($sig->keytag, 15572, "$w: key tag 15572");
    is($sig->labels, 3, "$w: labels 3");
    is($sig->orgttl, $ttl, "$w: original TTL $ttl");
    is(lcname($sig->signame), 'www.example.com', "$w: signer is the apex");
    my ($in, $ex) = (epoch($sig->siginception), epoch($sig->sigexpiration));
    is($ex - $in, 14 * 86400 + 3600, "$w: valid 14 days, from an hour before signing");
    ok($in <= time - 3600 + 5 && $in > time - 3600 - 600, "$w: inception an hour ago");
}

my $P = $t->port(1);
for my $tr (['udp', 'udp'], ['tcp', 'tcp']) {
    my ($proto, $w) = @$tr;

    # The address and its signature; nothing without DO.

    my $p = dnssec_ask(proto => $proto, name => 'www.example.com', type => 'A');
    ok($p, "$w: A with DO answered") or next;
    is($p->header->rcode, 'NOERROR', "$w: A NOERROR");
    is($p->header->aa, 1, "$w: A AA");
    is($p->header->ad, 0, "$w: A AD clear");
    is($p->header->do, 1, "$w: DO echoed");
    is(join(',', map { $_->address } of_type('A', $p->answer)), '127.0.0.1', "$w: A 127.0.0.1");
    good_rrsig(sig_over('A', $p->answer), 'A', 10, "$w: A");
    is(scalar(of_type('RRSIG', $p->answer)), 1, "$w: one RRSIG");

    for my $edns ({ do => 0 }, undef) {
        my $what = $edns ? 'EDNS without DO' : 'no EDNS';
        my $plain = $t->ask(proto => $proto, name => 'www.example.com', type => 'A', ($edns ? (edns => $edns) : ()));
        is(scalar(of_type('A', $plain ? $plain->answer : ())), 1, "$w: $what: A");
        is(scalar(grep { $_->type =~ /^(RRSIG|NSEC)$/ } $plain ? ($plain->answer, $plain->authority) : ()), 0,
            "$w: $what: no RRSIG or NSEC");
    }

    # AD is never set by an authoritative server; CD is copied.

    $p = dnssec_ask(proto => $proto, name => 'www.example.com', type => 'A', ad => 1, cd => 1);
    is($p && $p->header->ad, 0, "$w: AD=1 in the query, clear in the answer");
    is($p && $p->header->cd, 1, "$w: CD copied");
    $p = dnssec_ask(proto => $proto, name => 'www.example.com', type => 'A');
    is($p && $p->header->cd, 0, "$w: CD clear when not asked");

    # NXDOMAIN and NODATA, proved by the apex's NSEC (next name: the apex).

    for my $case (['nope.www.example.com', 'A', 'NXDOMAIN'], ['www.example.com', 'TXT', 'NOERROR'],
                  ['www.example.com', 'DS', 'NOERROR']) {
        my ($name, $type, $rcode) = @$case;
        my $what = "$w: $name $type";
        $p = dnssec_ask(proto => $proto, name => $name, type => $type);
        ok($p, "$what answered") or next;
        is($p->header->rcode, $rcode, "$what: $rcode");
        is(scalar($p->answer), 0, "$what: empty answer");
        my @auth = $p->authority;
        my ($nsec) = of_type('NSEC', @auth);
        ok($nsec, "$what: NSEC in authority") or next;
        is(lcname($nsec->owner), 'www.example.com', "$what: NSEC owned by the apex");
        is(lcname($nsec->nxtdname), 'www.example.com', "$what: NSEC next name is the apex");
        is(join(' ', sort $nsec->typelist), 'A CDNSKEY CDS DNSKEY NS NSEC RRSIG SOA',
            "$what: the apex's types (no DS, no AAAA over IPv4)");
        is(scalar(of_type('SOA', @auth)), 1, "$what: SOA in authority");
        good_rrsig(sig_over('SOA', @auth), 'SOA', 10, "$what: SOA");
        good_rrsig(sig_over('NSEC', @auth), 'NSEC', 10, "$what: NSEC");
    }

    # DNSKEY, CDS and CDNSKEY at the apex.

    open my $kf, '<', "$KEY.key" or die $!;
    my ($dnskey_line) = grep { /DNSKEY/ && !/^;/ } <$kf>;
    my ($key_b64) = $dnskey_line =~ /DNSKEY\s+257\s+3\s+13\s+(.+)$/;
    $key_b64 =~ s/\s+//g;
    $p = dnssec_ask(proto => $proto, name => 'www.example.com', type => 'DNSKEY');
    my @keys = of_type('DNSKEY', $p ? $p->answer : ());
    is(scalar @keys, 1, "$w: one DNSKEY");
    is($keys[0] && $keys[0]->flags, 257, "$w: DNSKEY flags 257");
    is($keys[0] && $keys[0]->algorithm, 13, "$w: DNSKEY algorithm 13");
    is($keys[0] && $keys[0]->key, $key_b64, "$w: DNSKEY is the key file's");
    is($keys[0] && $keys[0]->ttl, 3600, "$w: DNSKEY TTL 3600 (key_ttl)");
    good_rrsig(sig_over('DNSKEY', $p ? $p->answer : ()), 'DNSKEY', 3600, "$w: DNSKEY");

    $p = dnssec_ask(proto => $proto, name => 'www.example.com', type => 'CDS');
    my ($cds) = of_type('CDS', $p ? $p->answer : ());
    is($cds && join(' ', $cds->keytag, $cds->algorithm, $cds->digtype, uc $cds->digest),
        "15572 13 2 $CDS_DIGEST", "$w: CDS is the DS for the parent");
    ok(covering('CDS', $p ? $p->answer : ()), "$w: CDS signed");
    $p = dnssec_ask(proto => $proto, name => 'www.example.com', type => 'CDNSKEY');
    my ($cdnskey) = of_type('CDNSKEY', $p ? $p->answer : ());
    is($cdnskey && $cdnskey->key, $key_b64, "$w: CDNSKEY is the key");
    ok(covering('CDNSKEY', $p ? $p->answer : ()), "$w: CDNSKEY signed");

    $p = $t->ask(proto => $proto, name => 'www.example.com', type => 'DNSKEY');
    is(scalar(of_type('DNSKEY', $p ? $p->answer : ())), 1, "$w: DNSKEY without DO");
    is(scalar(of_type('RRSIG', $p ? $p->answer : ())), 0, "$w: DNSKEY without DO: no RRSIG");

    for my $type (qw(NS SOA)) {
        $p = dnssec_ask(proto => $proto, name => 'www.example.com', type => $type);
        good_rrsig(sig_over($type, $p ? $p->answer : ()), $type, 10, "$w: $type");
    }
}

# Four signing keys and another signer's public key: every RRset has four
# RRSIGs; the DNSKEY RRset holds all five keys. Too large for 512 octets:
# TC over UDP, the whole answer over TCP.

{
    my $P2 = $t->port(2);
    my $p = dnssec_ask(port => $P2, proto => 'tcp', name => 'www.example.com', type => 'DNSKEY');
    is(join(' ', sort map { $_->keytag } of_type('DNSKEY', $p ? $p->answer : ())),
        '15572 19397 49098 54010 64987', 'multi-signer: DNSKEY RRset holds the other signer\'s key');
    is(join(' ', sort map { $_->keytag } covering('DNSKEY', $p ? $p->answer : ())),
        '15572 19397 49098 54010', 'multi-signer: signed by this host\'s keys only');
    is(join(' ', sort map { $_->keytag } of_type('CDS', dnssec_ask(port => $P2, proto => 'tcp',
        name => 'www.example.com', type => 'CDS')->answer)), '15572 19397 49098 54010 64987',
        'multi-signer: a CDS for every key');

    my ($small, $raw) = dnssec_ask(port => $P2, name => 'nope.www.example.com', type => 'A', size => 512);
    ok($small && $small->header->tc, 'four keys, 512-octet UDP: TC=1');
    ok(length($raw // '') <= 512, 'four keys, 512-octet UDP: within 512 octets');
    is($small && scalar($small->authority), 0, 'four keys, 512-octet UDP: no records');
    my $res = $t->resolver(port => $P2, dnssec => 1, udppacketsize => 512);
    $res->igntc(0);
    $p = $res->send('nope.www.example.com', 'A');
    ok($p && !$p->header->tc, 'resolver retried over TCP');
    is($p && $p->header->rcode, 'NXDOMAIN', 'over TCP: NXDOMAIN');
    is(scalar(covering('NSEC', $p ? $p->authority : ())), 4, 'over TCP: four RRSIGs over the NSEC');
    is(scalar(covering('SOA', $p ? $p->authority : ())), 4, 'over TCP: four RRSIGs over the SOA');
    my $udp = dnssec_ask(port => $P2, name => 'nope.www.example.com', type => 'A');
    ok($udp && !$udp->header->tc, 'fits 1232 octets over UDP');
  SKIP: {
        skip 'dig not installed', 2 unless `which dig 2>/dev/null`;
        my $dig = `dig +dnssec +bufsize=512 +norec +time=2 +tries=1 \@127.0.0.1 -p $P2 nope.www.example.com A 2>&1`;
        like($dig, qr/Truncated, retrying in TCP mode/, 'dig +bufsize=512: truncated, retried over TCP');
        like($dig, qr/status: NXDOMAIN.*AUTHORITY: 10,/s, 'dig over TCP: SOA, NSEC and eight RRSIGs');
    }
}

# A wildcard listen: the interface addresses are signed at start (127.0.0.1
# among them); a query on another local address is answered once it is
# signed for, on the fast path, the session path and over TCP, and logged.

for my $case ([3, 'udp', '127.0.0.2', 'fast path'], [3, 'tcp', '127.0.0.3', 'tcp'],
              [4, 'udp', '127.0.0.4', 'session path']) {
    my ($pn, $proto, $addr, $w) = @$case;
    my $port = $t->port($pn);
    my $p = dnssec_ask(port => $port, proto => $proto, name => 'www.example.com', type => 'A');
    is($p && join(',', map { $_->address } of_type('A', $p->answer)), '127.0.0.1', "$w: 127.0.0.1");
    ok($p && covering('A', $p->answer), "$w: 127.0.0.1 signed at start");
    for (1 .. 2) {
        $p = dnssec_ask(port => $port, proto => $proto, addr => $addr, name => 'www.example.com', type => 'A');
        is($p && $p->header->rcode, 'NOERROR', "$w: $addr ($_): NOERROR");
        is($p && join(',', map { $_->address } of_type('A', $p->answer)), $addr, "$w: $addr ($_): its address");
        good_rrsig(sig_over('A', $p ? $p->answer : ()), 'A', 10, "$w: $addr ($_)");
    }
    my $log = $t->error_log;
    is(() = $log =~ /DNSSEC: signed for the new local address \Q$addr\E\b/g, 1, "$w: $addr signed once, logged");
}

# Room for one address: the interface addresses fill it at start; DNSSEC
# queries on another address get SERVFAIL, logged once; without DO they
# are answered.

{
    my $port = $t->port(5);
    for my $addr (qw(127.0.0.5 127.0.0.6)) {
        my $p = dnssec_ask(port => $port, addr => $addr, name => 'www.example.com', type => 'A');
        is($p && $p->header->rcode, 'SERVFAIL', "table full: $addr with DO: SERVFAIL");
        $p = $t->ask(port => $port, addr => $addr, name => 'www.example.com', type => 'A');
        is($p && join(',', map { $_->address } of_type('A', $p->answer)), $addr,
            "table full: $addr without DO: answered");
    }
    my $log = $t->error_log;
    is(() = $log =~ /cannot sign for the local address 127\.0\.0\.[56]: the table of 1 signed addresses is full/g,
        1, 'table full: logged once');
}

# A draining host refuses, unsigned.

{
    for (1 .. 40) {
        my $p = $d->ask(name => 'www.example.com', type => 'A');
        last if $p && $p->header->rcode eq 'REFUSED';
        select undef, undef, undef, 0.05;
    }
    for my $proto (qw(udp tcp)) {
        my ($p, $raw) = $d->ask(proto => $proto, name => 'www.example.com', type => 'A', edns => { do => 1 });
        is($p && $p->header->rcode, 'REFUSED', "draining, $proto: REFUSED");
        is($p && scalar($p->answer, $p->authority), 0, "draining, $proto: no records");
        is(scalar(grep { $_->{type} == 46 || $_->{type} == 47 } DnsTest::raw_records($raw)), 0,
            "draining, $proto: no RRSIG or NSEC");
    }
}

# dns_wildcard on: the answer's owner is the name asked for; its RRSIG
# has the apex's label count (expanded from *.www.example.com), and an
# NSEC proves the name itself does not exist. Below *.www.example.com,
# NXDOMAIN (RFC 4592).

{
    my $port = $t->port(6);
    my $p = dnssec_ask(port => $port, name => 'Tenant7.www.example.com', type => 'A');
    my ($a) = of_type('A', $p ? $p->answer : ());
    is($a && lcname($a->owner), 'tenant7.www.example.com', 'wildcard: owner is the name asked for');
    my ($sig) = covering('A', $p ? $p->answer : ());
    is($sig && $sig->labels, 3, 'wildcard: RRSIG labels 3 (expanded)');
    is(scalar(of_type('NSEC', $p ? $p->authority : ())), 1, 'wildcard: NSEC in authority');
    $p = dnssec_ask(port => $port, name => 'x.*.www.example.com', type => 'A');
    is($p && $p->header->rcode, 'NXDOMAIN', 'wildcard: below *.www.example.com: NXDOMAIN');
}

# An independent validator: delv, with www.example.com's own key as its
# trust anchor, validates every kind of answer; with another key it fails.

SKIP: {
    skip 'delv (bind9-dnsutils) not installed', 12 unless `which delv 2>/dev/null`;
    my $anchor = sub {
        my ($file, @keys) = @_;
        my @lines;
        for my $key (@keys) {
            open my $kf, '<', $key or die "$key: $!";
            my ($rr) = grep { /DNSKEY/ && !/^;/ } <$kf>;
            my ($flags, $alg, $b64) = $rr =~ /DNSKEY\s+(\d+)\s+3\s+(\d+)\s+(.+)$/;
            $b64 =~ s/\s+//g;
            push @lines, qq{    www.example.com. static-key $flags 3 $alg "$b64";};
        }
        open my $out, '>', "$prefix/$file" or die $!;
        print {$out} "trust-anchors {\n", join("\n", @lines), "\n};\n";
        close $out;
        return "$prefix/$file";
    };
    my $own = $anchor->('own.anchor', "$KEY.key");
    my $wrong = $anchor->('wrong.anchor', "$OTHERS[0].key");
    my $ed = $anchor->('ed.anchor', "$OTHERS[1].key");
    my $delv = sub {
        my ($anchor_file, $addr, $port, $name, $type, @more) = @_;
        return scalar `delv -a $anchor_file +root=www.example.com \@$addr -p $port $name $type +noclass +nottl @more 2>&1`;
    };
    my $P2 = $t->port(2);
    like($delv->($own, '127.0.0.1', $P, 'www.example.com', 'A'), qr/^; fully validated\n.*A\s+127\.0\.0\.1/m,
        'delv: A fully validated');
    like($delv->($own, '127.0.0.1', $P, 'www.example.com', 'A', '+tcp'), qr/^; fully validated/m,
        'delv: A over TCP fully validated');
    like($delv->($own, '127.0.0.1', $P, 'nope.www.example.com', 'A'), qr/^; negative response, fully validated/m,
        'delv: NXDOMAIN fully validated');
    like($delv->($own, '127.0.0.1', $P, 'www.example.com', 'TXT'), qr/^; negative response, fully validated/m,
        'delv: NODATA fully validated');
    like($delv->($own, '127.0.0.1', $P, 'www.example.com', 'CDS'), qr/^; fully validated/m,
        'delv: CDS fully validated');
    like($delv->($own, '127.0.0.2', $t->port(3), 'www.example.com', 'A'),
        qr/^; fully validated\n.*A\s+127\.0\.0\.2/m, 'delv: an address signed on demand fully validated');
    like($delv->($own, '127.0.0.1', $t->port(6), 'any.www.example.com', 'A'), qr/^; fully validated/m,
        'delv: a wildcard answer fully validated');
    like($delv->($ed, '127.0.0.1', $P2, 'www.example.com', 'A'), qr/^; fully validated/m,
        'delv: multi-signer host, Ed25519 key as anchor: fully validated');
    like($delv->($own, '127.0.0.1', $P2, 'nope.www.example.com', 'A'),
        qr/^; negative response, fully validated/m, 'delv: multi-signer host, NXDOMAIN fully validated');
    my $bad = $delv->($wrong, '127.0.0.1', $P, 'www.example.com', 'A');
    unlike($bad, qr/fully validated/, 'delv: another key as anchor: not validated');
    like($bad, qr/resolution failed|no valid|insecurity proof failed|broken trust chain/,
        'delv: another key as anchor: fails') or diag($bad);
    my $refused = $delv->($own, '127.0.0.1', $d->port, 'www.example.com', 'A');
    unlike($refused, qr/fully validated/, 'delv: a draining host validates nothing');
}

$_->stop for $t, $d;
is(join("\n", $t->crash_lines, $d->crash_lines), '', 'no crash in error log');

done_testing();

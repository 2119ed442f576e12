#!/usr/bin/perl

# DNSSEC configuration: every bad key file (missing, malformed, a private
# half of another key, an unsupported algorithm, another zone's key, not a
# zone key) and every bad dns_dnssec_* value makes "nginx -t" fail with a
# message naming the directive and the file:line; keys from dnssec-keygen
# and ldns-keygen (ECDSA P-256 and Ed25519) load, by prefix, by either
# file's name and by a path relative to the configuration's directory; the
# error log names each key's tag and the DS record for the parent, as
# dnssec-dsfromkey -2 prints it.

use strict;
use warnings;

use File::Copy qw(copy);
use FindBin;
use lib "$FindBin::Bin/lib";

use Test::More;
use DnsTest;

my $t = DnsTest->new(ports => 2);
my $prefix = $t->prefix;
my $DATA = DnsTest::repo_dir() . '/src/dns/testdata';
my $KEY = "$DATA/Kwww.example.com.+013+19397";        # dnssec-keygen, ECDSA P-256
my $ED = "$DATA/Kwww.example.com.+015+54010";         # dnssec-keygen, Ed25519
my $LDNS = "$DATA/Kwww.example.com.+013+49098";       # ldns-keygen
my $ZSK = "$DATA/Kwww.example.com.+013+64987.key";    # public half only, flags 256
my $DS = 'www.example.com. IN DS 19397 13 2 E4EFB17D9AB20645E02ADD0EF47364C54DF45DC381FD97F3B531547E18BA9C18';

sub slurp { my ($f) = @_; open my $fh, '<', $f or die "$f: $!"; local $/; return <$fh> }
sub spew { my ($f, $text) = @_; open my $fh, '>', $f or die "$f: $!"; print {$fh} $text; close $fh }

# Broken key files, made from the good ones.
mkdir "$prefix/bad";
my $key_text = slurp("$KEY.key");
my $private_text = slurp("$KEY.private");
spew("$prefix/bad/Kgarbage.key", "this is not a DNSKEY record\n");
spew("$prefix/bad/Kgarbage.private", $private_text);
spew("$prefix/bad/Kmismatch.key", $key_text);
spew("$prefix/bad/Kmismatch.private", slurp("$LDNS.private"));
(my $rsa = $key_text) =~ s/DNSKEY 257 3 13/DNSKEY 257 3 8/;
spew("$prefix/bad/Krsa.key", $rsa);
(my $rsa_private = $private_text) =~ s/^Algorithm: 13 .*$/Algorithm: 8 (RSASHA256)/m;
spew("$prefix/bad/Krsa.private", $rsa_private);
(my $other = $key_text) =~ s/^www\.example\.com\. /www.example.org. /m;
spew("$prefix/bad/Kother.key", $other);
spew("$prefix/bad/Kother.private", $private_text);
(my $flags0 = $key_text) =~ s/DNSKEY 257 3 13/DNSKEY 0 3 13/;
spew("$prefix/bad/Kflags0.key", $flags0);
spew("$prefix/bad/Kprivate-missing.key", $key_text);

# Each case: [description, directive named in the message, server text,
#             regex of the offending line, text the message must hold]
my @bad = (
    ['key files missing', 'dns_dnssec_key',
        "dns_dnssec_key $prefix/bad/Knothing;", qr/dns_dnssec_key \S+Knothing/, qr/cannot read/],
    ['private file missing', 'dns_dnssec_key',
        "dns_dnssec_key $prefix/bad/Kprivate-missing;", qr/Kprivate-missing/,
        qr/Kprivate-missing\.private/],
    ['malformed key file', 'dns_dnssec_key',
        "dns_dnssec_key $prefix/bad/Kgarbage;", qr/Kgarbage/, qr/Kgarbage\.key/],
    ['private half of another key', 'dns_dnssec_key',
        "dns_dnssec_key $prefix/bad/Kmismatch;", qr/Kmismatch/, qr/does not hold the private key/],
    ['unsupported algorithm', 'dns_dnssec_key',
        "dns_dnssec_key $prefix/bad/Krsa;", qr/Krsa/, qr/algorithm 8 is not supported/],
    ['key of another zone', 'dns_dnssec_key',
        "dns_dnssec_key $prefix/bad/Kother;", qr/Kother/, qr/www\.example\.org/],
    ['second of two keys bad', 'dns_dnssec_key',
        "dns_dnssec_key $KEY;\ndns_dnssec_key $prefix/bad/Kgarbage;", qr/Kgarbage/, qr/Kgarbage/],
    ['same key twice', 'dns_dnssec_key',
        "dns_dnssec_key $KEY;\ndns_dnssec_key $KEY;", qr/dns_dnssec_key \Q$KEY\E;/, qr/is duplicate/],
    ['published key missing', 'dns_dnssec_public_keys',
        "dns_dnssec_key $KEY;\ndns_dnssec_public_keys $LDNS.key $prefix/bad/Knothing.key;",
        qr/dns_dnssec_public_keys/, qr/Knothing\.key/],
    ['published key not a zone key', 'dns_dnssec_public_keys',
        "dns_dnssec_key $KEY;\ndns_dnssec_public_keys $prefix/bad/Kflags0.key;",
        qr/dns_dnssec_public_keys/, qr/zone key bit/],
    ['published key of another zone', 'dns_dnssec_public_keys',
        "dns_dnssec_key $KEY;\ndns_dnssec_public_keys $prefix/bad/Kother.key;",
        qr/dns_dnssec_public_keys/, qr/www\.example\.org/],
    ['public keys without a signing key', 'dns_dnssec_public_keys',
        "dns_dnssec_public_keys $LDNS.key;", qr/dns_dnssec_public_keys/, qr/requires "dns_dnssec_key"/],
    ['signing settings without a signing key', 'dns_dnssec_signing',
        "dns_dnssec_signing validity=7d;", qr/dns_dnssec_signing/, qr/requires "dns_dnssec_key"/],
    ['validity 1s', 'dns_dnssec_signing',
        "dns_dnssec_key $KEY;\ndns_dnssec_signing validity=1s;", qr/dns_dnssec_signing/,
        qr/"validity=1s"/],
    ['validity 400d', 'dns_dnssec_signing',
        "dns_dnssec_key $KEY;\ndns_dnssec_signing refresh=1d validity=400d;", qr/dns_dnssec_signing/,
        qr/"validity=400d"/],
    ['refresh not below the validity', 'dns_dnssec_signing',
        "dns_dnssec_key $KEY;\ndns_dnssec_signing validity=2h refresh=3h;", qr/dns_dnssec_signing/,
        qr/"validity=2h refresh=3h".*refresh must be/],
    ['refresh 10s', 'dns_dnssec_signing',
        "dns_dnssec_key $KEY;\ndns_dnssec_signing refresh=10s;", qr/dns_dnssec_signing/,
        qr/"refresh=10s"/],
    ['time not a time', 'dns_dnssec_signing',
        "dns_dnssec_key $KEY;\ndns_dnssec_signing validity=30d refresh=20d inception_skew=abc;",
        qr/dns_dnssec_signing/, qr/"inception_skew=abc"/],
    ['max_addresses 0', 'dns_dnssec_signing',
        "dns_dnssec_key $KEY;\ndns_dnssec_signing max_addresses=0;", qr/dns_dnssec_signing/,
        qr/"max_addresses=0"/],
    ['unknown parameter', 'dns_dnssec_signing',
        "dns_dnssec_key $KEY;\ndns_dnssec_signing lifetime=1d;", qr/dns_dnssec_signing/,
        qr/"lifetime=1d"/],
    ['signing settings twice', 'dns_dnssec_signing',
        "dns_dnssec_key $KEY;\ndns_dnssec_signing validity=7d;\ndns_dnssec_signing validity=8d;",
        qr/dns_dnssec_signing validity=8d/, qr/is duplicate/],
    ['listen addresses beyond max_addresses', 'dns_dnssec_signing',
        "dns_dnssec_key $KEY;\ndns_dnssec_signing max_addresses=1;\nlisten 127.0.0.2:%%PORT%% udp;",
        qr/dns_dnssec_signing max_addresses=1/, qr/127\.0\.0\.[12]/],
);

sub line_of {
    my ($re) = @_;
    my @lines = split /\n/, $t->config_text;
    my @hits = grep { $lines[$_] =~ $re } 0 .. $#lines;
    return @hits ? $hits[-1] + 1 : undef;
}

for my $case (@bad) {
    my ($what, $directive, $server, $re, $says) = @$case;
    $t->write_config(DnsTest::conf(server => $server));
    my $line = line_of($re);
    ok($line, "$what: offending line found in the test config") or next;
    my ($rc, $out) = $t->test_config;
    isnt($rc, 0, "$what: nginx -t fails");
    like($out, qr/"\Q$directive\E"/, "$what: message names \"$directive\"") or diag($out);
    like($out, qr/nginx\.conf:$line\b/, "$what: message points at nginx.conf:$line") or diag($out);
    like($out, $says, "$what: message says why") or diag($out);
    unlike($out, qr/panicked|exited on signal|Segmentation/, "$what: no crash");
}

# dns_dnssec_* in a server without dns_service

{
    $t->write_config(DnsTest::conf(servers => <<"EOF"));
    server {
        listen 127.0.0.1:%%PORT2%%;
        dns_dnssec_key $KEY;
    }
EOF
    my ($rc, $out) = $t->test_config;
    isnt($rc, 0, 'dns_dnssec_key without dns_service: nginx -t fails');
    like($out, qr/"dns_dnssec_key" requires "dns_service"/, 'without dns_service: says so') or diag($out);
}

# good configurations pass

mkdir "$prefix/keys";
copy("$KEY.$_", "$prefix/keys/") or die "copy: $!" for qw(key private);
my @good = (
    ['dnssec-keygen ECDSA key by prefix', "dns_dnssec_key $KEY;"],
    ['by the .key file', "dns_dnssec_key $KEY.key;"],
    ['by the .private file', "dns_dnssec_key $KEY.private;"],
    ['relative to the configuration directory', 'dns_dnssec_key keys/Kwww.example.com.+013+19397;'],
    ['Ed25519 key', "dns_dnssec_key $ED;"],
    ['ldns-keygen key', "dns_dnssec_key $LDNS;"],
    ['two signing keys, two algorithms', "dns_dnssec_key $KEY;\ndns_dnssec_key $ED;"],
    ['multi-signer, own key in the published list',
        "dns_dnssec_key $KEY;\ndns_dnssec_public_keys $KEY.key $LDNS.key $ZSK;\ndns_dnssec_public_keys $ED.key;"],
    ['every signing setting',
        "dns_dnssec_key $KEY;\ndns_dnssec_signing validity=30d inception_skew=2h refresh=10d key_ttl=1d max_addresses=8;"],
    ['fixed addresses', "dns_dnssec_key $KEY;\ndns_address 192.0.2.1 2001:db8::1;"],
    ['with the wildcard', "dns_dnssec_key $KEY;\ndns_wildcard on;"],
);
for my $case (@good) {
    my ($what, $server) = @$case;
    $t->write_config(DnsTest::conf(server => $server));
    my ($rc, $out) = $t->test_config;
    is($rc, 0, "good: $what: nginx -t passes") or diag($out);
}

# The error log names the key and the DS for the parent; a published key
# that is also a signing key is named once.

{
    $t->write_config(DnsTest::conf(
        server => "dns_dnssec_key keys/Kwww.example.com.+013+19397;\ndns_dnssec_public_keys $KEY.key $LDNS.key;"));
    $t->run or BAIL_OUT('nginx did not start: ' . $t->error_log);
    my $log = $t->error_log;
    like($log, qr/\[notice\].*dns_service www\.example\.com: DNSSEC signing key 19397 \(ECDSAP256SHA256\) from "\Q$prefix\E\/keys\/Kwww\.example\.com\.\+013\+19397"; DS for the parent zone: \Q$DS\E$/m,
        'notice: signing key tag, file and DS');
    like($log, qr/DNSSEC publishing key 49098 \(ECDSAP256SHA256\) of another signer from "\Q$LDNS.key\E"; its DS: www\.example\.com\. IN DS 49098 13 2 [0-9A-F]{64}$/m,
        'notice: published key tag and DS');
    unlike($log, qr/publishing key 19397/, 'own key named once, as a signing key');
  SKIP: {
        my $dsfromkey = `dnssec-dsfromkey -2 $KEY.key 2>/dev/null`;
        skip 'dnssec-dsfromkey not installed', 2 unless $dsfromkey;
        chomp $dsfromkey;
        is($dsfromkey, $DS, 'the DS is what dnssec-dsfromkey -2 prints');
        my ($ldns_ds) = $log =~ /its DS: (www\.example\.com\. IN DS 49098 .*)$/m;
        chomp(my $expected = `dnssec-dsfromkey -2 $LDNS.key`);
        is($ldns_ds, $expected, 'the published key DS is what dnssec-dsfromkey -2 prints');
    }
    my $p = $t->ask(name => 'www.example.com', type => 'DNSKEY', edns => { do => 1 });
    is(scalar(grep { $_->type eq 'DNSKEY' } ($p ? $p->answer : ())), 2, 'DNSKEY RRset: both keys');
    $t->stop;
    is(join("\n", $t->crash_lines), '', 'no crash in error log');
}

done_testing();

#!/usr/bin/perl

# Re-signing without a reload: with refresh=1m (the shortest allowed),
# every worker makes its signatures again a minute after they were made,
# from its timer; until then every answer carries the very same signature
# bytes (nothing is signed per query). Takes about 65 seconds.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";

use Test::More;
use Time::HiRes qw(time sleep);
use Time::Local qw(timegm);
use DnsTest;

my $t = DnsTest->new(ports => 1);
my $KEY = DnsTest::repo_dir() . '/nginx-conf/dnssec-test-key/Kwww.example.com.+013+15572';
$t->write_config(DnsTest::conf(
    workers => 2,
    server  => "dns_dnssec_key $KEY;\ndns_dnssec_signing validity=1h inception_skew=0 refresh=1m;",
));
$t->run or BAIL_OUT('nginx did not start: ' . $t->error_log);
my @workers = $t->worker_pids;
my $starts = $t->worker_starts;

sub epoch { my ($s) = @_; my @f = $s =~ /^(\d{4})(\d\d)(\d\d)(\d\d)(\d\d)(\d\d)$/ or return 0;
    return timegm($f[5], $f[4], $f[3], $f[2], $f[1] - 1, $f[0]) }

# (inception, expiration, signature) of the A RRset's RRSIG.
sub signature {
    my ($proto) = @_;
    my $p = $t->ask(proto => $proto, name => 'www.example.com', type => 'A', edns => { do => 1 });
    my ($sig) = grep { $_->type eq 'RRSIG' } ($p ? $p->answer : ());
    return $sig ? (epoch($sig->siginception), epoch($sig->sigexpiration), $sig->sigbin) : ();
}

my ($signed_at, $expiration, $bytes) = signature('udp');
ok($signed_at, 'signed at start') or BAIL_OUT('no RRSIG');
is($expiration - $signed_at, 3600, 'valid for an hour');
ok(abs($signed_at - time) < 30, 'signed when the configuration was read');

# Until the refresh: the same signature, whichever worker and transport.
my $same = 0;
for my $i (1 .. 20) {
    my (undef, undef, $sig) = signature($i % 2 ? 'udp' : 'tcp');
    $same++ if defined $sig && $sig eq $bytes;
}
is($same, 20, 'twenty answers, one signature: nothing signed per query');

# After the refresh: new signatures in every worker, no reload.
my $deadline = $signed_at + 60 + 15;
while (time < $deadline) {
    my ($udp) = signature('udp');
    my ($tcp) = signature('tcp');
    last if $udp && $tcp && $udp >= $signed_at + 60 && $tcp >= $signed_at + 60;
    sleep 0.5;
}
my ($in, $ex) = signature('udp');
ok($in >= $signed_at + 60, 'UDP: inception moved by the refresh') or diag("$in vs $signed_at");
is($ex - $in, 3600, 'UDP: new signatures valid for an hour');
my ($tin) = signature('tcp');
ok($tin >= $signed_at + 60, 'TCP: inception moved by the refresh');

my $log = $t->error_log;
my %resigned = map { $_ => 1 } $log =~ /\[info\] (\d+)#\d+: dns_service www\.example\.com: DNSSEC signatures made again/g;
is_deeply([sort keys %resigned], [sort @workers], 'each worker signed again');
is_deeply([$t->worker_pids], \@workers, 'same worker processes');
is($t->worker_starts, $starts, 'no reload');

SKIP: {
    skip 'delv (bind9-dnsutils) not installed', 1 unless `which delv 2>/dev/null`;
    open my $kf, '<', "$KEY.key" or die $!;
    my ($rr) = grep { /DNSKEY/ && !/^;/ } <$kf>;
    my ($b64) = $rr =~ /DNSKEY\s+257\s+3\s+13\s+(.+)$/;
    $b64 =~ s/\s+//g;
    my $anchor = $t->prefix . '/anchor';
    open my $out, '>', $anchor or die $!;
    print {$out} qq{trust-anchors { www.example.com. static-key 257 3 13 "$b64"; };\n};
    close $out;
    my $port = $t->port;
    like(`delv -a $anchor +root=www.example.com \@127.0.0.1 -p $port www.example.com A 2>&1`,
        qr/^; fully validated/m, 'delv: the new signatures validate');
}

$t->stop;
is(join("\n", $t->crash_lines), '', 'no crash in error log');

done_testing();

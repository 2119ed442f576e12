#!/usr/bin/perl

# dns_shed points with a refuse probability: at a load where the curve
# refuses half of the queries, about half of the answers are a fast
# REFUSED (no records, no AA) and the other half NOERROR, over UDP (fast
# path and session path) and TCP, with dns_silence drop (the curve's
# refusals do not depend on it). Nothing is dropped, nothing waits; the
# status endpoint reports the refuse ratio and the curve's refuse values;
# the access log says "refused shedding". Interpolation between points:
# halfway to a point that refuses 50%, about 25% are refused. The old
# LOAD:DELAY:DROP syntax still loads, and bad refuse fields fail nginx -t.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";

use Test::More;
use Time::HiRes qw(time sleep);
use DnsTest;
use LoadTest;

###############################################################################
# Configuration errors

{
    my $c = DnsTest->new(ports => 1);
    for my $case (
        ['refuse above 1', 'dns_shed 0.5:0 0.9:0:refuse=1.5;', qr/0\.9:0:refuse=1\.5/],
        ['unknown field', 'dns_shed 0.5:0 0.9:0:deny=0.5;', qr/0\.9:0:deny=0\.5/],
        ['drop and refuse over 1', 'dns_shed 0.5:0 0.9:0:0.6:refuse=0.5;', qr/drop and refuse together exceed 1/],
    ) {
        my ($what, $directive, $re) = @$case;
        $c->write_config(DnsTest::conf(server => $directive));
        my ($rc, $out) = $c->test_config;
        isnt($rc, 0, "$what: nginx -t fails");
        like($out, $re, "$what: says which point and why") or diag($out);
    }
    $c->write_config(DnsTest::conf(server => 'dns_shed 0.5:0 0.9:100ms:0.25 high=0.95;'));
    my ($rc, $out) = $c->test_config;
    is($rc, 0, 'the old LOAD:DELAY:DROP syntax passes nginx -t') or diag($out);
}

###############################################################################
# A running nginx whose curve refuses half of the queries from load 0.8

my $t = DnsTest->new(ports => 3);
my $prefix = $t->prefix;
my $LOAD = "$prefix/app.load";
my $SVC = 'www.example.com';
my $LSVC = 'logged.example.net';   # same load file and curve, session path, access log
my $CURVE = 'dns_shed 0.5:0 0.8:0:refuse=0.5 high=0.98;';

$t->write_config(DnsTest::conf(
    main => LoadTest::status_http('PORT2'),
    stream => "    log_format dns '\$dns_qname \$dns_rcode \$dns_action \$dns_state';",
    server => "dns_load_file %%PREFIX%%/app.load;\n$CURVE\ndns_silence drop;",
    servers => DnsTest::server_block(
        port    => 'PORT3',
        service => $LSVC,
        extra   => "dns_load_file %%PREFIX%%/app.load;\n$CURVE\ndns_silence drop;\n"
                 . "dns_udp_fast_path off;\naccess_log %%PREFIX%%/dns.log dns;",
    ),
));
my ($rc, $out) = $t->test_config;
is($rc, 0, 'a curve with refuse probabilities passes nginx -t') or diag($out);
$t->run or BAIL_OUT('nginx did not start: ' . $t->error_log);

my ($P, $SP, $LP) = map { $t->port($_) } 1, 2, 3;

sub svc { return LoadTest::service(LoadTest::status_json($SP), $_[0] // $SVC) }

# Writes a load figure and waits (bounded) until both services report it.
sub set_figure {
    my ($figure) = @_;
    LoadTest::write_load($LOAD, "$figure\n");
    my $took = LoadTest::wait_for(1.5, sub {
        !grep { my $s = svc($_); !$s || abs($s->{load} - $figure) > 0.0005 } $SVC, $LSVC;
    }, 0.02);
    ok(defined $took, "load file '$figure' applies within 1.5 s");
    return svc();
}

# Counts of (NOERROR with an address, REFUSED without records, unanswered)
# among UDP burst results.
sub tally {
    my (@r) = @_;
    my ($ok, $refused, $none, $bad) = (0, 0, 0, 0);
    for my $r (@r) {
        if (!$r->{answered}) { $none++; next }
        my $p = DnsTest::decode($r->{raw});
        if ($r->{rcode} == 0 && $p && $p->header->ancount == 1) { $ok++ }
        elsif ($r->{rcode} == 5 && $p && $p->header->ancount == 0 && !$p->header->aa) { $refused++ }
        else { $bad++ }
    }
    return ($ok, $refused, $none, $bad);
}

# $n queries pipelined on each of $conns TCP connections; returns the
# rcodes of the answers (undef for each one missing).
sub tcp_rcodes {
    my ($conns, $n) = @_;
    my @rcodes;
    for my $c (1 .. $conns) {
        my $s = $t->tcp_connect(port => $P) or do { push @rcodes, (undef) x $n; next };
        my $data = join '', map { DnsTest::frame(DnsTest::make_query(id => $c * 1000 + $_, name => $SVC)) } 1 .. $n;
        DnsTest::tcp_write($s, $data) or do { push @rcodes, (undef) x $n; next };
        for (1 .. $n) {
            my $raw = DnsTest::tcp_read_msg($s, 2);
            my $h = defined $raw ? DnsTest::header($raw) : undef;
            push @rcodes, $h ? $h->{rcode} : undef;
        }
        close $s;
    }
    return @rcodes;
}

###############################################################################
# Below the curve: all answered

{
    my $svc = set_figure('0.3');
    is($svc && $svc->{state}, 'ready', 'load 0.3: ready');
    my @r = LoadTest::burst($t, n => 50, timeout => 1, batch => 25, gap => 0.02);
    my ($ok, $refused, $none) = tally(@r);
    is("$ok/$refused/$none", '50/0/0', 'load 0.3: 50 of 50 answered NOERROR');
}

###############################################################################
# Load 0.9 (flat after the last point): half refused, none dropped or late

{
    my $svc = set_figure('0.9');
    is($svc && $svc->{state}, 'shedding', 'load 0.9: shedding');
    is($svc && $svc->{refuse_ratio} + 0, 0.5, 'status: refuse ratio 0.5');
    is($svc && $svc->{drop_ratio} + 0, 0, 'status: drop ratio 0');
    is($svc && $svc->{delay_ms} + 0, 0, 'status: no delay');
    my $curve = $svc && $svc->{policy}{curve};
    is($curve && join(' ', map { "$_->{load}:$_->{delay_ms}:$_->{drop}:$_->{refuse}" } @$curve),
        '0.5:0:0:0 0.8:0:0:0.5', 'status: the curve carries its refuse probabilities');
    my $prom = LoadTest::prometheus(LoadTest::status_get($SP)->{content});
    is($prom->{qq(dns_service_refuse_ratio{service="$SVC"})}, '0.500000', 'Prometheus: dns_service_refuse_ratio 0.5');
    my $before = $svc->{refused_by_policy};

    my $from = LoadTest::file_size("$prefix/dns.log");
    my @r = LoadTest::burst($t, timeout => 1, batch => 25, gap => 0.02,
        targets => [[$P, 400, $SVC], [$LP, 100, $LSVC]]);
    my ($ok, $refused, $none, $bad) = tally(grep { $_->{port} == $P } @r);
    ok($refused >= 160 && $refused <= 240, "UDP fast path: about half of 400 REFUSED (got $refused)");
    is($ok + $refused, 400, "UDP fast path: the rest answered NOERROR ($ok), none dropped ($none) or odd ($bad)");
    my (undef, undef, $max) = LoadTest::summary(grep { $_->{port} == $P } @r);
    ok(defined $max && $max < 0.1, 'UDP fast path: every response within 100 ms (no delay)')
        or diag('max ' . LoadTest::ms($max));
    my ($lok, $lrefused, $lnone) = tally(grep { $_->{port} == $LP } @r);
    ok($lrefused >= 30 && $lrefused <= 70, "UDP session path: about half of 100 REFUSED (got $lrefused)");
    is($lok + $lrefused, 100, "UDP session path: the rest answered ($lok), none dropped ($lnone)");
    my @lines;
    LoadTest::wait_for(1, sub { @lines = LoadTest::lines_after("$prefix/dns.log", $from); @lines >= 100 });
    my $logged = grep { /^\S+ REFUSED refused shedding$/ } @lines;
    is($logged, $lrefused, 'access log: one "REFUSED refused shedding" per refusal')
        or diag(join "\n", @lines[0 .. 4]);

    my @rc = tcp_rcodes(4, 50);
    my $trefused = grep { defined && $_ == 5 } @rc;
    my $tok = grep { defined && $_ == 0 } @rc;
    ok($trefused >= 70 && $trefused <= 130, "TCP: about half of 200 pipelined queries REFUSED (got $trefused)");
    is($tok + $trefused, 200, "TCP: the rest answered NOERROR ($tok)");

    $svc = svc();
    is($svc->{refused_by_policy} - $before, $refused + $trefused, 'status: refused_by_policy counts every refusal');
    is($svc->{dropped}{shed} + $svc->{dropped}{silent}, 0, 'status: nothing dropped');
}

###############################################################################
# Halfway up the slope (0.65): about a quarter refused

{
    my $svc = set_figure('0.65');
    is($svc && $svc->{refuse_ratio} + 0, 0.25, 'load 0.65: refuse ratio 0.25 (interpolated)');
    my @r = LoadTest::burst($t, n => 400, timeout => 1, batch => 25, gap => 0.02);
    my ($ok, $refused) = tally(@r);
    ok($refused >= 70 && $refused <= 130, "load 0.65: about a quarter of 400 REFUSED (got $refused)");
    is($ok + $refused, 400, 'load 0.65: the rest answered');
}

like($t->error_log, qr/state shedding \(load 0\.900, delay 0 ms, drop 0\.0%, refuse 50\.0%\)/,
    'error log: the state change states the refuse probability');
is(scalar $t->crash_lines, 0, 'no worker crashed') or diag(join "\n", $t->crash_lines);
$t->stop;
done_testing;

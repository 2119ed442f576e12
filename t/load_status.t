#!/usr/bin/perl

# dns_service_status: after a known mix of queries (two workers) the
# Prometheus text and the JSON document carry exactly those counts; the
# counters survive a reload; only GET and HEAD are allowed. A flood of
# delayed answers is bounded by dns_delay_queue: the surplus is dropped and
# counted as delay_queue_full, worker memory stays flat and the workers keep
# answering. Host pressure sources (loadavg, psi) report what /proc says.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";

use IO::Select;
use JSON::PP ();
use Test::More;
use Time::HiRes qw(time sleep);
use DnsTest;
use LoadTest;

my $t = DnsTest->new(ports => 6);
my $prefix = $t->prefix;
my $SVC = 'www.example.com';
my $FSVC = 'flood.example.org';
my $BSVC = 'big.example.org';
my ($LASVC, $PSISVC) = ('loadavg.example.org', 'psi.example.org');
my @BIG = map { "192.0.2.$_" } 1 .. 40;    # 40 A records: more than 512 octets

LoadTest::write_load("$prefix/flood.load", "0.8\n");    # 50 ms delays, no drops

$t->write_config(DnsTest::conf(
    workers => 2,
    main => LoadTest::status_http('PORT2'),
    servers => DnsTest::server_block(port => 'PORT3', service => $FSVC,
            # a curve that only delays (50 ms at the flood's load 0.8)
            extra => "dns_load_file %%PREFIX%%/flood.load;\ndns_delay_queue 100;\ndns_shed 0.6:2ms 0.8:50ms;")
        . DnsTest::server_block(port => 'PORT4', service => $BSVC,
            extra => "dns_address @BIG;")
        . DnsTest::server_block(port => 'PORT5', service => $LASVC,
            extra => "dns_load_host loadavg;\ndns_load_smoothing 0;\n"
                . "dns_shed 0.5:0 0.8:100ms:0.2 high=0.9;\ndns_silence drop;")
        . DnsTest::server_block(port => 'PORT6', service => $PSISVC,
            extra => "dns_load_host psi;\ndns_load_smoothing 0;"),
));
my ($rc, $out) = $t->test_config;
is($rc, 0, 'configuration passes nginx -t') or diag($out);
$t->run or BAIL_OUT('nginx did not start: ' . $t->error_log);

my $SP = $t->port(2);
my ($P, $FP, $BP) = ($t->port(1), $t->port(3), $t->port(4));

sub doc { return LoadTest::status_json($SP) }
sub svc { return LoadTest::service(doc(), $_[0] // $SVC) }

###############################################################################
# Before any query: all zero, every service listed

{
    my $d = doc();
    ok($d, 'status JSON parses');
    is_deeply([sort map { $_->{name} } @{$d->{services} || []}],
        [sort $BSVC, $FSVC, $SVC, $LASVC, $PSISVC], 'status JSON lists the five services');
    my $s = LoadTest::service($d, $SVC);
    is($s && $s->{queries}{udp} + $s->{queries}{tcp}, 0, 'no queries counted yet');
    is($s && $s->{state}, 'ready', 'a service without load sources is ready');
    is_deeply($s && $s->{sources}, {}, 'a service without load sources lists no sources');
    my $f = LoadTest::service($d, $FSVC);
    ok(defined LoadTest::wait_for(1.5, sub { (svc($FSVC)->{state} // '') eq 'shedding' }),
        'the flood service is shedding (load file 0.8)');
    $f = svc($FSVC);
    is($f && $f->{sources}{file}{status}, 'ok', 'flood service: file source ok');
    is($f && $f->{sources}{file}{load} + 0, 0.8, 'flood service: file source load 0.8');
    is($f && $f->{delay_ms} + 0, 50, 'flood service: delay 50 ms');
}

###############################################################################
# Host pressure sources read /proc

sub slurp { open my $fh, '<', $_[0] or return undef; local $/; return scalar <$fh> }

{
    chomp(my $cpus = `nproc 2>/dev/null` || 1);
    $cpus = 1 unless $cpus =~ /^\d+$/ && $cpus > 0;
    my $s = svc($LASVC);
    my ($la) = (slurp('/proc/loadavg') // '') =~ /^(\S+)/;
    my $want = defined $la ? ($la / $cpus > 1 ? 1 : $la / $cpus) : undef;
    is($s && $s->{sources}{host}{status}, 'ok', 'dns_load_host loadavg: host source ok');
    ok(defined $want && $s && abs($s->{sources}{host}{load} - $want) <= 0.25,
        sprintf('dns_load_host loadavg: %s ≈ one-minute load %s / %d CPUs',
            $s ? $s->{sources}{host}{load} : 'n/a', $la // 'n/a', $cpus));
    SKIP: {
        my $psi = slurp('/proc/pressure/cpu');
        skip 'no /proc/pressure/cpu', 2 unless defined $psi && $psi =~ /^some .*avg10=(\S+)/m;
        my $avg10 = $1 / 100;
        my $p = svc($PSISVC);
        is($p && $p->{sources}{host}{status}, 'ok', 'dns_load_host psi: host source ok');
        ok($p && abs($p->{sources}{host}{load} - $avg10) <= 0.3,
            sprintf('dns_load_host psi: %s ≈ some avg10 %.3f', $p ? $p->{sources}{host}{load} : 'n/a', $avg10));
    }
}

###############################################################################
# A known mix of queries

my @mix = (
    (map { ['udp', 'www.example.com', 'A', 0] } 1 .. 5),
    (map { ['udp', "x$_.www.example.com", 'TXT', 3] } 1 .. 3),
    (map { ['udp', 'example.org', 'NS', 5] } 1 .. 2),
    ['udp', 'www.example.com', 'AAAA', 0],
    ['udp', 'www.example.com', 'ANY', 0],
    ['tcp', 'www.example.com', 'SOA', 0],
);
for my $q (@mix) {
    my ($proto, $name, $type, $rcode) = @$q;
    my (undef, $raw) = $t->ask(proto => $proto, name => $name, type => $type);
    my $h = DnsTest::header($raw);
    is($h && $h->{rcode}, $rcode, "$proto $name $type: rcode $rcode");
}
{
    # A big answer: truncated over UDP, whole over TCP.
    my (undef, $raw) = $t->ask(name => $BSVC, type => 'A', port => $BP);
    my $h = DnsTest::header($raw);
    ok($h && $h->{tc}, 'big answer over UDP without EDNS: TC=1');
    (undef, $raw) = $t->ask(proto => 'tcp', name => $BSVC, type => 'A', port => $BP);
    $h = DnsTest::header($raw);
    is($h && $h->{ancount}, 40, 'big answer over TCP: 40 records');
}

my %want = (
    queries   => { udp => 12, tcp => 1,
                   by_type => { A => 5, AAAA => 1, NS => 2, SOA => 1, ANY => 1, other => 3 } },
    responses => { NOERROR => 8, NXDOMAIN => 3, SERVFAIL => 0, REFUSED => 2, FORMERR => 0, NOTIMP => 0,
                   BADVERS => 0, other => 0 },
    answered  => 13,
    delayed   => 0,
    truncated => 0,
    refused_by_policy => 0,
    dropped   => { shed => 0, silent => 0, delay_queue_full => 0, unanswerable => 0, rate_limited => 0 },
);

sub counters_of {
    my ($s) = @_;
    return undef unless $s;
    return { map { $_ => $s->{$_} } qw(queries responses answered delayed truncated refused_by_policy dropped) };
}

{
    my $s = svc();
    is_deeply(counters_of($s), \%want, 'JSON: exact counters after the mix (two workers)')
        or diag(explain(counters_of($s)));
    my $b = svc($BSVC);
    is($b && $b->{truncated}, 1, 'JSON: the big service counts one truncated answer');
    is($b && $b->{queries}{udp} . '/' . $b->{queries}{tcp}, '1/1', 'JSON: the big service: 1 UDP, 1 TCP query');

    my $r = LoadTest::status_get($SP, '?format=json');
    like($r->{headers}{'content-type'} // '', qr{^application/json}, 'JSON: content type application/json');
}

###############################################################################
# JSON: each service's effective policy (the defaults, or what it configures)

{
    my $p = svc($SVC)->{policy};
    is($p && $p->{silence}, 'refuse', 'policy: dns_silence defaults to refuse');
    is($p && $p->{smoothing_ms}, 2000, 'policy: smoothing defaults to 2000 ms');
    is($p && $p->{high}, 0.98, 'policy: the default high mark');
    is($p && join(' ', map { "$_->{load}:$_->{delay_ms}:$_->{drop}:$_->{refuse}" } @{ $p->{curve} }),
        '0.6:2:0:0 0.7:10:0:0 0.8:50:0:0.3 0.9:100:0:0.6 0.95:200:0:0.9', 'policy: the default curve');
    is($p && $p->{hold_ms}, 30000, 'policy: the default hold time');
    my $c = svc($LASVC)->{policy};
    is($c && join(' ', map { "$_->{load}:$_->{delay_ms}:$_->{drop}" } @{ $c->{curve} }),
        '0.5:0:0 0.8:100:0.2', 'policy: a configured curve');
    is($c && "$c->{high} $c->{silence} $c->{smoothing_ms}", '0.9 drop 0', 'policy: configured high, silence, smoothing');
}

###############################################################################
# Prometheus text: the same figures

{
    my $r = LoadTest::status_get($SP);
    is($r->{status}, 200, 'Prometheus: 200');
    like($r->{headers}{'content-type'} // '', qr{^text/plain}, 'Prometheus: content type text/plain');
    my $text = $r->{content};
    for my $family (qw(dns_service_state dns_service_load dns_service_delay_seconds
            dns_service_drop_ratio dns_service_refuse_ratio dns_service_source_load dns_service_source_status
            dns_service_queries_total dns_service_queries_by_type_total
            dns_service_responses_total dns_service_answered_total dns_service_delayed_total
            dns_service_dropped_total dns_service_refused_by_policy_total
            dns_service_truncated_total)) {
        like($text, qr/^# TYPE $family (gauge|counter)$/m, "Prometheus: # TYPE $family");
    }
    my $m = LoadTest::prometheus($text);
    my $L = qq(service="$SVC");
    my %expect = (
        qq(dns_service_queries_total{$L,transport="udp"})  => 12,
        qq(dns_service_queries_total{$L,transport="tcp"})  => 1,
        qq(dns_service_queries_by_type_total{$L,qtype="A"})     => 5,
        qq(dns_service_queries_by_type_total{$L,qtype="AAAA"})  => 1,
        qq(dns_service_queries_by_type_total{$L,qtype="NS"})    => 2,
        qq(dns_service_queries_by_type_total{$L,qtype="SOA"})   => 1,
        qq(dns_service_queries_by_type_total{$L,qtype="ANY"})   => 1,
        qq(dns_service_queries_by_type_total{$L,qtype="other"}) => 3,
        qq(dns_service_responses_total{$L,rcode="NOERROR"})  => 8,
        qq(dns_service_responses_total{$L,rcode="NXDOMAIN"}) => 3,
        qq(dns_service_responses_total{$L,rcode="REFUSED"})  => 2,
        qq(dns_service_responses_total{$L,rcode="SERVFAIL"}) => 0,
        qq(dns_service_responses_total{$L,rcode="FORMERR"})  => 0,
        qq(dns_service_answered_total{$L})         => 13,
        qq(dns_service_delayed_total{$L})          => 0,
        qq(dns_service_truncated_total{$L})        => 0,
        qq(dns_service_refused_by_policy_total{$L}) => 0,
        qq(dns_service_dropped_total{$L,reason="shed"})             => 0,
        qq(dns_service_dropped_total{$L,reason="silent"})           => 0,
        qq(dns_service_dropped_total{$L,reason="delay_queue_full"}) => 0,
        qq(dns_service_dropped_total{$L,reason="unanswerable"})     => 0,
        qq(dns_service_state{$L,state="ready"})    => 1,
        qq(dns_service_state{$L,state="starting"}) => 0,
        qq(dns_service_state{$L,state="shedding"}) => 0,
        qq(dns_service_state{$L,state="down"})     => 0,
        qq(dns_service_state{$L,state="draining"}) => 0,
        qq(dns_service_load{$L})          => 0,
        qq(dns_service_delay_seconds{$L}) => 0,
        qq(dns_service_drop_ratio{$L})    => 0,
        qq(dns_service_refuse_ratio{$L})  => 0,
        qq(dns_service_truncated_total{service="$BSVC"}) => 1,
        qq(dns_service_load{service="$FSVC"})          => 0.8,
        qq(dns_service_delay_seconds{service="$FSVC"}) => 0.05,
        qq(dns_service_state{service="$FSVC",state="shedding"}) => 1,
        qq(dns_service_source_load{service="$FSVC",source="file"}) => 0.8,
        qq(dns_service_source_status{service="$FSVC",source="file",status="ok"}) => 1,
    );
    my @bad = grep { !defined $m->{$_} || $m->{$_} != $expect{$_} } sort keys %expect;
    is_deeply(\@bad, [], 'Prometheus: every expected sample has its value')
        or diag(join "\n", map { "$_: want $expect{$_}, got " . ($m->{$_} // 'none') } @bad);
    ok(!(grep { /source=/ && /\Q$L\E/ } keys %$m), 'Prometheus: no source samples for a service without sources');
}

###############################################################################
# A message that cannot be answered (QR=1) is counted as dropped

{
    my $r = $t->udp_exchange(DnsTest::make_query(qr => 1, name => 'www.example.com'), timeout => 0.3);
    ok(!defined $r, 'QR=1: no response');
    my $s;
    LoadTest::wait_for(1, sub { $s = svc(); $s && $s->{dropped}{unanswerable} == 1 });
    is($s && $s->{dropped}{unanswerable}, 1, 'JSON: dropped unanswerable 1');
    is($s && $s->{answered}, 13, 'JSON: answered unchanged');
}

###############################################################################
# Only GET and HEAD

{
    my $r = LoadTest::status_get($SP, '', method => 'POST');
    is($r->{status}, 405, 'POST → 405');
    $r = LoadTest::status_get($SP, '?format=json', method => 'PUT');
    is($r->{status}, 405, 'PUT → 405');
    $r = LoadTest::status_get($SP, '', method => 'HEAD');
    is($r->{status}, 200, 'HEAD → 200');
    is($r->{content} // '', '', 'HEAD: no body');
}

###############################################################################
# Counters survive a reload

my $before_reload = counters_of(svc());
{
    ok($t->reload, 'reload: new workers started');
    sleep 1;
    my $s = svc();
    is_deeply(counters_of($s), $before_reload, 'after reload: the same counters')
        or diag(explain(counters_of($s)));
    is(svc($BSVC)->{truncated}, 1, 'after reload: the big service still counts its truncated answer');
    my (undef, $raw) = $t->ask(name => 'www.example.com', type => 'A');
    ok($raw, 'after reload: answered');
    $s = svc();
    is($s && $s->{answered}, $before_reload->{answered} + 1, 'after reload: counting goes on from there');
    is($s && $s->{queries}{udp}, $before_reload->{queries}{udp} + 1, 'after reload: UDP queries + 1');
    is(svc($FSVC)->{state}, 'shedding', 'after reload: the flood service still shedding');
}

###############################################################################
# Delay flood: dns_delay_queue 100, 50 ms delays, 2000 queries from one socket

sub worker_rss {
    my @w = $t->worker_pids;
    my $sum = 0;
    for my $pid (@w) { $sum += LoadTest::rss_kib($pid) // 0 }
    return ($sum, scalar @w);
}

# Sends $n queries as fast as possible from one socket, reading answers
# meanwhile and for $linger seconds after. Returns (sent, answers).
sub flood {
    my ($n, $linger) = @_;
    my $s = $t->udp_socket(port => $FP);
    my $sel = IO::Select->new($s);
    my %ids;
    my ($sent, $got) = (0, 0);
    my $read = sub {
        my ($wait) = @_;
        for (1 .. 4 * $n) {
            last unless $sel->can_read($wait);
            my $buf;
            last unless defined $s->recv($buf, 65535);
            my $h = DnsTest::header($buf);
            $got++ if $h && $h->{qr} && delete $ids{$h->{id}};
            $wait = 0;
        }
    };
    for my $i (1 .. $n) {
        my $id = $i & 0xffff;
        $ids{$id} = 1;
        $sent++ if defined $s->send(DnsTest::make_query(id => $id, name => $FSVC, type => 'A'));
        $read->(0) if $i % 50 == 0;
    }
    my $until = time + $linger;
    while ((my $w = $until - time) > 0) { $read->($w) }
    close $s;
    return ($sent, $got);
}

{
    my ($rss0, $nw) = worker_rss();
    is($nw, 2, 'two workers before the flood');
    my $f0 = svc($FSVC);
    my ($sent, $got) = flood(2000, 0.5);
    is($sent, 2000, 'flood: 2000 queries sent');
    my $f1 = svc($FSVC);
    my $delayed = $f1->{delayed} - $f0->{delayed};
    my $full = $f1->{dropped}{delay_queue_full} - $f0->{dropped}{delay_queue_full};
    my $queries = $f1->{queries}{udp} - $f0->{queries}{udp};
    cmp_ok($full, '>', 0, "flood: dropped{delay_queue_full} > 0 ($full)");
    cmp_ok($delayed, '>=', 100, "flood: at least a queue's worth delayed ($delayed)");
    is($delayed + $full, $queries, "flood: every query received was delayed or dropped as queue full ($queries)");
    cmp_ok($queries, '<=', 2000, 'flood: no more queries counted than sent');
    is($got, $delayed, "flood: every delayed answer arrived ($got)");
    is($f1->{dropped}{shed} - $f0->{dropped}{shed}, 0, 'flood: none dropped by the curve at load 0.8');
    my $prom = LoadTest::prometheus(LoadTest::status_get($SP)->{content});
    is($prom->{qq(dns_service_dropped_total{service="$FSVC",reason="delay_queue_full"})},
        $f1->{dropped}{delay_queue_full}, 'Prometheus: the same delay_queue_full count');

    # Memory: two more floods after the first one must not grow the workers.
    my ($rss1) = worker_rss();
    flood(2000, 0.3) for 1 .. 2;
    my ($rss3, $nw3) = worker_rss();
    is($nw3, 2, 'two workers after the floods');
    cmp_ok($rss3 - $rss1, '<', 2048,
        "worker memory flat across floods (RSS $rss0 → $rss1 → $rss3 KiB)");

    my @r = LoadTest::burst($t, n => 10, timeout => 1, port => $FP, name => $FSVC);
    my ($n, $median) = LoadTest::summary(@r);
    is($n, 10, 'after the floods: the flood service answers (10 of 10)');
    ok(defined $median && $median >= 0.04 && $median <= 0.2,
        'after the floods: still delayed ~50 ms (median ' . LoadTest::ms($median) . ')');
    @r = LoadTest::burst($t, n => 10, timeout => 1);
    ($n) = LoadTest::summary(@r);
    is($n, 10, 'after the floods: the other service answers (10 of 10)');
}

is(scalar(grep { /exited on signal/ } split /\n/, $t->error_log), 0, 'no "exited on signal" in error.log');
is(scalar $t->crash_lines, 0, 'no worker crashed') or diag(join "\n", $t->crash_lines);
$t->stop;
done_testing;

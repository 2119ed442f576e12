#!/usr/bin/perl

# dns_load_file: the answers follow what the load file says, within a
# second and without a reload: absent or "up" or a low figure → answered at
# once; "drain", "down", 1 → no answer; 0.9 on the default curve → a quarter
# dropped, the rest 200 ms late; 0.65 → about 6 ms late; garbage → the last
# good reading for the grace period, then down; missing=down; hysteresis at
# the high mark and at the start of the curve. Measured on the default
# fast UDP path and, side by side, on a server with dns_udp_fast_path off
# whose access log shows $dns_action, $dns_state and $dns_load per query;
# dns_silence refuse turns silence into fast REFUSED.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";

use Test::More;
use Time::HiRes qw(time sleep);
use DnsTest;
use LoadTest;

my $t = DnsTest->new(ports => 6);
my $prefix = $t->prefix;
my $LOAD = "$prefix/app.load";
my $REFUSE_LOAD = "$prefix/refuse.load";
my $SVC = 'www.example.com';
my $RSVC = 'refuse.example.org';
my $LSVC = 'logged.example.net';   # same load file, session path, access log
my $MSVC = 'missing.example.net';  # a load file that never exists, missing=down
my $NEVER = "$prefix/never.load";
my $HSVC = 'hold.example.net';     # its own load file and a hold time
my $HOLD_LOAD = "$prefix/hold.load";

# The checks of delays and drops below were written for this curve (the
# module's default before refusals): it delays and drops, and hold=0 lets
# the state follow the load at once.
my $CURVE = 'dns_shed 0.5:0 0.6:2ms 0.7:10ms 0.8:50ms 0.9:200ms:0.25 0.95:400ms:0.75 hold=0;';

$t->write_config(DnsTest::conf(
    main => LoadTest::status_http('PORT2'),
    stream => "    log_format dns '\$dns_qname \$dns_qtype \$dns_rcode \$dns_action \$dns_state \$dns_load';",
    server => "dns_load_file %%PREFIX%%/app.load grace=2s;\ndns_silence drop;\n$CURVE",
    servers => DnsTest::server_block(
        port    => 'PORT3',
        service => $RSVC,
        extra   => "dns_load_file %%PREFIX%%/refuse.load;\ndns_silence refuse;\n"
                 . "access_log %%PREFIX%%/refuse.log dns;",
    ) . DnsTest::server_block(
        port    => 'PORT4',
        service => $LSVC,
        extra   => "dns_load_file %%PREFIX%%/app.load grace=2s;\ndns_udp_fast_path off;\ndns_silence drop;\n"
                 . "$CURVE\naccess_log %%PREFIX%%/dns.log dns;",
    ) . DnsTest::server_block(
        port    => 'PORT5',
        service => $MSVC,
        extra   => "dns_load_file %%PREFIX%%/never.load missing=down grace=1s;\ndns_silence drop;",
    ) . DnsTest::server_block(
        port    => 'PORT6',
        service => $HSVC,
        extra   => "dns_load_file %%PREFIX%%/hold.load;\ndns_shed 0.5:0 0.6:10ms hold=2s;",
    ),
));
my ($rc, $out) = $t->test_config;
is($rc, 0, 'configuration with dns_load_file and dns_silence refuse passes nginx -t')
    or diag($out);
$t->run or BAIL_OUT('nginx did not start: ' . $t->error_log);

my $SP = $t->port(2);
my ($P, $RP, $LP, $MP, $HP) = map { $t->port($_) } 1, 3, 4, 5, 6;
my $ACCESS = "$prefix/dns.log";

# Waits (bounded) until every service named has state $state; returns the
# seconds it took or undef.
sub wait_state {
    my ($state, $timeout, @svc) = @_;
    @svc = ($SVC, $LSVC) unless @svc;
    return LoadTest::wait_for($timeout, sub {
        my $doc = LoadTest::status_json($SP);
        !grep { my $s = LoadTest::service($doc, $_); !$s || $s->{state} ne $state } @svc;
    }, 0.02);
}

# Writes the load file and waits for the state it must lead to; the change
# must apply within a second of the write.
sub set_load {
    my ($content, $state, $path, @svc) = @_;
    my $written = time;
    LoadTest::write_load($path // $LOAD, "$content\n");
    my $ok = wait_state($state, 1.5, @svc);
    my $took = time - $written;
    ok(defined $ok && $took <= 1.0,
        "load file '$content' → state $state within 1 s of the write")
        or diag(sprintf('state %s after %.2f s', LoadTest::state_of($SP, $svc[0] // $SVC), $took));
}

# Writes a load figure and waits until both services report that load;
# the change must apply within a second of the write. Returns the status
# of the fast-path service.
sub set_figure {
    my ($figure) = @_;
    my $written = time;
    LoadTest::write_load($LOAD, "$figure\n");
    my $took = LoadTest::wait_for(1.5, sub {
        my $doc = LoadTest::status_json($SP);
        !grep { my $s = LoadTest::service($doc, $_); !$s || abs($s->{load} - $figure) > 0.0005 } $SVC, $LSVC;
    }, 0.02);
    ok(defined $took && time - $written <= 1.0, "load file '$figure' applies within 1 s");
    return LoadTest::service(LoadTest::status_json($SP), $SVC);
}

# The access log lines written since byte offset $from, as
# [action, state, load] (the last three fields).
sub actions_since {
    my ($from, $file) = @_;
    return map { [ (split / /)[-3, -2, -1] ] } LoadTest::lines_after($file // $ACCESS, $from);
}

sub count_actions {
    my ($lines, $action, $state) = @_;
    return scalar grep { $_->[0] eq $action && $_->[1] eq $state } @$lines;
}

# A burst of $n queries to the fast-path server and $m to the logged
# session-path server at the same time. Returns (fast results, logged
# results, access log lines of the logged ones).
sub measure {
    my ($n, $m, $timeout) = @_;
    my $from = LoadTest::file_size($ACCESS);
    my @r = LoadTest::burst($t, timeout => $timeout // 1, batch => 20, gap => 0.02,
        targets => [[$P, $n, $SVC], [$LP, $m, $LSVC]]);
    my @fast = grep { $_->{port} == $P } @r;
    my @logged = grep { $_->{port} == $LP } @r;
    my @lines;
    LoadTest::wait_for(1, sub { @lines = actions_since($from); @lines >= $m });
    return (\@fast, \@logged, \@lines);
}

# Checks of one silent phase: nothing answered on either path, every
# logged query "dropped <state>".
sub expect_silent {
    my ($what, $state) = @_;
    my ($fast, $logged, $lines) = measure(20, 10);
    my ($n) = LoadTest::summary(@$fast);
    my ($m) = LoadTest::summary(@$logged);
    is($n, 0, "$what: 0 of 20 queries answered (no response at all)");
    is($m, 0, "$what, session path: 0 of 10 answered");
    is(count_actions($lines, 'dropped', $state), 10, "access log: 10 × \"dropped $state\"")
        or diag(explain($lines));
    return $lines;
}

# Checks of one phase answered at once.
sub expect_answered {
    my ($what, $state, $n_fast) = @_;
    $n_fast //= 20;
    my ($fast, $logged, $lines) = measure($n_fast, 10);
    my ($n, undef, $max) = LoadTest::summary(@$fast);
    my ($m, undef, $mmax) = LoadTest::summary(@$logged);
    is($n, $n_fast, "$what: $n_fast of $n_fast queries answered");
    ok(defined $max && $max < 0.05, "$what: every answer within 50 ms")
        or diag('max latency ' . LoadTest::ms($max));
    is((grep { ($_->{rcode} // -1) == 0 } @$fast), $n_fast, "$what: every answer NOERROR");
    is($m, 10, "$what, session path: 10 of 10 answered");
    ok(defined $mmax && $mmax < 0.05, "$what, session path: every answer within 50 ms")
        or diag('max latency ' . LoadTest::ms($mmax));
    is(count_actions($lines, 'answered', $state), 10, "access log: 10 × \"answered $state\"")
        or diag(explain($lines));
    return $lines;
}

# The distribution of one shedding phase: dropped fraction within
# [$dlo, $dhi], median delay of the answered within [$lo, $hi] seconds.
sub expect_shedding {
    my ($what, $results, $dlo, $dhi, $lo, $hi, $earliest) = @_;
    my $N = @$results;
    my ($n, $median) = LoadTest::summary(@$results);
    my $dropped = $N - $n;
    my ($min) = sort { $a <=> $b } map { $_->{latency} } grep { $_->{answered} } @$results;
    ok($dropped >= $dlo * $N && $dropped <= $dhi * $N,
        sprintf('%s: dropped fraction within %d–%d%% (got %d of %d)',
            $what, $dlo * 100, $dhi * 100, $dropped, $N));
    ok(defined $median && $median >= $lo && $median <= $hi,
        sprintf('%s: median delay of the answered within %d–%d ms (got %s)',
            $what, $lo * 1000, $hi * 1000, LoadTest::ms($median)));
    ok(defined $min && $min >= $earliest,
        "$what: no answer comes early (fastest " . LoadTest::ms($min) . ')')
        if defined $earliest;
}

###############################################################################
# No load file: answered at once

ok(!-e $LOAD, 'no load file to begin with');
expect_answered('no load file', 'ready', 50);
is(LoadTest::state_of($SP), 'ready', 'status: state ready');

###############################################################################
# drain, down: silent; up: answered

set_load('drain', 'draining');
expect_silent('drain', 'draining');
{
    my $svc = LoadTest::service(LoadTest::status_json($SP), $SVC);
    is($svc && $svc->{sources}{file}{status}, 'drain', 'status: the file source says drain');
}

set_load('down', 'down');
expect_silent('down', 'down');

set_load('up', 'ready');
expect_answered('up', 'ready');

###############################################################################
# 1: at the high mark, silent

set_load('1', 'shedding');
{
    my $lines = expect_silent('load 1', 'shedding');
    ok(@$lines && !(grep { $_->[2] ne '1.000' } @$lines), 'access log: $dns_load is 1.000')
        or diag(explain($lines));
    my $svc = LoadTest::service(LoadTest::status_json($SP), $SVC);
    is($svc && $svc->{load} + 0, 1, 'status: load 1.000');
    is($svc && $svc->{drop_ratio} + 0, 1, 'status: drop ratio 1');
}

###############################################################################
# Hysteresis at the high mark (0.98): coming down from 1, 0.95 is still
# silent (silence ends only 0.05 below the mark); 0.92 ends it; 0.95 from
# below sheds per the curve (400 ms, 75% dropped)

{
    my $svc = set_figure('0.95');
    is($svc && $svc->{drop_ratio} + 0, 1, 'from 1 down to 0.95: still silent (drop ratio 1)');
    my @r = LoadTest::burst($t, n => 40, timeout => 1);
    my ($n) = LoadTest::summary(@r);
    is($n, 0, 'from 1 down to 0.95: 0 of 40 answered');

    $svc = set_figure('0.92');
    is($svc && $svc->{drop_ratio} + 0, 0.45, 'at 0.92: silence ends, drop ratio 0.45');
    is($svc && $svc->{delay_ms} + 0, 280, 'at 0.92: delay 280 ms');

    $svc = set_figure('0.95');
    is($svc && $svc->{drop_ratio} + 0, 0.75, 'up again to 0.95: drop ratio 0.75 per the curve');
    is($svc && $svc->{delay_ms} + 0, 400, 'up again to 0.95: delay 400 ms');
    @r = LoadTest::burst($t, n => 80, timeout => 1.5, batch => 20, gap => 0.02);
    expect_shedding('up again to 0.95', \@r, 0.55, 0.90, 0.370, 0.550, 0.350);
}

###############################################################################
# 0.9 on the default curve: 25% dropped, answers delayed 200 ms

{
    my $svc = set_figure('0.9');
    is($svc && $svc->{state}, 'shedding', 'status: state shedding at load 0.9');
    is($svc && $svc->{delay_ms} + 0, 200, 'status: delay 200 ms at load 0.9');
    is($svc && $svc->{drop_ratio} + 0, 0.25, 'status: drop ratio 0.25 at load 0.9');

    my ($fast, $logged, $lines) = measure(200, 60, 1.5);
    expect_shedding('load 0.9', $fast, 0.15, 0.35, 0.170, 0.300, 0.150);
    expect_shedding('load 0.9, session path', $logged, 0.05, 0.50, 0.170, 0.300, 0.150);
    my ($m) = LoadTest::summary(@$logged);
    is(count_actions($lines, 'delayed', 'shedding'), $m,
        'access log: one "delayed shedding" per answered query');
    is(count_actions($lines, 'dropped', 'shedding'), 60 - $m,
        'access log: one "dropped shedding" per unanswered query');
    ok(@$lines && !(grep { $_->[2] ne '0.900' } @$lines), 'access log: $dns_load is 0.900');
}

###############################################################################
# 0.65: all answered, about 6 ms late

{
    my $svc = set_figure('0.65');
    is($svc && $svc->{delay_ms} + 0, 6, 'status: delay 6 ms at load 0.65');

    my ($fast, $logged, $lines) = measure(200, 30, 1.5);
    my ($n) = LoadTest::summary(@$fast);
    my ($m) = LoadTest::summary(@$logged);
    is($n, 200, 'load 0.65: 200 of 200 queries answered');
    is($m, 30, 'load 0.65, session path: 30 of 30 answered');
    expect_shedding('load 0.65', $fast, 0, 0, 0.003, 0.030, 0.003);
    expect_shedding('load 0.65, session path', $logged, 0, 0, 0.003, 0.030, 0.003);
    is(count_actions($lines, 'delayed', 'shedding'), 30, 'access log: 30 × "delayed shedding"');
}

###############################################################################
# Garbage: the last good reading (0.65) holds for grace=2s, then down

{
    my $log_from = length $t->error_log;
    my $written = time;
    LoadTest::write_load($LOAD, "garbage\n");
    sleep 0.6;
    my @r = LoadTest::burst($t, n => 20, timeout => 1);
    my ($n, $median) = LoadTest::summary(@r);
    is($n, 20, 'garbage, within the grace period: 20 of 20 answered (last good reading kept)');
    ok(defined $median && $median >= 0.003, 'garbage, within grace: still delayed as at 0.65')
        or diag('median ' . LoadTest::ms($median));
    my $svc = LoadTest::service(LoadTest::status_json($SP), $SVC);
    is($svc && $svc->{state}, 'shedding', 'garbage, within grace: state still shedding');
    cmp_ok(time - $written, '<', 1.8, 'the checks within grace ran within grace');

    my $down = LoadTest::wait_for(3.5, sub { LoadTest::state_of($SP) eq 'down' }, 0.02);
    my $at = time - $written;
    ok(defined $down && $at >= 1.8 && $at <= 3.0,
        sprintf('garbage: down after the 2 s grace period (at %.2f s)', $at));
    expect_silent('garbage past grace', 'down');

    set_load('0', 'ready');
    expect_answered('back to 0', 'ready');

    my $log = substr($t->error_log, $log_from);
    my $bad = () = $log =~ /\Q$SVC\E: load file "\Q$LOAD\E" holds neither a load figure nor drain\/down\/up/g;
    my $good = () = $log =~ /\Q$SVC\E: load file "\Q$LOAD\E" is valid again/g;
    is($bad, 1, 'error log: the unparseable load file is logged once');
    is($good, 1, 'error log: its return to a valid figure is logged once');
}

###############################################################################
# Removing the file: no opinion, answered

unlink $LOAD;
sleep 0.6;
expect_answered('load file removed', 'ready');
is(LoadTest::state_of($SP), 'ready', 'load file removed: state ready');

###############################################################################
# Hysteresis at the start of the curve (0.5): shedding begins at 0.55 and
# ends only below 0.45

{
    my $svc = set_figure('0.55');
    is($svc && $svc->{state}, 'shedding', 'at 0.55: shedding');
    is($svc && $svc->{delay_ms} + 0, 1, 'at 0.55: delay 1 ms');
    $svc = set_figure('0.47');
    is($svc && $svc->{state}, 'shedding', 'down to 0.47: still shedding (within 0.05 of the start)');
    is($svc && $svc->{delay_ms} + 0, 0, 'at 0.47: no delay');
    $svc = set_figure('0.44');
    is($svc && $svc->{state}, 'ready', 'down to 0.44: ready');
    unlink $LOAD;
}

###############################################################################
# hold=: shedding starts at once; when the load falls back the curve has no
# effect at once, but the state stays shedding until the load has been below
# the threshold for the hold time (2 s here)

{
    my $hold_state = sub { my $s = LoadTest::service(LoadTest::status_json($SP), $HSVC); $s ? $s : {} };
    LoadTest::write_load($HOLD_LOAD, "0.7\n");
    my $took = LoadTest::wait_for(1.5, sub { ($hold_state->()->{state} // '') eq 'shedding' }, 0.02);
    ok(defined $took, 'hold: at 0.7 shedding within 1.5 s');
    is($hold_state->()->{delay_ms} + 0, 10, 'hold: at 0.7 delay 10 ms');
    LoadTest::write_load($HOLD_LOAD, "0.3\n");
    my $fell = time;
    LoadTest::wait_for(1.5, sub { abs(($hold_state->()->{load} // 1) - 0.3) < 0.0005 }, 0.02);
    my $s = $hold_state->();
    is($s->{state}, 'shedding', 'hold: back at 0.3, still shedding');
    is($s->{delay_ms} + 0, 0, 'hold: back at 0.3, no delay at once');
    my @r = LoadTest::burst($t, n => 10, timeout => 0.5, port => $HP, name => $HSVC);
    my ($answered, $median) = LoadTest::summary(@r);
    is($answered, 10, 'hold: back at 0.3, every query answered');
    ok(defined $median && $median < 0.005, 'hold: answered at once (median ' . LoadTest::ms($median) . ')');
    my $ready = LoadTest::wait_for(4, sub { ($hold_state->()->{state} // '') eq 'ready' }, 0.05);
    my $after = time - $fell;
    ok(defined $ready && $after >= 1.9 && $after <= 3.5,
        sprintf('hold: ready about 2 s after the load fell (%.1f s)', $after));
    LoadTest::write_load($HOLD_LOAD, "0.7\n");
    $took = LoadTest::wait_for(1.5, sub { ($hold_state->()->{state} // '') eq 'shedding' }, 0.02);
    ok(defined $took, 'hold: shedding again at once');
    unlink $HOLD_LOAD;
}

###############################################################################
# missing=down: a load file that never appeared is down after its grace

{
    is(LoadTest::state_of($SP, $MSVC), 'down', 'missing=down, file never written: state down');
    my @r = LoadTest::burst($t, n => 10, timeout => 0.5, port => $MP, name => $MSVC);
    my ($n) = LoadTest::summary(@r);
    is($n, 0, 'missing=down: 0 of 10 answered');
    my $missing = () = $t->error_log =~ /\Q$MSVC\E: load file "\Q$NEVER\E" is missing/g;
    is($missing, 1, 'error log: the missing file is logged once');
    set_load('0', 'ready', $NEVER, $MSVC);
    @r = LoadTest::burst($t, n => 10, timeout => 0.5, port => $MP, name => $MSVC);
    ($n) = LoadTest::summary(@r);
    is($n, 10, 'missing=down, file written: 10 of 10 answered');
}

###############################################################################
# dns_silence refuse: drain answers REFUSED at once (UDP and TCP)

{
    my ($r0) = LoadTest::burst($t, n => 1, timeout => 1, port => $RP, name => $RSVC);
    is($r0->{rcode}, 0, 'refuse server: NOERROR while not draining');

    set_load('drain', 'draining', $REFUSE_LOAD, $RSVC);
    my @r = LoadTest::burst($t, n => 20, timeout => 1, port => $RP, name => $RSVC);
    my ($n, undef, $max) = LoadTest::summary(@r);
    is($n, 20, 'dns_silence refuse + drain: 20 of 20 get a response');
    is((grep { ($_->{rcode} // -1) == 5 } @r), 20,
        'dns_silence refuse + drain: every response is REFUSED');
    ok(defined $max && $max < 0.05, 'dns_silence refuse + drain: REFUSED within 50 ms')
        or diag('max latency ' . LoadTest::ms($max));
    my $p = DnsTest::decode($r[0]{raw});
    ok($p && $p->header->ancount == 0 && !$p->header->aa, 'REFUSED carries no records and no AA');

    my $from = LoadTest::file_size("$prefix/refuse.log");
    my $raw = $t->tcp_exchange(DnsTest::make_query(name => $RSVC, type => 'A'), port => $RP);
    my $h = DnsTest::header($raw);
    is($h && $h->{rcode}, 5, 'dns_silence refuse + drain over TCP: REFUSED');
    my @lines;
    LoadTest::wait_for(1, sub { @lines = actions_since($from, "$prefix/refuse.log"); @lines });
    is(count_actions(\@lines, 'refused', 'draining'), 1, 'access log: "refused draining"')
        or diag(explain(\@lines));

    my $svc = LoadTest::service(LoadTest::status_json($SP), $RSVC);
    is($svc && $svc->{refused_by_policy}, 21, 'status: refused_by_policy 21');
    is(LoadTest::state_of($SP, $SVC), 'ready', 'the other services are not affected');
}

is(scalar $t->crash_lines, 0, 'no worker crashed') or diag(join "\n", $t->crash_lines);
$t->stop;
done_testing;

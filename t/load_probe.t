#!/usr/bin/perl

# dns_load_probe against a real application (t/app.py): no answers while
# the application has never passed (starting); answered soon after it does;
# a flapping application never takes the service down; a continuous failure
# does after `fall` probes, and the service returns only after `rise` good
# ones, each run of failures logged once; a load figure from a response
# header (or the body) drives the shedding curve. A probe to a closed port keeps its
# service silent without harm; a TCP probe to a listening port lets it
# answer. Two workers share one probe schedule; a reload keeps the state.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";

use Test::More;
use Time::HiRes qw(time sleep);
use DnsTest;
use LoadTest;
use TestApp;

my $t = DnsTest->new(ports => 7);
my $app = TestApp->start(ready => 0);
my $AP = $app->port;
my $CLOSED = $t->port(5);          # nothing listens there
my $SVC = 'www.example.com';
my ($CSVC, $TSVC, $TCSVC, $BSVC) =
    ('closed.example.org', 'tcp.example.org', 'tcpclosed.example.org', 'body.example.org');

# The delay and drop checks below use the curve the module had as its
# default before refusals (it drops at 0.9); hold=0: the state follows the
# load at once.
my $PROBE = "dns_silence drop;\n"
          . "dns_shed 0.5:0 0.6:2ms 0.7:10ms 0.8:50ms 0.9:200ms:0.25 0.95:400ms:0.75 hold=0;\n"
          . "dns_load_probe http://127.0.0.1:$AP/health interval=200ms timeout=150ms"
          . " rise=3 fall=3 load=header:X-Load;";
$t->write_config(DnsTest::conf(
    workers => 2,
    main => LoadTest::status_http('PORT2'),
    server => $PROBE,
    servers => DnsTest::server_block(port => 'PORT3', service => $CSVC,
            extra => "dns_silence drop;\ndns_load_probe http://127.0.0.1:$CLOSED/health interval=200ms timeout=150ms;")
        . DnsTest::server_block(port => 'PORT4', service => $TSVC,
            extra => "dns_load_probe tcp://127.0.0.1:$AP interval=200ms timeout=150ms;")
        . DnsTest::server_block(port => 'PORT6', service => $TCSVC,
            extra => "dns_silence drop;\ndns_load_probe tcp://127.0.0.1:$CLOSED interval=200ms timeout=150ms;")
        . DnsTest::server_block(port => 'PORT7', service => $BSVC,
            extra => "dns_load_probe http://127.0.0.1:$AP/health/body interval=200ms timeout=150ms load=body;\ndns_shed hold=0;"),
));
my ($rc, $out) = $t->test_config;
is($rc, 0, 'configuration with HTTP and TCP probes passes nginx -t') or diag($out);
my $started = time;
$t->run or BAIL_OUT('nginx did not start: ' . $t->error_log);

my $SP = $t->port(2);
my ($P, $CP, $TP, $TCP, $BP) = map { $t->port($_) } 1, 3, 4, 6, 7;

sub state_of { return LoadTest::state_of($SP, $_[0] // $SVC) }
sub svc      { return LoadTest::service(LoadTest::status_json($SP), $_[0] // $SVC) }

sub answered {
    my (%o) = @_;
    my @r = LoadTest::burst($t, n => $o{n} // 10, timeout => $o{timeout} // 0.5,
        port => $o{port} // $P, name => $o{name} // $SVC);
    my ($n, $median) = LoadTest::summary(@r);
    return wantarray ? ($n, $median, \@r) : $n;
}

sub probe_lines {
    my ($from, $svc, $what) = @_;
    my $log = substr($t->error_log, $from);
    my $n = () = $log =~ /dns_service \Q$svc\E: health probe is \Q$what\E/g;
    return $n;
}

###############################################################################
# The application is not ready (503): starting, no answers

{
    sleep 0.3;
    my $n = answered(n => 10);
    is($n, 0, 'app not ready: 0 of 10 answered at ~0.3 s');
    my $s = svc();
    is($s && $s->{state}, 'starting', 'app not ready: state starting');
    is($s && $s->{sources}{probe}{status}, 'starting', 'app not ready: probe source starting');
    sleep(($started + 1.0) - time) if time < $started + 1.0;
    $n = answered(n => 10);
    is($n, 0, 'app not ready: 0 of 10 answered at ~1 s');
    is(state_of(), 'starting', 'app not ready: still starting after ~1 s of failing probes');
    cmp_ok($app->stats->{health_failed} // 0, '>=', 3,
        'the probe did reach the application (at least 3 failed probes)');
}

###############################################################################
# Probes to a closed port, and a TCP probe to the listening application

{
    is(answered(port => $CP, name => $CSVC, n => 10), 0, 'HTTP probe to a closed port: 0 of 10 answered');
    like(state_of($CSVC), qr/^(starting|down)$/, 'HTTP probe to a closed port: starting or down');
    is(answered(port => $TCP, name => $TCSVC, n => 10), 0, 'TCP probe to a closed port: 0 of 10 answered');
    like(state_of($TCSVC), qr/^(starting|down)$/, 'TCP probe to a closed port: starting or down');
    my $took = LoadTest::wait_for(1.5, sub { state_of($TSVC) eq 'ready' });
    ok(defined $took, 'TCP probe to the listening application (even while it says 503): ready');
    is(answered(port => $TP, name => $TSVC, n => 10), 10, 'TCP probe passing: 10 of 10 answered');
}

###############################################################################
# The application becomes ready: answered within a second

{
    my $t0 = time;
    $app->control(ready => 1);
    my $took = LoadTest::wait_for(2, sub { answered(n => 1, timeout => 0.1) == 1 }, 0.02);
    ok(defined $took && $took <= 1.0,
        sprintf('app ready: answered within 1 s (after %s)',
            defined $took ? sprintf('%.2f s', $took) : 'never'));
    is(answered(n => 20), 20, 'app ready: 20 of 20 answered');
    my $s = svc();
    is($s && $s->{state}, 'ready', 'app ready: state ready');
    is($s && $s->{sources}{probe}{status}, 'ok', 'app ready: probe source ok');
}

###############################################################################
# The application flaps (every other probe fails): never down

{
    my $before = $app->stats;
    my $log_from = length $t->error_log;
    $app->control(flap => 1);
    my $t0 = time;
    my ($asked, $got, @states) = (0, 0);
    while (time - $t0 < 2.0 && $asked < 40) {
        $asked++;
        $got += answered(n => 1, timeout => 0.3);
        push @states, state_of();
        sleep 0.05;
    }
    my $elapsed = time - $t0;
    my $after = $app->stats;
    $app->control(flap => 0, health => 'ok');
    my $probes = ($after->{health_requests} // 0) - ($before->{health_requests} // 0);
    my $failed = ($after->{health_failed} // 0) - ($before->{health_failed} // 0);
    is($got, $asked, "flapping: every query answered ($got of $asked)");
    is((grep { $_ ne 'ready' } @states), 0, 'flapping: state ready at every look')
        or diag("states: @states");
    cmp_ok($failed, '>=', 3, "flapping: the probe saw failures ($failed of $probes)");
    my $max = int($elapsed / 0.2) + 2;
    ok($probes >= 4 && $probes <= $max,
        sprintf('two workers probe once per interval: %d probes in %.1f s (4..%d)', $probes, $elapsed, $max));
    is(probe_lines($log_from, $SVC, 'failing'), 0, 'flapping: isolated failures never take it down, nothing logged');
    sleep 0.6;    # a few good probes end the failing run
}

###############################################################################
# Continuous failure: down after `fall` probes; back after `rise`

{
    my $log_from = length $t->error_log;
    my $t0 = time;
    $app->control(health => 'fail');
    sleep 0.2 - (time - $t0) if time - $t0 < 0.2;
    is(answered(n => 1, timeout => 0.15), 1, 'failing: still answered 0.2 s after the first failure (fall=3)');
    my $took = LoadTest::wait_for(2.5, sub { state_of() eq 'down' }, 0.02);
    ok(defined $took, 'failing: state down');
    my $at = time - $t0;
    ok($at >= 0.4 && $at <= 1.5,
        sprintf('failing: down after 3 probes 200 ms apart, within 1.5 s (at %.2f s)', $at));
    is(answered(n => 20), 0, 'failing: 0 of 20 answered');
    is(svc()->{sources}{probe}{status}, 'down', 'failing: probe source down');
    sleep 0.5;    # more failures in the same run
    is(probe_lines($log_from, $SVC, 'failing'), 1, 'error log: "health probe is failing" once for the run');

    my $t1 = time;
    $app->control(health => 'ok');
    sleep 0.2 - (time - $t1) if time - $t1 < 0.2;
    is(answered(n => 1, timeout => 0.1), 0, 'recovering: still silent 0.2 s after the first good probe (rise=3)');
    my $back = LoadTest::wait_for(2.5, sub { state_of() eq 'ready' }, 0.02);
    my $at2 = time - $t1;
    ok(defined $back && $at2 >= 0.4 && $at2 <= 1.5,
        sprintf('recovering: ready after 3 good probes 200 ms apart, within 1.5 s (at %.2f s)', $at2));
    is(answered(n => 20), 20, 'recovered: 20 of 20 answered');
    sleep 0.3;
    is(probe_lines($log_from, $SVC, 'failing'), 1, 'error log: still one "failing" line for the run');
    is(probe_lines($log_from, $SVC, 'passing again'), 1, 'error log: "health probe is passing again" once');
}

###############################################################################
# Load from the X-Load header

{
    my $t0 = time;
    $app->control(load => '0.9');
    my $took = LoadTest::wait_for(1.5, sub {
        my $s = svc();
        $s && $s->{state} eq 'shedding' && $s->{load} == 0.9;
    }, 0.02);
    ok(defined $took, 'X-Load 0.9: state shedding, load 0.900 in the status JSON')
        or diag(explain(svc()));
    my $s = svc();
    is($s && $s->{sources}{probe}{load} + 0, 0.9, 'X-Load 0.9: the probe source reads 0.9');
    my ($n, $median) = answered(n => 80, timeout => 1.5);
    ok($n >= 0.5 * 80 && $n <= 0.9 * 80, "X-Load 0.9: about a quarter dropped ($n of 80 answered)");
    ok(defined $median && $median >= 0.17 && $median <= 0.3,
        'X-Load 0.9: answers delayed about 200 ms (median ' . LoadTest::ms($median) . ')');

    $app->control(load => 'none');
    $took = LoadTest::wait_for(1.5, sub { state_of() eq 'ready' }, 0.02);
    ok(defined $took, 'no X-Load header: ready again');
    is(answered(n => 10), 10, 'no X-Load header: 10 of 10 answered');
}

###############################################################################
# Load from the body (load=body)

{
    ok(defined LoadTest::wait_for(2, sub { state_of($BSVC) eq 'ready' }, 0.02),
        'load=body probe, body "ok": ready (a healthy status without a figure is load 0)');
    $app->control(body => '0.7');
    my $took = LoadTest::wait_for(1.5, sub {
        my $s = svc($BSVC);
        $s && $s->{state} eq 'shedding' && $s->{load} == 0.7;
    }, 0.02);
    ok(defined $took, 'body "0.7": state shedding, load 0.700') or diag(explain(svc($BSVC)));
    is(svc($BSVC)->{delay_ms} + 0, 10, 'body "0.7": delay 10 ms');
    my @r = LoadTest::burst($t, n => 20, timeout => 1, port => $BP, name => $BSVC, batch => 10, gap => 0.02);
    my ($n, $median) = LoadTest::summary(@r);
    is($n, 20, 'body "0.7": 20 of 20 answered');
    ok(defined $median && $median >= 0.008 && $median <= 0.05,
        'body "0.7": answers about 10 ms late (median ' . LoadTest::ms($median) . ')');
    $app->control(body => 'ok');
    ok(defined LoadTest::wait_for(1.5, sub { state_of($BSVC) eq 'ready' }, 0.02), 'body "ok" again: ready');
}

###############################################################################
# A reload keeps the health state: a service whose probe has passed does
# not go back to starting

{
    is(state_of(), 'ready', 'before reload: ready');
    ok($t->reload, 'reload: new workers started');
    my (@states, $got, $asked);
    for (1 .. 15) {
        push @states, state_of();
        $asked++;
        $got += answered(n => 1, timeout => 0.2);
        sleep 0.03;
    }
    is((grep { $_ ne 'ready' } @states), 0, 'after reload: ready at every look (never starting)')
        or diag("states: @states");
    is($got, $asked, "after reload: every query answered ($got of $asked)");
    like(state_of($CSVC), qr/^(starting|down)$/, 'after reload: the closed-port service still silent');
}

###############################################################################
# The services with a closed port are still silent, nothing crashed

is(answered(port => $CP, name => $CSVC, n => 5), 0, 'HTTP probe to a closed port: still 0 answered');
is(answered(port => $TCP, name => $TCSVC, n => 5), 0, 'TCP probe to a closed port: still 0 answered');
is(scalar $t->crash_lines, 0, 'no worker crashed') or diag(join "\n", $t->crash_lines);
ok(defined LoadTest::wait_for(3, sub { scalar($t->worker_pids) == 2 }), 'two workers alive');

$t->stop;
$app->stop;
done_testing;

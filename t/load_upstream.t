#!/usr/bin/perl

# dns_load_upstream: the load is the active connections of an upstream (with
# a zone) over its capacity, read from the shared peer state. Requests held
# open through nginx's proxy to a real application (t/app.py) drive it:
# idle → answered; all of max_conns busy → load 1, silent; half busy → 0.5,
# answered at once; three quarters (capacity=) → answered about 30 ms late.
# A stream upstream works the same with held TCP connections; a sampled
# load is smoothed over dns_load_smoothing; with a load file as well, the
# highest figure wins; an upstream
# whose only peer is down makes the service down. Unknown upstreams, an
# upstream without a zone and an ambiguous name fail nginx -t.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";

use IO::Socket::IP;
use Socket qw(SOCK_STREAM);
use Test::More;
use Time::HiRes qw(time sleep);
use DnsTest;
use LoadTest;
use TestApp;

###############################################################################
# Configuration errors

{
    my $c = DnsTest->new(ports => 1);
    my @cases = (
        ['no such upstream', 'dns_load_upstream nosuch;', '', qr/no such upstream/],
        ['upstream without a zone', 'dns_load_upstream nozone;',
            "http { upstream nozone { server 127.0.0.1:9; } }", qr/the upstream has no "zone"/],
        ['stream upstream without a zone', 'dns_load_upstream stream:snozone;',
            '', qr/the upstream has no "zone"/, "upstream snozone { server 127.0.0.1:9; }"],
        ['http: prefix naming only a stream upstream', 'dns_load_upstream http:sonly;',
            '', qr/no such upstream/, "upstream sonly { zone sonly 64k; server 127.0.0.1:9; }"],
        ['a name both http and stream upstreams have', 'dns_load_upstream both;',
            "http { upstream both { zone hboth 64k; server 127.0.0.1:9; } }", qr/both an http and a stream upstream/,
            "upstream both { zone sboth 64k; server 127.0.0.1:9; }"],
    );
    for my $case (@cases) {
        my ($what, $directive, $main, $re, $stream) = @$case;
        $c->write_config(DnsTest::conf(main => $main, stream => $stream // '',
            server => $directive));
        my $line = $c->config_line(qr/^\s*\Q$directive\E/);
        my ($rc, $out) = $c->test_config;
        my $file = $c->prefix . '/nginx.conf';
        isnt($rc, 0, "$what: nginx -t fails");
        like($out, qr/"dns_load_upstream".*\Q$file\E:$line\b/, "$what: names \"dns_load_upstream\" and nginx.conf:$line")
            or diag($out);
        like($out, $re, "$what: says why");
    }

    # The good forms pass.
    $c->write_config(DnsTest::conf(
        main   => "http { upstream both { zone hboth 64k; server 127.0.0.1:9; } }",
        stream => "upstream both { zone sboth 64k; server 127.0.0.1:9; }",
        server => 'dns_load_upstream http:both capacity=10;',
    ));
    my ($rc, $out) = $c->test_config;
    is($rc, 0, 'dns_load_upstream http:both with both kinds present passes nginx -t') or diag($out);
    $c->write_config(DnsTest::conf(
        main   => "http { upstream both { zone hboth 64k; server 127.0.0.1:9; } }",
        stream => "upstream both { zone sboth 64k; server 127.0.0.1:9; }",
        server => 'dns_load_upstream stream:both;',
    ));
    ($rc, $out) = $c->test_config;
    is($rc, 0, 'dns_load_upstream stream:both passes nginx -t') or diag($out);
}

###############################################################################
# A running nginx proxying to the application

my $t = DnsTest->new(ports => 9);
my $app = TestApp->start;
my $AP = $app->port;
my $SVC = 'www.example.com';
my ($CAP, $DOWN, $STR) = ('cap.example.org', 'down.example.org', 'stream.example.org');
my $SMOOTH = 'smooth.example.org';   # the same upstream, default smoothing (2 s)
my $COMBO = 'combo.example.org';     # the same upstream and a load file at 0.7
my $BACKUP = 'backup.example.org';   # primary peer down, a backup peer up
LoadTest::write_load($t->prefix . '/combo.load', "0.7\n");

$t->write_config(DnsTest::conf(
    workers => 2,
    main => <<"EOF",
http {
    access_log off;
    upstream app     { zone app 64k;     server 127.0.0.1:$AP max_conns=4; }
    upstream appcap  { zone appcap 64k;  server 127.0.0.1:$AP; }
    upstream appdown { zone appdown 64k; server 127.0.0.1:$AP down; }
    upstream appbackup {
        zone appbackup 64k;
        server 127.0.0.1:$AP down;
        server 127.0.0.1:$AP backup max_conns=4;
    }
    server {
        listen 127.0.0.1:%%PORT2%%;
        location = /status { dns_service_status; }
        location /cap/ { proxy_pass http://appcap/; proxy_read_timeout 10s; }
        location /backup/ { proxy_pass http://appbackup/; proxy_read_timeout 10s; }
        location / { proxy_pass http://app; proxy_read_timeout 10s; }
    }
}
EOF
    stream => "upstream sapp { zone sapp 64k; server 127.0.0.1:$AP max_conns=2; }\n"
            . "server { listen 127.0.0.1:%%PORT6%%; proxy_pass sapp; proxy_timeout 10s; }",
    # hold=0: the state follows the load at once
    server => "dns_load_upstream app;\ndns_load_smoothing 0;\ndns_silence drop;\ndns_shed hold=0;",
    servers => DnsTest::server_block(port => 'PORT3', service => $CAP,
            extra => "dns_load_upstream http:appcap capacity=4;\ndns_load_smoothing 0;\ndns_silence drop;")
        . DnsTest::server_block(port => 'PORT4', service => $DOWN,
            extra => "dns_load_upstream appdown;\ndns_silence drop;")
        . DnsTest::server_block(port => 'PORT5', service => $STR,
            extra => "dns_load_upstream stream:sapp;\ndns_load_smoothing 0;\ndns_silence drop;")
        . DnsTest::server_block(port => 'PORT7', service => $SMOOTH,
            extra => "dns_load_upstream app;")
        . DnsTest::server_block(port => 'PORT8', service => $COMBO,
            extra => "dns_load_upstream app;\ndns_load_smoothing 0;\n"
                   . "dns_load_file %%PREFIX%%/combo.load;")
        . DnsTest::server_block(port => 'PORT9', service => $BACKUP,
            extra => "dns_load_upstream appbackup;\ndns_load_smoothing 0;\ndns_silence drop;"),
));
my ($rc, $out) = $t->test_config;
is($rc, 0, 'configuration with http and stream upstreams passes nginx -t') or diag($out);
$t->run or BAIL_OUT('nginx did not start: ' . $t->error_log);

my $SP = $t->port(2);
my ($P, $CP, $DP, $STP, $PROXY, $SMP) = map { $t->port($_) } 1, 3, 4, 5, 6, 7;

sub svc { return LoadTest::service(LoadTest::status_json($SP), $_[0] // $SVC) }

sub answered {
    my (%o) = @_;
    my @r = LoadTest::burst($t, n => $o{n} // 10, timeout => $o{timeout} // 0.6,
        port => $o{port} // $P, name => $o{name} // $SVC);
    return LoadTest::summary(@r);
}

# Waits until the service reports load $load; returns true on success.
sub wait_load {
    my ($load, $svc, $timeout) = @_;
    return defined LoadTest::wait_for($timeout // 1.5, sub {
        my $s = svc($svc);
        $s && abs($s->{load} - $load) < 0.0005;
    }, 0.02);
}

sub wait_active {
    my ($n) = @_;
    return defined LoadTest::wait_for(2, sub { ($app->stats->{active_slow} // -1) == $n }, 0.02);
}

###############################################################################
# Idle

{
    ok(wait_load(0, $SVC), 'idle: load 0');
    my ($n, undef, $max) = answered(n => 20);
    is($n, 20, 'idle: 20 of 20 answered');
    ok(defined $max && $max < 0.05, 'idle: answered at once') or diag('max ' . LoadTest::ms($max));
    my $s = svc();
    is($s && $s->{state}, 'ready', 'idle: state ready');
    is($s && $s->{sources}{upstream}{status}, 'ok', 'idle: upstream source ok');
    is($s && $s->{sources}{upstream}{load} + 0, 0, 'idle: upstream source load 0');

    ok(wait_load(0.7, $COMBO), 'idle upstream, load file 0.7: load 0.700 (the highest figure wins)');
    is(svc($COMBO)->{state}, 'shedding', 'idle upstream, load file 0.7: shedding');

    my ($d) = answered(port => $DP, name => $DOWN, n => 10);
    is($d, 0, 'upstream whose only peer is down: 0 of 10 answered');
    is(svc($DOWN)->{state}, 'down', 'upstream whose only peer is down: state down');
    like($t->error_log, qr/dns_service \Q$DOWN\E: upstream "appdown" has no usable peer/,
        'error log: the upstream without a usable peer is logged');

    # As nginx does, the backup peer serves when every primary is down.
    my ($b) = answered(port => $t->port(9), name => $BACKUP, n => 10);
    is($b, 10, 'primary down, backup up: 10 of 10 answered');
    is(svc($BACKUP)->{state}, 'ready', 'primary down, backup up: state ready');
    unlike($t->error_log, qr/dns_service \Q$BACKUP\E: upstream "appbackup" has no usable peer/,
        'primary down, backup up: no "no usable peer" in the log');
    my @pids = TestApp::hold("http://127.0.0.1:$SP/backup/slow?ms=1500", 2);
    ok(wait_active(2), 'two slow requests reach the application through the backup peer');
    ok(wait_load(0.5, $BACKUP, 1), 'two of the backup\'s max_conns=4 busy: load 0.500');
    is(TestApp::wait_pids(4, @pids), 2, 'the two slow requests completed');
}

###############################################################################
# All 4 of max_conns=4 busy: load 1, no answers

{
    my $url = "http://127.0.0.1:$SP/slow?ms=3000";
    my $dropped_before = svc()->{dropped}{silent} // 0;
    my $t0 = time;
    my @pids = TestApp::hold($url, 4);
    ok(wait_active(4), 'four slow requests reach the application through nginx');
    ok(wait_load(1, $SVC, 1), 'four of four busy: load 1.000 within a second');
    my $t1 = time;
    my $smooth1 = svc($SMOOTH)->{load};
    ok($smooth1 > 0 && $smooth1 < 0.5,
        "smoothing 2s: the same upstream reads $smooth1 when the unsmoothed one reads 1.000");
    my ($sm) = answered(port => $SMP, name => $SMOOTH, n => 10);
    is($sm, 10, 'smoothing 2s: still answered (10 of 10) while the unsmoothed service is silent');
    is(svc($COMBO)->{load} + 0, 1, 'upstream full, load file 0.7: load 1.000 (the highest figure wins)');
    my ($n) = answered(n => 20);
    is($n, 0, 'four of four busy: 0 of 20 answered');
    my $s = svc();
    is($s && $s->{state}, 'shedding', 'four of four busy: state shedding');
    is($s && $s->{load} + 0, 1, 'four of four busy: status load 1.000');
    is($s && ($s->{dropped}{silent} // 0) - $dropped_before, 20, 'four of four busy: 20 more dropped as silent');
    my $prom = LoadTest::prometheus(LoadTest::status_get($SP)->{content});
    is($prom->{qq(dns_service_load{service="$SVC"})}, '1.000', 'Prometheus: dns_service_load 1.000');
    is($prom->{qq(dns_service_state{service="$SVC",state="shedding"})}, '1', 'Prometheus: state shedding');
    sleep 1.5 - (time - $t1) if time - $t1 < 1.5;
    my $smooth2 = svc($SMOOTH)->{load};
    my $at = time - $t1;
    ok($smooth2 >= 0.35 && $smooth2 <= 0.9,
        sprintf('smoothing 2s: %.3f after %.1f s more at full load (1 - e^(-t/2): ~0.5–0.7)', $smooth2, $at));
    cmp_ok(time - $t0, '<', 2.9, 'the checks ran while the requests were held');

    is(TestApp::wait_pids(6, @pids), 4, 'the four slow requests completed (200)');
    ok(wait_load(0, $SVC, 1), 'requests done: load back to 0 within a second');
    my $smooth3 = svc($SMOOTH)->{load};
    ok($smooth3 > 0.2, "smoothing 2s: decays gradually ($smooth3 when the unsmoothed one is back to 0)");
    ok(wait_load(0.7, $COMBO, 1), 'requests done, load file 0.7: load back to 0.700');
    my ($m, undef, $max) = answered(n => 20);
    is($m, 20, 'requests done: 20 of 20 answered');
    ok(defined $max && $max < 0.05, 'requests done: answered at once');
    is(svc()->{state}, 'ready', 'requests done: state ready');
}

###############################################################################
# Two of four busy: load 0.5, the start of the curve, answered at once.
# Meanwhile three on the capacity=4 upstream: 0.75, answered ~30 ms late.

{
    my $http = "http://127.0.0.1:$SP";
    my $t0 = time;
    my @pids = (TestApp::hold("$http/slow?ms=2500", 2), TestApp::hold("$http/cap/slow?ms=2500", 3));
    ok(wait_active(5), 'five slow requests reach the application');
    ok(wait_load(0.5, $SVC, 1), 'two of max_conns=4 busy: load 0.500');
    ok(wait_load(0.75, $CAP, 1), 'three of capacity=4 busy: load 0.750');
    my @r = LoadTest::burst($t, timeout => 0.6, batch => 20, gap => 0.02,
        targets => [[$P, 40, $SVC], [$CP, 40, $CAP]]);
    my ($n, $med, $max) = LoadTest::summary(grep { $_->{port} == $P } @r);
    my ($m, $cmed) = LoadTest::summary(grep { $_->{port} == $CP } @r);
    is($n, 40, 'load 0.5: 40 of 40 answered');
    ok(defined $med && $med < 0.003, 'load 0.5: answered at once (median ' . LoadTest::ms($med) . ')');
    is($m, 40, 'load 0.75: 40 of 40 answered');
    ok(defined $cmed && $cmed >= 0.020 && $cmed <= 0.060,
        'load 0.75: median delay within 20–60 ms (got ' . LoadTest::ms($cmed) . ')');
    is(svc($CAP)->{delay_ms} + 0, 30, 'load 0.75: status delay 30 ms');
    cmp_ok(time - $t0, '<', 2.4, 'the checks ran while the requests were held');
    is(TestApp::wait_pids(6, @pids), 5, 'the five slow requests completed');
    ok(wait_load(0, $SVC, 1) && wait_load(0, $CAP, 1), 'both loads back to 0');
}

###############################################################################
# A stream upstream: held TCP connections

{
    my @conns;
    for (1 .. 2) {
        push @conns, IO::Socket::IP->new(PeerHost => '127.0.0.1', PeerPort => $PROXY,
            Proto => 'tcp', Type => SOCK_STREAM, Timeout => 2);
    }
    is(scalar(grep { $_ } @conns), 2, 'two TCP connections through the stream proxy');
    ok(wait_load(1, $STR, 1.5), 'stream upstream, two of max_conns=2 connected: load 1.000');
    my ($n) = answered(port => $STP, name => $STR, n => 10);
    is($n, 0, 'stream upstream full: 0 of 10 answered');
    close $_ for grep { $_ } @conns;
    ok(wait_load(0, $STR, 1.5), 'stream connections closed: load 0');
    ($n) = answered(port => $STP, name => $STR, n => 10);
    is($n, 10, 'stream upstream idle: 10 of 10 answered');
}

is(scalar $t->crash_lines, 0, 'no worker crashed') or diag(join "\n", $t->crash_lines);
$t->stop;
$app->stop;
done_testing;

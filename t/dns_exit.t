#!/usr/bin/perl

# Reliability across reloads and exits, and stream features the UDP fast
# path does not run:
# - answers held back by a shedding delay are sent when the worker exits
#   (reload or quit), on the fast path and on the UDP session path;
# - a TCP client that keeps pipelining does not keep an old worker alive:
#   after a reload the old worker answers what it received, then closes;
# - a load file that is a FIFO with no writer does not block the worker;
# - allow/deny rules on a UDP listener are honoured (the listener takes the
#   session path, which applies them);
# - server blocks of one name (one shared state) with different load
#   sources or curves fail nginx -t.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";

use IO::Select;
use POSIX qw(mkfifo);
use Test::More;
use Time::HiRes qw(sleep time);
use DnsTest;
use LoadTest;

# Sends $n queries (each from its own socket) and returns the sockets.
sub send_queries {
    my ($t, $n, $port) = @_;
    my @socks;
    for my $i (1 .. $n) {
        my $s = $t->udp_socket(port => $port // $t->port);
        $s->send(DnsTest::make_query(id => $i)) // die "send: $!";
        push @socks, $s;
    }
    return @socks;
}

# How many of the sockets got an answer within $timeout seconds.
sub count_answers {
    my ($timeout, @socks) = @_;
    my $sel = IO::Select->new(@socks);
    my $got = 0;
    my $deadline = time + $timeout;
    while ($sel->count && time < $deadline) {
        for my $s ($sel->can_read(0.1)) {
            my $buf;
            $got++ if defined $s->recv($buf, 4096) && length $buf;
            $sel->remove($s);
        }
    }
    return $got;
}

###############################################################################
# Delayed answers survive the worker's exit

for my $case (['fast path', ''], ['session path', "dns_udp_fast_path off;"]) {
    my ($name, $extra) = @$case;
    for my $how ('reload', 'quit') {
        my $t = DnsTest->new(ports => 1);
        # Every answer waits 1.5 s; nothing is dropped.
        $t->write_config(DnsTest::conf(server => "dns_load_file %%PREFIX%%/app.load;\n"
            . "dns_load_smoothing 0;\ndns_shed 0.5:0 0.6:1500ms;\n$extra"));
        LoadTest::write_load($t->prefix . '/app.load', "0.7\n");
        $t->run or BAIL_OUT('nginx did not start: ' . $t->error_log);
        LoadTest::wait_for(3, sub {
            (LoadTest::burst($t, n => 1, timeout => 2))[0]{latency} // 0 > 1
        });
        my @socks = send_queries($t, 20);
        sleep 0.3;
        if ($how eq 'reload') {
            $t->reload;
        } else {
            kill 'QUIT', $t->master_pid;
        }
        my $got = count_answers(4, @socks);
        is($got, 20, "$name, $how during 1.5 s delays: all 20 delayed answers sent");
        unlike($t->error_log, qr/\[(alert|emerg|crit)\]/, "$name, $how: no alert in the error log");
        $t->stop;
    }
}

###############################################################################
# A pipelining TCP client does not keep an old worker alive

{
    my $t = DnsTest->new(ports => 1);
    $t->write_config(DnsTest::conf(server => 'dns_tcp_timeout 30s;'));
    $t->run or BAIL_OUT('nginx did not start: ' . $t->error_log);
    # The master's socket answers before the worker has surely forked.
    LoadTest::wait_for(5, sub { scalar $t->worker_pids });
    my ($old) = $t->worker_pids;
    my $c = $t->tcp_connect or die "connect: $!";
    my ($sent, $answered) = (0, 0);
    my $ask = sub {
        return 0 unless eval { $c->syswrite(DnsTest::frame(DnsTest::make_query(id => ++$sent))) };
        my $msg = DnsTest::tcp_read_msg($c, 1);
        $answered++ if defined $msg;
        return defined $msg;
    };
    $ask->() for 1 .. 5;
    # A message in flight when the reload comes: the connection is busy,
    # not idle, so nginx's own closing of idle connections does not apply.
    my $partial = DnsTest::frame(DnsTest::make_query(id => ++$sent));
    $c->syswrite(substr($partial, 0, 3));
    $t->reload(nowait => 1);
    my $reload_at = time;
    sleep 0.5;
    $c->syswrite(substr($partial, 3));
    $answered++ if defined DnsTest::tcp_read_msg($c, 1);
    my $closed_at;
    my $deadline = time + 6;
    while (time < $deadline) {
        if (!$ask->()) {
            $closed_at = time;
            last;
        }
        sleep 0.1;
    }
    ok($closed_at && $closed_at - $reload_at < 2.5,
        sprintf('after a reload the old worker closes a pipelining connection (%.1f s)',
            ($closed_at // $deadline) - $reload_at));
    ok($answered >= 6, "the queries before the reload and the one in flight were answered ($answered)");
    my $gone = LoadTest::wait_for(3, sub { !kill 0, $old });
    ok(defined $gone, 'the old worker exits, not held until dns_tcp_timeout');
    $t->stop;
}

###############################################################################
# A FIFO as load file does not block the worker

{
    my $t = DnsTest->new(ports => 1);
    my $fifo = $t->prefix . '/app.load';
    # Readable by the unprivileged worker, so that opening it would block.
    mkfifo($fifo, 0666) or die "mkfifo: $!";
    chmod 0666, $fifo;
    $t->write_config(DnsTest::conf(server => "dns_load_file $fifo;"));
    $t->run(wait => 'udp') or BAIL_OUT('nginx did not start: ' . $t->error_log);
    my @r = LoadTest::burst($t, n => 5, timeout => 1);
    my ($answered) = LoadTest::summary(@r);
    is($answered, 5, 'load file is a FIFO without a writer: queries are still answered');
    LoadTest::wait_for(2, sub { $t->error_log =~ /load file .* cannot be read/ });
    like($t->error_log, qr/load file "\Q$fifo\E" cannot be read/, 'FIFO: logged as unreadable');
    $t->stop;
}

###############################################################################
# allow/deny on a UDP listener

{
    my $t = DnsTest->new(ports => 2);
    $t->write_config(DnsTest::conf(
        server  => "deny 127.0.0.1;\nallow all;",
        servers => DnsTest::server_block(port => 'PORT2', service => 'open.example.org'),
    ));
    $t->run or BAIL_OUT('nginx did not start: ' . $t->error_log);
    my ($denied) = LoadTest::summary(LoadTest::burst($t, n => 5, timeout => 1));
    is($denied, 0, 'deny 127.0.0.1: no UDP answer');
    my $tcp = $t->tcp_exchange(DnsTest::make_query(), timeout => 1);
    ok(!defined $tcp || !length $tcp, 'deny 127.0.0.1: no TCP answer');
    my ($open) = LoadTest::summary(LoadTest::burst($t, n => 5, timeout => 1, port => $t->port(2),
        name => 'open.example.org'));
    is($open, 5, 'a server without rules on its own port still answers');
    like($t->error_log, qr/DNS on UDP 127\.0\.0\.1:\d+ takes nginx's session path, which applies allow\/deny rules/,
        'the fallback to the session path is logged');
    $t->stop;
}

###############################################################################
# Server blocks of one name share one state: their load settings must agree

{
    my $t = DnsTest->new(ports => 2);
    $t->write_config(DnsTest::conf(servers => DnsTest::server_block(port => 'PORT2',
        extra => 'dns_ttl 5s;')));
    my ($rc, $out) = $t->test_config;
    is($rc, 0, 'two server blocks of one name, other answer settings: accepted') or diag($out);
    $t->write_config(DnsTest::conf(servers => DnsTest::server_block(port => 'PORT2',
        extra => 'dns_load_file /nonexistent.load;')));
    ($rc, $out) = $t->test_config;
    isnt($rc, 0, 'two server blocks of one name, other load sources: nginx -t fails');
    like($out, qr/"dns_service" www\.example\.com in \S+nginx\.conf:\d+ is also served by the server in \S+nginx\.conf:\d+ with other load sources/,
        'the message names both places');
}

done_testing();

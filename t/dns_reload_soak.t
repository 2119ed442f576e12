#!/usr/bin/perl

# Reload and shutdown soak. nginx serves DNS at load 0.9 (with a curve that
# delays every answer 200 ms and drops a quarter) to dnsperf at a few
# thousand queries/s, to TCP clients that pipeline, and proxies a TCP
# connection to a local sink at the same time. The same run is made twice,
# without and with "nginx -s reload" every 0.5 s, then nginx quits.
#
# Pass: the loss with reloads is within 2 percentage points of the loss
# without; no worker crashes and no alert is logged; the proxied stream
# receives exactly the bytes its client sent (no DNS answer sent on a reused
# descriptor); the status counters add up; old workers exit within
# dns_tcp_timeout plus a margin after the last reload; the master's memory
# stays flat; nginx -s quit ends every process.
#
# SOAK_SECONDS sets each run's length (default 20; the hardening notes in
# the README use 60). SOAK_RATE sets dnsperf's query rate (default 3000).

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";

use IO::Select;
use IO::Socket::IP;
use POSIX qw(WNOHANG);
use Test::More;
use Time::HiRes qw(sleep time);
use DnsTest;
use LoadTest;

DnsTest::skip_all_unless_ci('dnsperf not installed (scripts/setup installs it)')
    unless grep { -x "$_/dnsperf" } split /:/, $ENV{PATH};

my $SECONDS = $ENV{SOAK_SECONDS} // 20;
my $RATE = $ENV{SOAK_RATE} // 3000;
my $TCP_TIMEOUT = 3;
my $PATTERN = join '', map { chr(ord('a') + $_ % 26) } 0 .. 4095;

# A TCP sink: accepts one connection at a time and compares what it reads
# with the repeating pattern; reports "ok BYTES" or "foreign AT" on exit.
sub start_sink {
    my $listen = IO::Socket::IP->new(LocalHost => '127.0.0.1', LocalPort => 0, Listen => 5, ReuseAddr => 1)
        or die "sink: $!";
    my $port = $listen->sockport;
    pipe(my $r, my $w) or die "pipe: $!";
    my $pid = fork // die "fork: $!";
    if ($pid == 0) {
        close $r;
        my ($total, $foreign) = (0, undef);
        local $SIG{TERM} = sub {
            print {$w} defined $foreign ? "foreign $foreign\n" : "ok $total\n";
            close $w;
            POSIX::_exit(0);
        };
        while (my $c = $listen->accept) {
            while (sysread($c, my $buf, 65536)) {
                for my $i (0 .. length($buf) - 1) {
                    if (substr($buf, $i, 1) ne substr($PATTERN, ($total + $i) % length $PATTERN, 1)) {
                        $foreign //= $total + $i;
                        last;
                    }
                }
                $total += length $buf;
            }
        }
        POSIX::_exit(0);
    }
    close $w;
    return ($port, $pid, $r);
}

# A TCP client that pipelines: two queries per write, answers read as they
# come, a new connection when the old one closes (an exiting worker closes
# it). Prints "sent answered connections" on SIGTERM.
sub start_tcp_client {
    my ($t) = @_;
    pipe(my $r, my $w) or die "pipe: $!";
    my $pid = fork // die "fork: $!";
    if ($pid == 0) {
        close $r;
        my ($sent, $answered, $conns, $stop) = (0, 0, 0, 0);
        local $SIG{TERM} = sub { $stop = 1 };
        my $deadline = time + 4 * $SECONDS + 60;
        while (!$stop && time < $deadline) {
            my $c = $t->tcp_connect or do { sleep 0.05; next };
            $conns++;
            my $sel = IO::Select->new($c);
            my $buf = '';
            while (!$stop && time < $deadline) {
                my $two = join '', map { DnsTest::frame(DnsTest::make_query(id => ++$sent & 0xffff)) } 1 .. 2;
                $sent++;
                last unless defined eval { $c->syswrite($two) };
                my $until = time + 0.05;
                my $closed = 0;
                while ((my $left = $until - time) > 0) {
                    next unless $sel->can_read($left);
                    my $n = sysread($c, $buf, 65536, length $buf);
                    if (!$n) { $closed = 1; last }
                    while (length $buf >= 2 && length $buf >= 2 + unpack('n', $buf)) {
                        substr($buf, 0, 2 + unpack('n', $buf), '');
                        $answered++;
                    }
                }
                last if $closed;
            }
            close $c;
        }
        print {$w} "$sent $answered $conns\n";
        close $w;
        POSIX::_exit(0);
    }
    close $w;
    return ($pid, $r);
}

sub finish {
    my ($pid, $r) = @_;
    kill 'TERM', $pid;
    my $line = <$r> // '';
    waitpid $pid, 0;
    chomp $line;
    return $line;
}

# Queries sent/completed/lost from dnsperf's report.
sub dnsperf {
    my ($port, $qfile) = @_;
    my $out = `dnsperf -s 127.0.0.1 -p $port -d $qfile -l $SECONDS -Q $RATE -c 4 -t 2 -q 2000 2>&1`;
    my ($sent) = $out =~ /Queries sent:\s+(\d+)/;
    my ($done) = $out =~ /Queries completed:\s+(\d+)/;
    my ($lost) = $out =~ /Queries lost:\s+(\d+)/;
    return ($sent // 0, $done // 0, $lost // 0, $out);
}

sub counters_add_up {
    my ($s) = @_;
    my $queries = $s->{queries}{udp} + $s->{queries}{tcp};
    my $dropped = 0;
    $dropped += $s->{dropped}{$_} for grep { $_ ne 'unanswerable' } keys %{ $s->{dropped} };
    my $decided = $s->{answered} + $s->{delayed} + $s->{refused_by_policy} + $s->{slipped} + $dropped;
    return ($queries, $decided);
}

my $qfile = "/tmp/dns-soak-queries-$$";
open my $qf, '>', $qfile or die "$qfile: $!";
print {$qf} "www.example.com A\n" x 100;
close $qf;
END { unlink $qfile if $qfile }

my %result;
for my $reloading (0, 1) {
    my $label = $reloading ? 'with reloads' : 'without reloads';
    my ($sink_port, $sink_pid, $sink_r) = start_sink();
    my $t = DnsTest->new(ports => 3);
    $t->write_config(DnsTest::conf(
        workers => 2,
        main    => LoadTest::status_http('PORT2'),
        stream  => "server { listen 127.0.0.1:%%PORT3%%; proxy_pass 127.0.0.1:$sink_port; "
                 . "proxy_timeout 600s; }",
        server  => "listen 127.0.0.1:%%PORT%% udp reuseport;\n"
                 . "dns_load_file %%PREFIX%%/app.load;\ndns_load_smoothing 0;\n"
                 . "dns_shed 0.5:0 0.9:200ms:0.25;\n"
                 . "dns_tcp_timeout ${TCP_TIMEOUT}s;",
    ) =~ s/listen 127\.0\.0\.1:%%PORT%% udp;\n//r);
    LoadTest::write_load($t->prefix . '/app.load', "0.9\n");
    $t->run or BAIL_OUT('nginx did not start: ' . $t->error_log);
    my $master = $t->master_pid;
    sleep 0.5;

    # The proxied stream: written to throughout, through the same workers.
    my $proxied = IO::Socket::IP->new(PeerHost => '127.0.0.1', PeerPort => $t->port(3)) or die "proxy: $!";
    my $written = 0;
    my ($tcp_pid, $tcp_r) = start_tcp_client($t);

    my $rss_before = LoadTest::rss_kib($master);
    my $perf = fork // die "fork: $!";
    if ($perf == 0) {
        my @r = dnsperf($t->port, $qfile);
        open my $fh, '>', $t->prefix . '/dnsperf.out' or POSIX::_exit(1);
        print {$fh} join("\n", @r[0 .. 2]), "\n", $r[3];
        close $fh;
        POSIX::_exit(0);
    }
    my ($reloads, $last_reload) = (0, time);
    my $deadline = time + $SECONDS + 8;
    while (time < $deadline) {
        last if waitpid($perf, WNOHANG) == $perf;
        my $chunk = substr($PATTERN x 2, $written % length $PATTERN, 512);
        $written += syswrite($proxied, $chunk) // 0;
        if ($reloading && time - $last_reload >= 0.5) {
            $reloads++ if $t->reload(nowait => 1);
            $last_reload = time;
            # The first reloads map and touch the shared zones in the master
            # for good; growth is measured from there.
            $rss_before = LoadTest::rss_kib($master) if $reloads == 5;
        }
        sleep 0.05;
    }
    waitpid($perf, 0) if kill 0, $perf;
    my $tcp = finish($tcp_pid, $tcp_r);
    close $proxied;

    # Old workers go once their delayed answers and TCP clients are done.
    my $settled = LoadTest::wait_for($TCP_TIMEOUT + 5, sub { scalar($t->worker_pids) <= 2 }, 0.1);
    my $rss_after = LoadTest::rss_kib($master);
    my $doc = LoadTest::status_json($t->port(2));
    my $svc = LoadTest::service($doc, 'www.example.com');
    my $log = $t->error_log;

    kill 'QUIT', $master;
    my $quit = LoadTest::wait_for(15, sub { !kill 0, $master });
    my $sink = finish($sink_pid, $sink_r);

    open my $fh, '<', $t->prefix . '/dnsperf.out' or die "dnsperf output: $!";
    chomp(my ($sent, $done, $lost) = (scalar <$fh>, scalar <$fh>, scalar <$fh>));
    my $report = do { local $/; <$fh> };
    my $loss = $sent ? $lost / $sent : 1;
    $result{$reloading} = $loss;
    diag(sprintf("%s: %d queries, %d answered, %.1f%% lost; %d reloads; TCP sent/answered/connections %s; "
        . "proxied %d bytes (%s); master RSS %s -> %s KiB",
        $label, $sent, $done, 100 * $loss, $reloads, $tcp, $written, $sink, $rss_before // '?', $rss_after // '?'));

    cmp_ok($sent, '>=', $RATE * $SECONDS * 0.8, "$label: dnsperf sent its queries") or diag($report);
    ok($loss > 0.15 && $loss < 0.40, sprintf("$label: loss near the curve's 25%% drops (%.1f%%)", 100 * $loss));
    unlike($log, qr/\[(alert|emerg|crit)\]|exited on signal/, "$label: no alert, no worker crash") or
        diag(join "\n", grep { /\[(alert|emerg|crit)\]|exited on signal/ } split /\n/, $log);
    like($sink, qr/^ok (\d+)$/, "$label: the proxied stream got only its own bytes ($sink)");
    my ($got_bytes) = $sink =~ /^ok (\d+)$/;
    is($got_bytes, $written, "$label: the proxied stream got every byte written");
    my ($queries, $decided) = counters_add_up($svc);
    ok($queries > 0 && $queries == $decided, "$label: counters add up (queries $queries, decided $decided)");
    ok(defined $settled, "$label: old workers gone within dns_tcp_timeout + 5 s");
    my ($tcp_answered, $tcp_conns) = $tcp =~ /^\d+ (\d+) (\d+)$/;
    ok($tcp_answered && $tcp_answered > 0, "$label: the pipelining TCP client got answers");
    ok($tcp_conns > 1, "$label: old workers closed the pipelining connection ($tcp_conns connections)")
        if $reloading;
    ok($rss_after <= $rss_before * 1.25 + 1024, "$label: master RSS flat ($rss_before -> $rss_after KiB)")
        if $rss_before && $rss_after;
    ok(defined $quit, "$label: nginx -s quit ends the master");
    $t->stop;
}

my $gap = 100 * ($result{1} - $result{0});
ok(abs($gap) <= 2, sprintf('loss with reloads within 2 points of the loss without (%+.1f points)', $gap));

done_testing();

#!/usr/bin/perl

# Floods, bounded and on loopback: garbage and valid queries from many
# source ports leave the worker answering, its memory flat and its error log
# free of crashes; reloads under a steady dnsperf load lose (close to) no
# queries.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";

use Test::More;
use IO::Socket::INET;
use Time::HiRes qw(sleep time);
use DnsTest;

my $t = DnsTest->new(ports => 1);
$t->write_config(DnsTest::conf(workers => 1));
$t->run or BAIL_OUT('nginx did not start: ' . $t->error_log);
my $port = $t->port;

sub rss_kib {
    my $total = 0;
    for my $pid ($t->worker_pids) {
        open my $fh, '<', "/proc/$pid/status" or next;
        while (<$fh>) { $total += $1 if /^VmRSS:\s+(\d+)/ }
    }
    return $total;
}

sub answered {
    my $r = $t->udp_exchange(DnsTest::make_query(), timeout => 1);
    return defined $r && length $r > 12;
}

srand(7);
my @sockets = map {
    IO::Socket::INET->new(Proto => 'udp', PeerAddr => '127.0.0.1', PeerPort => $port) or die $!
} 1 .. 200;
my $query = DnsTest::make_query(id => 1);

sub flood {
    my ($rounds) = @_;
    for my $round (1 .. $rounds) {
        for my $s (@sockets) {
            my $garbage = join '', map { chr int rand 256 } 1 .. 1 + int rand 300;
            $s->send($garbage);
            $s->send($query);
        }
        # drain replies so the sockets' buffers do not fill
        for my $s (@sockets) {
            while (1) {
                my $rin = '';
                vec($rin, fileno $s, 1) = 1;
                last unless select(my $rout = $rin, undef, undef, 0);
                $s->recv(my $buf, 4096);
            }
        }
        sleep 0.01;
    }
}

ok(answered(), 'answering before the flood');
flood(20);    # warm up: pools, buffers
my $before = rss_kib();
flood(100);   # 20,000 garbage + 20,000 valid datagrams from 200 ports
my $after = rss_kib();
diag("worker RSS before $before KiB, after $after KiB");
ok($after <= $before + 512, "memory flat under the flood ($before -> $after KiB)");
ok(answered(), 'answering after the flood');
is(scalar(my @c = $t->crash_lines), 0, 'no crash in the error log');

# Reloads under load (dnsperf, when installed), with a shared UDP socket
# and with reuseport sockets (one per worker).
for my $reuseport (0, 1) {
SKIP: {
    my ($dnsperf) = grep { -x } map { "$_/dnsperf" } split /:/, "$ENV{PATH}:/usr/bin";
    skip 'dnsperf not installed', 3 unless $dnsperf;
    my $label = $reuseport ? 'reuseport' : 'shared socket';
    if ($reuseport) {
        $t->stop;
        $t = DnsTest->new(ports => 1);
        $t->write_config(DnsTest::conf(workers => 2, no_default_server => 1, servers => DnsTest::server_block(
            listen => "        listen 127.0.0.1:%%PORT%% udp reuseport;\n        listen 127.0.0.1:%%PORT%%;\n")));
        $t->run or BAIL_OUT('nginx did not start: ' . $t->error_log);
        $port = $t->port;
    }
    my $qfile = $t->prefix . '/queries';
    open my $fh, '>', $qfile or die;
    print $fh "www.example.com A\n" x 10;
    close $fh;
    my $out = $t->prefix . '/dnsperf.out';
    my $pid = fork // die;
    if (!$pid) {
        exec "$dnsperf -s 127.0.0.1 -p $port -d $qfile -l 6 -Q 2000 -t 2 > $out 2>&1";
        exit 127;
    }
    sleep 1;
    for (1 .. 3) {
        $t->reload;
        sleep 1.2;
    }
    waitpid $pid, 0;
    open $fh, '<', $out or die;
    my $report = do { local $/; <$fh> };
    my ($sent) = $report =~ /Queries sent:\s+(\d+)/;
    my ($lost) = $report =~ /Queries lost:\s+(\d+)/;
    ok(defined $sent && $sent > 5000, "$label: dnsperf sent $sent queries during 3 reloads");
    diag("$label: reloads under dnsperf at 2000 q/s: sent $sent, lost $lost");
    ok(defined $lost && $lost <= $sent * 0.001, "$label: lost during reloads: $lost of $sent (at most 0.1%)");
    ok($t->master_alive, "$label: master alive after the reloads");
}
}

done_testing();

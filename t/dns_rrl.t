#!/usr/bin/perl

# Response rate limiting: per client network (/24), per second; past the
# rate, every slip-th response is a truncated reply and the rest are
# dropped; clients with a valid DNS cookie and TCP are not limited; the
# counters show it; the allowed rate is measured over several seconds.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";

use Test::More;
use IO::Select;
use IO::Socket::INET;
use Net::DNS;
use Time::HiRes qw(sleep time);
use DnsTest;

my $t = DnsTest->new(ports => 1);
$t->write_config(DnsTest::conf(server => 'dns_rate_limit 10 slip=2;'));
$t->run or BAIL_OUT('nginx did not start: ' . $t->error_log);
my $port = $t->port;

# Sends the queries (packets) from one socket bound to $source, spread over
# $seconds, and collects replies for a bounded time: (normal, truncated).
sub exchange {
    my (%o) = @_;
    my $sock = IO::Socket::INET->new(Proto => 'udp', LocalAddr => $o{source} // '127.0.0.1',
        PeerAddr => '127.0.0.1', PeerPort => $port) or die "socket: $!";
    my @packets = @{ $o{packets} };
    my $gap = ($o{seconds} // 0) / @packets;
    my ($normal, $truncated) = (0, 0);
    my $sel = IO::Select->new($sock);
    # Reads what has arrived, and keeps waiting for more until $wait
    # seconds have passed.
    my $collect = sub {
        my ($wait) = @_;
        my $deadline = time + $wait;
        while ($sel->can_read(_max($deadline - time, 0))) {
            $sock->recv(my $buf, 4096);
            my $reply = Net::DNS::Packet->new(\$buf) or next;
            $reply->header->tc ? $truncated++ : $normal++;
        }
    };
    my $start = time;
    for my $i (0 .. $#packets) {
        $sock->send($packets[$i]);
        my $due = $start + ($i + 1) * $gap;
        $collect->(0);
        sleep($due - time) if $due > time;
    }
    $collect->(1.0);
    return ($normal, $truncated);
}

sub _max { return $_[0] > $_[1] ? $_[0] : $_[1] }

sub queries {
    my ($n, $cookie) = @_;
    my @edns = $cookie ? (edns => { options => [[10, $cookie]] }) : ();
    return [map { DnsTest::make_query(id => $_, @edns) } 1 .. $n];
}

# A burst of 100 within a second: 10 answered, then alternately dropped and
# truncated (slip=2). A burst can straddle a second boundary, which allows
# up to twice the rate.
my ($normal, $tc) = exchange(packets => queries(100));
ok($normal >= 10 && $normal <= 20, "burst: $normal answered in full (rate 10/s)");
ok($tc >= 35 && $tc <= 46, "burst: $tc truncated replies (every 2nd limited response)");
ok($normal + $tc <= 60, 'burst: the rest dropped');

# Another client network has its own budget.
my ($other) = exchange(packets => queries(5), source => '127.0.1.1');
is($other, 5, 'another /24: all 5 answered');

# Accuracy: 60 queries/s for 4 s against 10/s. The count is per second of
# the clock, so the run starts just after a second begins (and after the
# burst's second is over): 4 whole seconds allow 40.
sleep(1.05 - (time - int time));
($normal, $tc) = exchange(packets => queries(240), seconds => 3.9);
my $rate = $normal / 4;
diag(sprintf 'allowed 10/s, measured %.2f/s answered in full (%d of 240; %d truncated)', $rate, $normal, $tc);
ok($normal >= 36 && $normal <= 50, "steady 60/s for 4 s: $normal answered in full (allowed 40)");

# A client with a valid cookie is not limited.
sleep 1.1;
my $reply = $t->udp_exchange(DnsTest::make_query(edns => { options => [[10, pack 'H*', '0011223344556677']] }));
my $opt = $reply && DnsTest::raw_opt($reply);
my $cookie = $opt && $opt->{options}{10};
ok(defined $cookie && length $cookie == 24, 'got a server cookie');
($normal, $tc) = exchange(packets => queries(60, $cookie));
is($normal, 60, 'valid cookie: all 60 of a burst answered');
sleep 1.1;
($normal) = exchange(packets => queries(60, pack 'H*', '0011223344556677'));
ok($normal <= 20, "client cookie only (not proven): limited, $normal of 60 answered in full");

# TCP is not limited.
my $res = Net::DNS::Resolver->new(nameservers => ['127.0.0.1'], port => $port, recurse => 0, usevc => 1);
my $ok = 0;
for (1 .. 30) {
    my $r = $res->send('www.example.com', 'A');
    $ok++ if $r && $r->header->rcode eq 'NOERROR' && $r->answer == 1;
}
is($ok, 30, 'TCP: 30 of 30 answered');

my $log = $t->error_log;
unlike($log, qr/exited on signal|panicked/, 'no worker crashed');

done_testing();

#!/usr/bin/perl

# DNS over TCP: pipelined queries on one connection, sequential queries,
# dns_tcp_timeout for stalled and idle clients, clients going away
# mid-message, zero-length messages, dns_tcp_max_connections.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";

use Test::More;
use Time::HiRes qw(sleep time);
use DnsTest;

my $t = DnsTest->new(ports => 2);
$t->write_config(DnsTest::conf(
    server  => 'dns_tcp_timeout 1s;',
    servers => DnsTest::server_block(port => 'PORT2', extra => 'dns_tcp_max_connections 3;'),
));
$t->run or BAIL_OUT('nginx did not start: ' . $t->error_log);

my @workers = $t->worker_pids;

sub rcode_of { my $h = DnsTest::header($_[0]); return $h ? $h->{rcode} : -1 }

sub answered_on {
    my ($s, $what, %q) = @_;
    my $id = 1 + int(rand(65535));
    DnsTest::tcp_write($s, DnsTest::frame(DnsTest::make_query(
        id => $id, name => 'www.example.com', type => 'A', %q)))
        or return fail("$what: write");
    my $why;
    my $r = DnsTest::tcp_read_msg($s, 2, \$why);
    my $p = DnsTest::decode($r);
    ok($p && $p->header->id == $id && $p->header->rcode eq 'NOERROR'
        && grep({ $_->type eq 'A' } $p->answer), $what)
        or diag('read: ' . ($why // 'bad answer'));
}

sub new_query_answered {
    my ($what, %o) = @_;
    my $p = $t->ask(proto => 'tcp', name => 'www.example.com', type => 'A', %o);
    is(join(',', map { $_->address } grep { $_->type eq 'A' } ($p ? $p->answer : ())),
        '127.0.0.1', $what);
}

# pipelining: 10 queries in one write, 10 answers, matched by id

{
    my @q = (
        ['www.example.com', 'A', 0], ['www.example.com', 'NS', 0],
        ['www.example.com', 'SOA', 0], ['foo.www.example.com', 'A', 3],
        ['www.example.com', 'AAAA', 0], ['example.org', 'A', 5],
        ['www.example.com', 'TXT', 0], ['a.b.www.example.com', 'A', 3],
        ['WwW.eXaMpLe.CoM', 'MX', 0], ['www.example.com', 'A', 0],
    );
    my %want;
    my $batch = '';
    my $id = 0x3100;
    for my $q (@q) {
        my $msg = DnsTest::make_query(id => ++$id, name => $q->[0], type => $q->[1]);
        $want{$id} = [$q, [DnsTest::raw_question($msg)]];
        $batch .= DnsTest::frame($msg);
    }
    my $s = $t->tcp_connect;
    ok($s, 'pipelining: connected');
    ok(DnsTest::tcp_write($s, $batch), 'pipelining: 10 queries written at once');
    my (%got, $why);
    for (1 .. 10) {
        my $r = DnsTest::tcp_read_msg($s, 3, \$why);
        last unless defined $r;
        my $h = DnsTest::header($r) or next;
        $got{$h->{id}} = $r;
    }
    is(scalar keys %got, 10, 'pipelining: 10 answers') or diag("read: " . ($why // ''));
    for my $id (sort keys %want) {
        my ($q, $question) = @{$want{$id}};
        my $r = $got{$id};
        ok(defined $r, "pipelining: answer for id $id ($q->[0] $q->[1])") or next;
        is_deeply([DnsTest::raw_question($r)], $question,
            "pipelining: id $id answer carries its question");
        is(rcode_of($r), $q->[2], "pipelining: id $id rcode $q->[2]");
    }
    close $s;
}

# the same in several writes split at odd places

{
    my $batch = '';
    my %ids;
    for my $i (1 .. 5) {
        my $id = 0x3200 + $i;
        $ids{$id} = 1;
        $batch .= DnsTest::frame(DnsTest::make_query(id => $id, name => 'www.example.com',
            type => 'A'));
    }
    my $s = $t->tcp_connect;
    my $ok = 1;
    for (my $off = 0; $off < length $batch; $off += 7) {
        $ok &&= DnsTest::tcp_write($s, substr($batch, $off, 7));
        sleep 0.005;
    }
    ok($ok, 'split writes: written');
    my %got;
    for (1 .. 5) {
        my $r = DnsTest::tcp_read_msg($s, 2) // last;
        my $h = DnsTest::header($r) or next;
        $got{$h->{id}} = 1;
    }
    is_deeply(\%got, \%ids, 'split writes: all 5 answered');
    close $s;
}

# sequential queries on one connection

{
    my $s = $t->tcp_connect;
    ok($s, 'sequential: connected');
    for my $i (1 .. 5) {
        answered_on($s, "sequential: query $i answered on the same connection");
    }
    close $s;
}

# a stalled message: length prefix and 3 bytes, then nothing

{
    my $s = $t->tcp_connect;
    my $start = time;
    DnsTest::tcp_write($s, pack('n', 33) . "\x12\x34\x00");
    my $waited = DnsTest::tcp_wait_close($s, 4);
    ok(defined $waited, 'stalled message: connection closed by the server');
    ok(defined $waited && $waited >= 0.8,
        'stalled message: not closed before dns_tcp_timeout')
        or diag("closed after " . ($waited // 'never'));
    ok(defined $waited && $waited <= 3,
        'stalled message: closed within dns_tcp_timeout + margin')
        or diag("closed after " . ($waited // 'never'));
    close $s;
    new_query_answered('stalled message: a new query is answered');
}

# a message sent slowly, byte by byte, within the timeout is answered

{
    my $s = $t->tcp_connect;
    my $msg = DnsTest::frame(DnsTest::make_query(id => 0x4242, name => 'www.example.com',
        type => 'A'));
    my $ok = 1;
    for my $i (0 .. length($msg) - 1) {
        $ok &&= DnsTest::tcp_write($s, substr($msg, $i, 1));
        sleep 0.01;
    }
    my $r = DnsTest::tcp_read_msg($s, 2);
    my $h = DnsTest::header($r) // {};
    is($h->{id}, 0x4242, 'slow writer: answered');
    close $s;
}

# idle connections are closed after dns_tcp_timeout

{
    my $s = $t->tcp_connect;
    my $waited = DnsTest::tcp_wait_close($s, 4);
    ok(defined $waited, 'idle (no query): closed by the server');
    ok(defined $waited && $waited >= 0.8 && $waited <= 3,
        'idle (no query): closed after about dns_tcp_timeout')
        or diag("closed after " . ($waited // 'never'));
    close $s;

    $s = $t->tcp_connect;
    answered_on($s, 'idle after a query: query answered');
    $waited = DnsTest::tcp_wait_close($s, 4);
    ok(defined $waited, 'idle after a query: closed by the server');
    ok(defined $waited && $waited >= 0.8 && $waited <= 3,
        'idle after a query: closed after about dns_tcp_timeout')
        or diag("closed after " . ($waited // 'never'));
    close $s;

    # activity resets the idle timer
    $s = $t->tcp_connect;
    for my $i (1 .. 3) {
        answered_on($s, "keepalive: query $i answered");
        sleep 0.6;
    }
    answered_on($s, 'keepalive: connection used for 1.8 s stays open');
    close $s;
}

# clients that go away mid-message

{
    for my $i (1 .. 5) {
        my $s = $t->tcp_connect or next;
        DnsTest::tcp_write($s, pack('n', 50) . ('x' x (5 * $i)));
        close $s;
    }
    my $s = $t->tcp_connect;
    DnsTest::tcp_write($s, "\x00");
    close $s;

    # and a client that resets the connection after a full query
    $s = $t->tcp_connect;
    DnsTest::tcp_write($s, DnsTest::frame(DnsTest::make_query(name => 'www.example.com')));
    setsockopt($s, Socket::SOL_SOCKET(), Socket::SO_LINGER(), pack('ii', 1, 0));
    close $s;

    sleep 0.1;
    new_query_answered('client gone mid-message: worker keeps serving');
    ok(defined $t->udp_exchange(DnsTest::make_query(name => 'www.example.com')),
        'client gone mid-message: UDP still answered');
}

# a zero-length message: closed or FORMERR

{
    my $s = $t->tcp_connect;
    DnsTest::tcp_write($s, "\x00\x00");
    my $data;
    my $waited = DnsTest::tcp_wait_close($s, 3, \$data);
    my $formerr = 0;
    if (length($data // '') >= 14) {
        my $h = DnsTest::header(substr($data, 2));
        $formerr = $h && $h->{rcode} == 1;
    }
    ok(defined $waited || $formerr, 'zero-length message: connection closed or FORMERR')
        or diag('got ' . length($data // '') . ' bytes, still open');
    close $s;
    new_query_answered('zero-length message: a new query is answered');
}

# dns_tcp_max_connections 3

{
    my $port = $t->port(2);
    my @c;
    for my $i (1 .. 3) {
        my $s = $t->tcp_connect(port => $port);
        ok($s, "max connections: connection $i open") or next;
        push @c, $s;
    }
    # make sure the server has taken all three
    answered_on($c[$_ - 1], "max connections: connection $_ answered") for 1 .. @c;

    my $fourth = $t->tcp_connect(port => $port);
    ok($fourth, 'max connections: 4th connects at TCP level');
    my $start = time;
    # a query on it must not be answered; the server closes it at once
    my $wrote = DnsTest::tcp_write($fourth,
        DnsTest::frame(DnsTest::make_query(name => 'www.example.com')));
    my $data;
    my $waited = DnsTest::tcp_wait_close($fourth, 3, \$data);
    ok(defined $waited && $waited < 1, 'max connections: 4th closed by the server promptly')
        or diag('closed after ' . ($waited // 'never'));
    is(length($data // ''), 0, 'max connections: 4th got no answer');
    close $fourth;

    answered_on($c[$_ - 1], "max connections: connection $_ still answered") for 1 .. @c;

    # freeing a slot lets a new connection in
    close(pop @c);
    my $ok = 0;
    for my $try (1 .. 20) {
        sleep 0.05;
        my $p = $t->ask(proto => 'tcp', port => $port, name => 'www.example.com', type => 'A',
            timeout => 1);
        if ($p && $p->header->rcode eq 'NOERROR') { $ok = 1; last }
    }
    ok($ok, 'max connections: a new connection is served after one closed');
    close $_ for @c;

    # the limit is per server: the first server still takes more connections
    my @other = map { $t->tcp_connect } 1 .. 5;
    answered_on($other[$_], 'other server: connection ' . ($_ + 1) . ' answered') for 0 .. 4;
    close $_ for @other;
}

ok($t->master_alive, 'master alive');
is_deeply([$t->worker_pids], \@workers, 'worker process unchanged');
$t->stop;
is(join("\n", $t->crash_lines), '', 'no crash in error log');

done_testing();

#!/usr/bin/perl

# Bad input: opcodes other than QUERY, wrong question counts, truncated and
# malformed questions, responses sent to the server, runt datagrams, and
# random garbage over UDP and TCP. The worker must keep answering.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";

use Test::More;
use Time::HiRes qw(sleep time);
use DnsTest;

# PORT: UDP on the fast path; PORT2: UDP on the stream session path.
my $t = DnsTest->new(ports => 2);
$t->write_config(DnsTest::conf(servers => DnsTest::server_block(port => 'PORT2',
    extra => 'dns_udp_fast_path off;')));
$t->run or BAIL_OUT('nginx did not start: ' . $t->error_log);

my @workers = $t->worker_pids;
is(scalar @workers, 1, 'one worker process');

my %RCODE = (NOERROR => 0, FORMERR => 1, SERVFAIL => 2, NXDOMAIN => 3,
             NOTIMP => 4, REFUSED => 5);

# 'udp' (fast path), 'udp-session' (session path) or 'tcp'
sub exchange {
    my ($proto, $msg, %o) = @_;
    return $t->tcp_exchange($msg, %o) if $proto eq 'tcp';
    return $t->udp_exchange($msg, %o, port => $t->port(2)) if $proto eq 'udp-session';
    return $t->udp_exchange($msg, %o);
}

my @PROTOS = qw(udp udp-session tcp);
my @UDP = qw(udp udp-session);

# opcodes other than QUERY: NOTIMP, opcode and ID echoed

for my $proto (@PROTOS) {
    for my $op ([1, 'IQUERY'], [2, 'STATUS'], [3, 'unassigned 3'], [4, 'NOTIFY'],
                [5, 'UPDATE'], [15, 'unassigned 15'])
    {
        my ($code, $what) = @$op;
        my $q = DnsTest::make_query(id => 0x4000 + $code, opcode => $code,
            name => 'www.example.com', type => $code == 5 ? 'SOA' : 'A');
        my $r = exchange($proto, $q);
        ok(defined $r, "$proto: opcode $what answered") or next;
        my $h = DnsTest::header($r);
        is($h->{rcode}, $RCODE{NOTIMP}, "$proto: opcode $what NOTIMP");
        is($h->{qr}, 1, "$proto: opcode $what QR set");
        is($h->{opcode}, $code, "$proto: opcode $what echoed");
        is($h->{id}, 0x4000 + $code, "$proto: opcode $what id echoed");
        is($h->{ancount}, 0, "$proto: opcode $what no answer");
    }
}

# question count other than one: FORMERR

for my $proto (@PROTOS) {
    my $r = exchange($proto, DnsTest::make_query(id => 0x1001, questions => []));
    ok(defined $r, "$proto: QDCOUNT 0 answered");
    my $h = DnsTest::header($r) // {};
    is($h->{rcode}, $RCODE{FORMERR}, "$proto: QDCOUNT 0 FORMERR");
    is($h->{id}, 0x1001, "$proto: QDCOUNT 0 id echoed");
    is($h->{qr}, 1, "$proto: QDCOUNT 0 QR set");
    is($h->{ancount}, 0, "$proto: QDCOUNT 0 no answer");

    $r = exchange($proto, DnsTest::make_query(id => 0x1002, questions => [
        ['www.example.com', 'A', 'IN'], ['www.example.com', 'NS', 'IN']]));
    ok(defined $r, "$proto: QDCOUNT 2 answered");
    $h = DnsTest::header($r) // {};
    is($h->{rcode}, $RCODE{FORMERR}, "$proto: QDCOUNT 2 FORMERR");
    is($h->{id}, 0x1002, "$proto: QDCOUNT 2 id echoed");
    is($h->{ancount}, 0, "$proto: QDCOUNT 2 no answer");

    # header says 2 questions, only one present
    $r = exchange($proto, DnsTest::make_query(id => 0x1003, qdcount => 2,
        name => 'www.example.com', type => 'A'));
    $h = DnsTest::header($r) // {};
    is($h->{rcode}, $RCODE{FORMERR}, "$proto: QDCOUNT 2 with one question FORMERR");
}

# truncated or malformed question: FORMERR

{
    my $hdr = pack 'n6', 0x2001, 0, 1, 0, 0, 0;
    my %bad = (
        'name cut after 5 bytes'    => "\x03www\x07",
        'name without terminator'   => "\x03www\x07example\x03com",
        'qtype cut'                 => "\x03www\x07example\x03com\x00\x00",
        'qclass missing'            => "\x03www\x07example\x03com\x00\x00\x01",
        'qclass cut'                => "\x03www\x07example\x03com\x00\x00\x01\x00",
        'label length past the end' => "\x3fwww",
    );
    for my $proto (@PROTOS) {
        for my $what (sort keys %bad) {
            my $r = exchange($proto, $hdr . $bad{$what});
            ok(defined $r, "$proto: $what answered") or next;
            my $h = DnsTest::header($r);
            is($h->{rcode}, $RCODE{FORMERR}, "$proto: $what FORMERR");
            is($h->{id}, 0x2001, "$proto: $what id echoed");
            is($h->{qr}, 1, "$proto: $what QR set");
            is($h->{ancount}, 0, "$proto: $what no answer");
        }
    }

    # names that cannot be valid in a query: a compression pointer loop, a
    # reserved label type, an overlong name. Any answer must be an error.
    my %odd = (
        'pointer loop'         => "\xc0\x0c\x00\x01\x00\x01",
        'reserved label type'  => "\x40abc\x00\x00\x01\x00\x01",
        'name over 255 octets' => ("\x3f" . ('a' x 63)) x 5 . "\x00\x00\x01\x00\x01",
    );
    for my $proto (@UDP) {
        for my $what (sort keys %odd) {
            my $r = exchange($proto, $hdr . $odd{$what}, timeout => 1);
            my $h = DnsTest::header($r);
            ok(!defined $r || ($h->{rcode} == $RCODE{FORMERR} && $h->{ancount} == 0),
                "$proto: $what: dropped or FORMERR")
                or diag('rcode ' . ($h ? $h->{rcode} : '?'));
        }
    }
}

# responses sent to the server (QR=1) get no response

for my $proto (@UDP) {
    for my $flags ([qr => 1], [qr => 1, aa => 1, rcode => 3]) {
        my $q = DnsTest::make_query(@$flags, name => 'www.example.com', type => 'A');
        my $r = exchange($proto, $q, timeout => 0.5);
        ok(!defined $r, "$proto: QR=1 message not answered");
    }
}

# datagrams shorter than a header get no response

for my $proto (@UDP) {
    for my $len (0, 1, 2, 11) {
        my $q = substr(DnsTest::make_query(name => 'www.example.com', type => 'A'), 0, $len);
        my $r = exchange($proto, $q, timeout => 0.5);
        ok(!defined $r, "$proto: $len-byte datagram not answered");
    }
    ok(defined exchange($proto, DnsTest::make_query(name => 'www.example.com', type => 'A')),
        "$proto: still answering after bad input");
}

# TCP messages shorter than a header get no response either

for my $len (1, 5, 11) {
    my $s = $t->tcp_connect;
    my $q = substr(DnsTest::make_query(name => 'www.example.com', type => 'A'), 0, $len);
    DnsTest::tcp_write($s, DnsTest::frame($q));
    my $r = DnsTest::tcp_read_msg($s, 0.5);
    ok(!defined $r || $r eq '', "tcp: $len-byte message not answered");
    close $s;
}
{
    my $p = $t->ask(proto => 'tcp', name => 'www.example.com', type => 'A');
    is($p && $p->header->rcode, 'NOERROR', 'tcp: still answering after short messages');
}

# random garbage over UDP (fixed seed), paced so that it reaches the worker

srand(20240613);
for my $pn (1, 2) {
    my $s = $t->udp_socket(port => $t->port($pn));
    my $sent = 0;
    for my $i (1 .. 200) {
        my $len = int(rand(600));
        my $msg = join '', map { chr(int(rand(256))) } 1 .. $len;
        # bias some datagrams towards plausible headers: QR clear, QDCOUNT 1
        if ($i % 3 == 0 && $len >= 12) {
            substr($msg, 2, 1) = chr(ord(substr($msg, 2, 1)) & 0x7f);
            substr($msg, 4, 2) = pack('n', 1);
        }
        $sent++ if defined $s->send($msg);
        if ($i % 20 == 0) {
            # drain whatever came back, give the worker time to catch up
            for (1 .. 50) { last unless defined DnsTest::udp_recv($s, 0.01) }
        }
    }
    is($sent, 200, "200 garbage datagrams sent to $UDP[$pn - 1]");
}

# random garbage over TCP: framed and unframed, then close

{
    my $ok = 0;
    for my $i (1 .. 20) {
        my $s = $t->tcp_connect or next;
        my $len = 1 + int(rand(300));
        my $msg = join '', map { chr(int(rand(256))) } 1 .. $len;
        $msg = DnsTest::frame($msg) if $i % 2;
        DnsTest::tcp_write($s, $msg);
        # read whatever comes back for a moment, then go away
        DnsTest::tcp_read_msg($s, 0.05);
        close $s;
        $ok++;
    }
    is($ok, 20, '20 TCP connections with garbage');
}

sleep 0.2;
for my $tr (['udp', 1], ['udp', 2], ['tcp', 1]) {
    my ($proto, $pn) = @$tr;
    my $p = $t->ask(proto => $proto, port => $t->port($pn), name => 'www.example.com',
        type => 'A');
    is(join(',', map { $_->address } grep { $_->type eq 'A' } ($p ? $p->answer : ())),
        '127.0.0.1', "$proto (port $pn): normal query answered after garbage");
}

ok($t->master_alive, 'master alive');
is_deeply([$t->worker_pids], \@workers, 'worker process unchanged (no crash, no respawn)');
is(join("\n", grep { /exited on signal/ } split /\n/, $t->error_log), '',
    'no "exited on signal" in error log');
is(join("\n", grep { /panicked/ } split /\n/, $t->error_log), '',
    'no "panicked" in error log');

$t->stop;
is(join("\n", $t->crash_lines), '', 'no crash in error log after stop');

done_testing();

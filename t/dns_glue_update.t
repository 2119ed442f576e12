#!/usr/bin/perl

# dns_glue_update against a real primary: BIND 9 serving the parent zone
# example.com on a loopback port, with an update-policy that lets the
# host's key change only ns1-www.example.com's A/AAAA. When the addresses
# the host gives out change (here through its address file), the tick
# leader pushes them to the parent, which then serves the new glue; while
# the parent is down the push is retried with backoff, the failure logged
# once, and answers go on unhindered; a wrong key is reported; a reload
# does not push again what the parent has. In front of the parent, a relay
# that answers UDP with a truncated response moves the push to TCP at once,
# and one that drops UDP gets it over TCP after two pushes without a
# response.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";

use File::Path qw(make_path);
use IO::Select;
use IO::Socket::INET;
use POSIX qw(WNOHANG);
use Test::More;
use Time::HiRes qw(time sleep);
use Net::DNS;
use AddrTest;
use DnsTest;
use LoadTest;

my $NAMED = `which named 2>/dev/null` =~ s/\s+$//r || '/usr/sbin/named';
DnsTest::skip_all_unless_ci('BIND 9 (named) and tsig-keygen are needed (Debian: bind9, bind9-utils)')
    unless -x $NAMED && `which tsig-keygen 2>/dev/null`;

my $t = DnsTest->new(ports => 4);
my $prefix = $t->prefix;
my ($SP, $PARENT, $FRONT) = ($t->port(2), $t->port(3), $t->port(4));
my $dir = "$prefix/parent";
make_path($dir);
my $KEY = AddrTest::keygen("$prefix/parent.key", 'parent-key');
my $FILE = "$prefix/public.addresses";

# ---- The parent: BIND with update-policy ----------------------------------

open my $fh, '>', "$dir/example.com.zone" or die $!;
print {$fh} <<'EOF';
$TTL 300
@       SOA ns.example.com. hostmaster.example.com. 1 3600 600 86400 300
@       NS  ns.example.com.
ns      A   127.0.0.1
www     NS  ns1-www.example.com.
www     NS  ns2-www.example.com.
ns1-www A   192.0.2.99
ns2-www A   192.0.2.98
EOF
close $fh;
open $fh, '>', "$dir/named.conf" or die $!;
print {$fh} <<"EOF";
options {
    directory "$dir";
    listen-on port $PARENT { 127.0.0.1; };
    listen-on-v6 { none; };
    pid-file "$dir/named.pid";
    recursion no;
    notify no;
    dnssec-validation no;
};
controls { };
include "$prefix/parent.key";
zone "example.com" {
    type primary;
    file "$dir/example.com.zone";
    // The host may change its own name server's addresses, nothing else.
    update-policy { grant parent-key name ns1-www.example.com. A AAAA; };
};
logging {
    channel f { file "$dir/named.log"; severity info; print-time yes; };
    category default { f; };
    category update { f; };
    category update-security { f; };
};
EOF
close $fh;

my $named_pid;
sub start_named {
    $named_pid = fork // die "fork: $!";
    if (!$named_pid) {
        open STDOUT, '>>', "$dir/named.out";
        open STDERR, '>&', \*STDOUT;
        exec $NAMED, '-c', "$dir/named.conf", '-f';
        exit 127;
    }
    return LoadTest::wait_for(10, sub { defined parent_glue('A') }, 0.1);
}
sub stop_named {
    return unless $named_pid;
    kill 'TERM', $named_pid;
    for (1 .. 100) { last if waitpid($named_pid, WNOHANG) == $named_pid; sleep 0.05 }
    kill 'KILL', $named_pid if kill 0, $named_pid;
    undef $named_pid;
}
END { stop_named() }

# What the parent serves for ns1-www.example.com (sorted), or undef.
sub parent_glue {
    my ($type) = @_;
    my $res = Net::DNS::Resolver->new(nameservers => ['127.0.0.1'], port => $PARENT,
        recurse => 0, retry => 1, udp_timeout => 1, tcp_timeout => 1);
    my $reply = $res->send('ns1-www.example.com', $type) or return undef;
    return join ' ', sort map { AddrTest::addr($_) } grep { $_->type eq $type } $reply->answer;
}

sub glue_becomes {
    my ($type, $want, $timeout) = @_;
    return LoadTest::wait_for($timeout // 3, sub { (parent_glue($type) // '') eq $want }, 0.1);
}

ok(start_named(), 'BIND serves the parent zone') or BAIL_OUT('named did not start: ' . `cat $dir/named.out`);
is(parent_glue('A'), '192.0.2.99', 'the parent\'s glue before');

# ---- The host ---------------------------------------------------------------

my $conf = DnsTest::conf(
    workers     => 2,
    main        => LoadTest::status_http('PORT2'),
    nameservers => 'ns1-www.example.com ns2-www.example.com',
    server      => "dns_address_file %%PREFIX%%/public.addresses;\n"
                 . "dns_glue_update server=127.0.0.1:%%PORT3%% name=ns1-www.example.com key=%%PREFIX%%/parent.key ttl=60;",
);
$conf =~ s/(listen 127\.0\.0\.1:%%PORT%%) udp;/$1 udp reuseport;/;
$t->write_config($conf);
my ($rc, $out) = $t->test_config;
is($rc, 0, 'dns_glue_update passes nginx -t') or diag($out);
$t->run or BAIL_OUT('nginx did not start: ' . $t->error_log);

# No address known yet (auto, no file): nothing is pushed.
sleep 0.6;
is(parent_glue('A'), '192.0.2.99', 'nothing pushed while the address is only auto');

# The address file gives the public address: the parent follows.
LoadTest::write_load($FILE, "203.0.113.7\n");
ok(defined glue_becomes('A', '203.0.113.7'), 'the parent serves the new glue');
ok(defined AddrTest::everywhere($t, 'A', '203.0.113.7'), 'and the host gives it out');
# The parent may serve the update before the module has read its answer.
LoadTest::wait_for(3, sub { $t->error_log =~ /glue update of ns1-www\.example\.com .*: done/ });
like($t->error_log, qr/glue update of ns1-www\.example\.com in example\.com at 127\.0\.0\.1:\d+: done \(203\.0\.113\.7\)/,
    'the push is logged');
my $res = Net::DNS::Resolver->new(nameservers => ['127.0.0.1'], port => $PARENT, recurse => 0);
my $reply = $res->send('ns1-www.example.com', 'A');
is(($reply->answer)[0]->ttl, 60, 'with the configured TTL');
like(`cat $dir/named.log`, qr/updating zone 'example\.com\/IN': deleting rrset at 'ns1-www\.example\.com' A/,
    'BIND logs the update');
LoadTest::wait_for(3, sub { (AddrTest::status($SP) // {})->{parent}{in_step} });
my $st = AddrTest::status($SP);
ok($st->{parent}{in_step}, 'status: the parent is in step');
is($st->{parent}{last_outcome}, 'NOERROR', 'status: the last outcome');

# Both families.
LoadTest::write_load($FILE, "203.0.113.8\n2001:db8::8\n");
ok(defined glue_becomes('A', '203.0.113.8'), 'a changed address is pushed');
is(parent_glue('AAAA'), '2001:db8::8', 'with its AAAA');
is(parent_glue('A') && `grep -c 'deleting rrset at .ns2-www' $dir/named.log` + 0, 0, 'nothing else in the parent changed');

# ---- The parent down: retried with backoff, logged once, answers unhindered ----

stop_named();
LoadTest::write_load($FILE, "203.0.113.9\n");
ok(defined AddrTest::everywhere($t, 'A', '203.0.113.9'), 'the host gives out the new address at once');
sleep 4;
my $failed = AddrTest::log_count($t, qr/glue update of ns1-www\.example\.com .* failed: /);
is($failed, 1, 'the failing push is logged once');
$st = AddrTest::status($SP);
ok($st->{parent}{attempts} >= 4 && $st->{parent}{failures} >= 2, "retried with backoff ($st->{parent}{attempts} attempts)");
ok(!$st->{parent}{in_step}, 'status: not in step');
my @r = LoadTest::burst($t, n => 50, timeout => 1);
my ($answered, $median) = LoadTest::summary(@r);
is($answered, 50, 'answers go on while the push fails');
ok(defined $median && $median < 0.05, 'promptly (median ' . LoadTest::ms($median) . ')');
ok(start_named(), 'the parent is back');
ok(defined glue_becomes('A', '203.0.113.9', 12), 'the retry brings the parent in step');
LoadTest::wait_for(3, sub { AddrTest::log_count($t, qr/: done \(203\.0\.113\.9\)/) >= 1 }, 0.1);
is(AddrTest::log_count($t, qr/: done \(203\.0\.113\.9\)/), 1, 'and is logged once');

# ---- A reload pushes nothing the parent has already --------------------------

my $pushes = AddrTest::log_count($t, qr/: done \(/);
ok($t->reload, 'reload');
sleep 1;
is(AddrTest::log_count($t, qr/: done \(/), $pushes, 'no push after a reload');

# ---- TCP: after a truncated UDP response, and after UDP timeouts -------------

# A relay on its own port in front of the parent: over UDP it answers each
# UPDATE with an empty truncated response (mode tc) or not at all (mode
# drop); over TCP it passes each message to BIND's TCP port and the
# response back. It writes one line per message to $prefix/front.log.
my $front_pid;
sub read_framed {
    my ($s) = @_;
    my $len = '';
    while (length $len < 2) { my $n = sysread($s, $len, 2 - length $len, length $len); return undef unless $n }
    my $want = unpack 'n', $len;
    my $msg = '';
    while (length $msg < $want) { my $n = sysread($s, $msg, $want - length $msg, length $msg); return undef unless $n }
    return $len . $msg;
}
sub start_front {
    my ($mode) = @_;
    unlink "$prefix/front.log";
    my $udp = IO::Socket::INET->new(LocalAddr => '127.0.0.1', LocalPort => $FRONT, Proto => 'udp', ReuseAddr => 1)
        or die "front udp: $!";
    my $tcp = IO::Socket::INET->new(LocalAddr => '127.0.0.1', LocalPort => $FRONT, Proto => 'tcp', Listen => 5,
        ReuseAddr => 1) or die "front tcp: $!";
    $front_pid = fork // die "fork: $!";
    if ($front_pid) { close $udp; close $tcp; return }
    open my $log, '>>', "$prefix/front.log" or die $!;
    $log->autoflush(1);
    my $sel = IO::Select->new($udp, $tcp);
    my $end = time + 60;
    while (time < $end) {
        for my $s ($sel->can_read(0.2)) {
            if ($s == $udp) {
                my $peer = $udp->recv(my $msg, 4096) or next;
                next if length $msg < 12;
                print {$log} "udp\n";
                next if $mode eq 'drop';
                # the request's ID and opcode, QR and TC set, no records
                $udp->send(substr($msg, 0, 2) . chr(ord(substr($msg, 2, 1)) | 0x82) . "\0" x 9, 0, $peer);
            } else {
                my $c = $tcp->accept or next;
                my $req = read_framed($c);
                print {$log} "tcp\n";
                my $b = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $PARENT, Proto => 'tcp', Timeout => 2);
                if ($b && defined $req) {
                    syswrite($b, $req);
                    my $resp = read_framed($b);
                    syswrite($c, $resp) if defined $resp;
                    close $b;
                }
                close $c;
            }
        }
    }
    exit 0;
}
sub stop_front {
    return unless $front_pid;
    kill 'TERM', $front_pid;
    waitpid $front_pid, 0;
    undef $front_pid;
}
END { stop_front() }
sub front_seen {
    my ($what) = @_;
    open my $fh, '<', "$prefix/front.log" or return 0;
    return scalar grep { $_ eq "$what\n" } <$fh>;
}

(my $fronted = $conf) =~ s/server=127\.0\.0\.1:%%PORT3%%/server=127.0.0.1:%%PORT4%%/ or die 'no server=';
start_front('tc');
$t->write_config($fronted);
ok($t->reload, 'reload: the push goes to the relay');
LoadTest::write_load($FILE, "203.0.113.11\n");
ok(defined glue_becomes('A', '203.0.113.11'), 'truncated over UDP: the parent gets the update over TCP');
is(front_seen('udp') . '/' . front_seen('tcp'), '1/1', 'one datagram, then one TCP exchange');
LoadTest::wait_for(3, sub { AddrTest::log_count($t, qr/: done \(203\.0\.113\.11\) over TCP$/) }, 0.1);
is(AddrTest::log_count($t, qr/: done \(203\.0\.113\.11\) over TCP$/), 1, 'logged as done over TCP');
is(AddrTest::log_count($t, qr/failed.*203\.0\.113\.11|glue update .* failed: a garbled/), 0, 'and no failure');
LoadTest::wait_for(3, sub { (AddrTest::status($SP) // {})->{parent}{tcp_pushes} });
is(AddrTest::status($SP)->{parent}{tcp_pushes}, 1, 'status: one push over TCP');

stop_front();
start_front('drop');
my $t0 = time;
LoadTest::write_load($FILE, "203.0.113.12\n");
my $took = glue_becomes('A', '203.0.113.12', 20);
ok(defined $took, 'UDP dropped: the parent gets the update over TCP') or diag(`tail -5 $prefix/front.log`);
is(front_seen('udp') . '/' . front_seen('tcp'), '2/1', 'after two datagrams without a response');
ok(time - $t0 >= 7, sprintf('after the two timeouts and the backoff (%.1f s)', time - $t0));
LoadTest::wait_for(3, sub { AddrTest::log_count($t, qr/: done \(203\.0\.113\.12\) over TCP$/) }, 0.1);
is(AddrTest::log_count($t, qr/: done \(203\.0\.113\.12\) over TCP$/), 1, 'logged as done over TCP');
is(AddrTest::log_count($t, qr/glue update .* failed: no response in time/), 1, 'the timeouts logged once');
stop_front();

# Back to the parent itself: nothing to push after the reload.
$t->write_config($conf);
ok($t->reload, 'reload: the push goes to the parent again');

# ---- A key the parent does not accept ----------------------------------------

AddrTest::keygen("$prefix/parent.key", 'parent-key');    # another secret
ok($t->reload, 'reload with another secret');
LoadTest::write_load($FILE, "203.0.113.10\n");
ok(defined LoadTest::wait_for(4, sub { AddrTest::log_count($t, qr/failed: TSIG error BADSIG/) == 1 }, 0.1),
    'BIND says BADSIG, and that is logged');
is(parent_glue('A'), '203.0.113.12', 'the parent keeps its glue');

is_deeply([$t->crash_lines], [], 'no worker crashed');
$t->stop;

# Configuration errors.
for my $case (
    ['dns_glue_update server=127.0.0.1 name=ns9-www.example.com key=%%PREFIX%%/parent.key;',
        qr/name=ns9-www\.example\.com is not one of the dns_nameservers/],
    ['dns_glue_update server=127.0.0.1 name=ns1-www.example.com key=%%PREFIX%%/parent.key;',
        qr/needs addresses to push/],
    ['dns_glue_update server=127.0.0.1 name=ns1-www.example.com key=%%PREFIX%%/missing.key;',
        qr/cannot read the key file/],
    ['dns_glue_update name=ns1-www.example.com key=%%PREFIX%%/parent.key;', qr/server= is required/],
) {
    my ($directive, $want) = @$case;
    $t->write_config(DnsTest::conf(nameservers => 'ns1-www.example.com ns2-www.example.com', server => $directive));
    my ($rc, $out) = $t->test_config;
    isnt($rc, 0, "nginx -t rejects: $directive");
    like($out, $want, 'with the reason');
}

done_testing;

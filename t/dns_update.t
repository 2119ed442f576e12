#!/usr/bin/perl

# RFC 2136 UPDATE of the apex addresses, signed with TSIG (dns_update_key),
# with the real nsupdate and with Net::DNS: accepted with the right key
# (UDP and TCP) and applied in every worker within a second; refused
# unsigned, for other names and types, other zones; BADSIG for another
# secret, BADKEY for another key, BADTIME for a stale signature;
# prerequisites honoured; answered while the host is drained (UPDATE comes
# before the shedding policy); kept across a reload and a restart; counted
# in the status; garbage UPDATEs crash nothing.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";

use Test::More;
use Time::HiRes qw(time sleep);
use Net::DNS;
use AddrTest;
use DnsTest;
use LoadTest;

DnsTest::skip_all_unless_ci('nsupdate and tsig-keygen are needed (Debian: dnsutils, bind9-utils)')
    unless `which nsupdate tsig-keygen 2>/dev/null` =~ /tsig-keygen/;

my $t = DnsTest->new(ports => 2);
my $prefix = $t->prefix;
my $SP = $t->port(2);
my $KEY = AddrTest::keygen("$prefix/update.key", 'update-key');
my $WRONG = AddrTest::keygen("$prefix/wrong.key", 'update-key');   # same name, another secret
my $OTHER = AddrTest::keygen("$prefix/other.key", 'other-key');

my $conf = DnsTest::conf(
    workers => 2,
    main    => LoadTest::status_http('PORT2'),
    server  => "dns_address 192.0.2.1;\ndns_update_key %%PREFIX%%/update.key;\n"
             . "dns_load_file %%PREFIX%%/app.load;\ndns_silence drop;",
);
$conf =~ s/(listen 127\.0\.0\.1:%%PORT%%) udp;/$1 udp reuseport;/;
$t->write_config($conf);
my ($rc, $out) = $t->test_config;
is($rc, 0, 'dns_update_key passes nginx -t') or diag($out);
$t->run or BAIL_OUT('nginx did not start: ' . $t->error_log);

sub nsupdate { return AddrTest::nsupdate($t, dir => $prefix, @_) }

# ---- Accepted, and in every worker within a second --------------------------

my $sent = time;
($rc, $out) = nsupdate(key => $KEY, commands => [
    'update delete www.example.com A',
    'update add www.example.com 10 A 192.0.2.7',
]);
is($rc, 0, 'nsupdate -k replaces the A record') or diag($out);
my $took = AddrTest::everywhere($t, 'A', '192.0.2.7', timeout => 1.5);
ok(defined $took && time - $sent <= 1.5, 'every worker answers 192.0.2.7 within a second of the update')
    or diag(sprintf 'took %s', $took // 'too long');
like($t->error_log, qr/addresses now 192\.0\.2\.7 \(were 192\.0\.2\.1\), by UPDATE from 127\.0\.0\.1 signed with key "update-key"/,
    'the update is logged');
my $st = AddrTest::status($SP);
is($st->{origin}, 'update', 'status: origin update');
is_deeply($st->{current}, ['192.0.2.7'], 'status: the current addresses');
is($st->{updated_by}, '127.0.0.1', 'status: who updated');
like($t->read_file('dns_state/www.example.com.state'), qr/^addresses 192\.0\.2\.7$/m, 'saved in the state file');

# Over TCP (nsupdate -v), with an AAAA.
($rc, $out) = nsupdate(key => $KEY, tcp => 1, commands => ['update add www.example.com 10 AAAA 2001:db8::7']);
is($rc, 0, 'nsupdate -v (TCP) adds an AAAA') or diag($out);
ok(defined AddrTest::everywhere($t, 'AAAA', '2001:db8::7'), 'every worker answers the AAAA');
ok(defined AddrTest::everywhere($t, 'A', '192.0.2.7'), 'the A is kept');

# ---- Refused, and nothing changes --------------------------------------------

($rc, $out) = nsupdate(commands => ['update add www.example.com 10 A 192.0.2.66']);
isnt($rc, 0, 'unsigned: rejected');
like($out, qr/update failed: REFUSED/, 'unsigned: REFUSED');
($rc, $out) = nsupdate(key => $KEY, commands => ['update add foo.www.example.com 10 A 192.0.2.66']);
like($out, qr/update failed: REFUSED/, 'a name below the apex: REFUSED');
($rc, $out) = nsupdate(key => $KEY, commands => ['update add www.example.com 10 TXT "hello"']);
like($out, qr/update failed: REFUSED/, 'another type at the apex: REFUSED');
($rc, $out) = nsupdate(key => $KEY, commands => ['update delete www.example.com NS']);
like($out, qr/update failed: REFUSED/, 'the NS set: REFUSED');
($rc, $out) = nsupdate(key => $KEY, commands => ['zone example.com', 'update add ns1-www.example.com 10 A 192.0.2.66']);
like($out, qr/update failed: NOTAUTH/, 'another zone: NOTAUTH');
($rc, $out) = nsupdate(key => $KEY, commands => ['zone www.example.com', 'update add www.example.org 10 A 192.0.2.66']);
like($out, qr/update failed: NOTZONE/, 'a name outside the zone: NOTZONE');
($rc, $out) = nsupdate(key => $WRONG, commands => ['zone www.example.com', 'update add www.example.com 10 A 192.0.2.66']);
isnt($rc, 0, 'another secret: rejected');
like($out, qr/BADSIG|tsig verify failure/i, 'another secret: BADSIG') or diag($out);
ok(defined AddrTest::everywhere($t, 'A', '192.0.2.7'), 'nothing changed');

# The same with Net::DNS, to see the TSIG error codes exactly.
sub signed_update {
    my ($keyfile, %o) = @_;
    my $u = Net::DNS::Update->new('www.example.com', 'IN');
    $u->push(update => rr_add('www.example.com 10 A ' . ($o{address} // '192.0.2.66')));
    $u->sign_tsig($keyfile, $o{time_signed} ? (time_signed => $o{time_signed}) : ());
    return $u;
}

sub exchange {
    my ($packet, $proto) = @_;
    my $raw = ($proto // 'udp') eq 'tcp'
        ? $t->tcp_exchange($packet->data) : $t->udp_exchange($packet->data);
    return DnsTest::decode($raw);
}

my $u = signed_update($WRONG);
my $r = exchange($u);
is($r && $r->header->rcode, 'NOTAUTH', 'Net::DNS, another secret: NOTAUTH');
is($r && $r->sigrr && $r->sigrr->error, 'BADSIG', 'TSIG error BADSIG');
is($r && $r->sigrr && length($r->sigrr->macbin), 0, 'the BADSIG reply is unsigned');
$u = signed_update($OTHER);
$r = exchange($u, 'tcp');
is($r && $r->header->rcode, 'NOTAUTH', 'Net::DNS, an unknown key (TCP): NOTAUTH');
is($r && $r->sigrr && $r->sigrr->error, 'BADKEY', 'TSIG error BADKEY');
$u = signed_update($KEY, time_signed => time - 1000);
$r = exchange($u);
is($r && $r->header->rcode, 'NOTAUTH', 'Net::DNS, signed 1000 s ago: NOTAUTH');
is($r && $r->sigrr && $r->sigrr->error, 'BADTIME', 'TSIG error BADTIME');
ok($r && $r->sigrr && length($r->sigrr->macbin) == 32, 'the BADTIME reply is signed');
my $other = $r && $r->sigrr ? $r->sigrr->other : '';
$other = pack('H*', $other) if $other =~ /^[0-9a-f]+$/i && length $other == 12;
ok(length($other) == 6 && abs(unpack('x2N', $other) - time) < 5, 'with the server time in other data');
$u = signed_update($KEY, address => '192.0.2.77');
$r = exchange($u);
is($r && $r->header->rcode, 'NOERROR', 'Net::DNS, the right key: NOERROR');
ok($r && $r->verify($u), 'the reply is signed and verifies') or diag($r && $r->verifyerr);
ok(defined AddrTest::everywhere($t, 'A', '192.0.2.7 192.0.2.77'), 'and applied');

# ---- Prerequisites -------------------------------------------------------------

($rc, $out) = nsupdate(key => $KEY, commands => [
    'prereq yxrrset www.example.com A 192.0.2.7',
    'update add www.example.com 10 A 192.0.2.8',
]);
like($out, qr/update failed: NXRRSET/, 'prereq: the A RRset is not exactly 192.0.2.7: NXRRSET');
($rc, $out) = nsupdate(key => $KEY, commands => [
    'prereq yxrrset www.example.com A 192.0.2.7',
    'prereq yxrrset www.example.com A 192.0.2.77',
    'update delete www.example.com A 192.0.2.77',
    'update add www.example.com 10 A 192.0.2.8',
]);
is($rc, 0, 'prereq: the whole RRset matches: applied') or diag($out);
ok(defined AddrTest::everywhere($t, 'A', '192.0.2.7 192.0.2.8'), 'the guarded update applied');
($rc, $out) = nsupdate(key => $KEY, commands => ['prereq nxrrset www.example.com A', 'update add www.example.com 10 A 192.0.2.9']);
like($out, qr/update failed: YXRRSET/, 'prereq nxrrset A: YXRRSET');
($rc, $out) = nsupdate(key => $KEY, commands => ['prereq yxdomain foo.www.example.com', 'update add www.example.com 10 A 192.0.2.9']);
like($out, qr/update failed: NXDOMAIN/, 'prereq yxdomain of an absent name: NXDOMAIN');
($rc, $out) = nsupdate(key => $KEY, commands => ['prereq nxdomain www.example.com', 'update add www.example.com 10 A 192.0.2.9']);
like($out, qr/update failed: YXDOMAIN/, 'prereq nxdomain of the apex: YXDOMAIN');
($rc, $out) = nsupdate(key => $KEY, commands => ['prereq yxrrset www.example.com AAAA', 'update delete www.example.com AAAA']);
is($rc, 0, 'prereq yxrrset AAAA, delete the AAAA RRset: applied') or diag($out);
ok(defined AddrTest::everywhere($t, 'AAAA', ''), 'no AAAA any more (NODATA)');
ok(defined AddrTest::everywhere($t, 'A', '192.0.2.7 192.0.2.8'), 'nothing else changed');

# ---- Before the shedding policy: a drained host still takes updates ---------------

LoadTest::write_load("$prefix/app.load", "drain\n");
ok(defined LoadTest::wait_for(1.5, sub { LoadTest::state_of($SP) eq 'draining' }), 'drained');
ok(!defined $t->ask(name => 'www.example.com', type => 'A', timeout => 0.3), 'queries get no answer');
($rc, $out) = nsupdate(key => $KEY, commands => ['update delete www.example.com A', 'update add www.example.com 10 A 192.0.2.9']);
is($rc, 0, 'while drained, an UPDATE (and nsupdate\'s signed SOA query) is answered') or diag($out);
LoadTest::write_load("$prefix/app.load", "up\n");
ok(defined LoadTest::wait_for(1.5, sub { LoadTest::state_of($SP) eq 'ready' }), 'back up');
ok(defined AddrTest::everywhere($t, 'A', '192.0.2.9'), 'with the address set while drained');

# ---- Reload and restart --------------------------------------------------------

ok($t->reload, 'reload');
ok(defined AddrTest::everywhere($t, 'A', '192.0.2.9'), 'after a reload: the updated address');
$t->stop;
$t->run or BAIL_OUT('nginx did not restart: ' . $t->error_log);
ok(defined AddrTest::everywhere($t, 'A', '192.0.2.9'), 'after a restart: the updated address');
is(AddrTest::status($SP)->{origin}, 'update', 'status after the restart: origin update');

# ---- Garbage -------------------------------------------------------------------

srand(13);
my $valid = signed_update($KEY, address => '192.0.2.10')->data;
my @garbage;
for my $i (1 .. 300) {
    my $len = 12 + int(rand(200));
    my $g = pack('n n', $i, 0x2800) . join('', map { chr(int(rand(256))) } 1 .. $len - 4);
    push @garbage, $g;
}
push @garbage, map { substr($valid, 0, $_) } 0 .. length($valid) - 1;
# Bit flips in a valid signed update: past its ID (TSIG signs the original
# ID instead), and not the letter-case bit (the key and algorithm names
# are compared without case).
my @bits = (0, 1, 2, 3, 4, 6, 7);
for my $i (0 .. 40) {
    my $g = $valid;
    my $at = 2 + int(rand(length($g) - 2));
    substr($g, $at, 1) = chr(ord(substr($g, $at, 1)) ^ (1 << $bits[$i % @bits]));
    push @garbage, $g;
}
my $sock = $t->udp_socket;
for my $g (@garbage) {
    $sock->send($g);
    DnsTest::udp_recv($sock, 0.001);
}
my $tcp = $t->tcp_connect;
DnsTest::tcp_write($tcp, join '', map { DnsTest::frame($_) } grep { length } @garbage[0 .. 60]) if $tcp;
sleep 0.5;
is_deeply([$t->crash_lines], [], 'garbage UPDATEs crash no worker');
ok(defined AddrTest::everywhere($t, 'A', '192.0.2.9'), 'and change nothing');
my $rejections = AddrTest::log_count($t, qr/UPDATE from .* rejected/);
ok($rejections <= 4, "rejections are logged at most once a second ($rejections lines)");
$st = AddrTest::status($SP);
ok($st->{updates}{formerr} + $st->{updates}{badsig} + $st->{updates}{unsigned} > 100,
    'the status counts them') or diag(explain $st->{updates});

$t->stop;
done_testing;

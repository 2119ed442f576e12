#!/usr/bin/perl

# scripts/check-delegation against real servers on loopback addresses
# (127.53.0.x, one port for all): NSD as the parent zone example.com,
# nginx with the module as the hosts, and a second NSD as signed hosts.
#
#   www  three hosts, right glue and NS sets: no error, also pre-flight
#   api  ns2's glue points where nothing listens
#   app  one host serves another NS set (and so another SOA serial)
#   gone not delegated at all
#   sec  signed, the parent's DS matches: no error
#   bad  signed, the parent's DS is of another key
#   old  signed, the signatures have expired
#   fake signed, one signature altered
#
# Needs nsd and ldns-keygen/ldns-signzone (Debian nsd, ldnsutils).

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";

use File::Path qw(make_path);
use Test::More;
use Time::HiRes qw(sleep);
use DnsTest;

for my $tool (qw(nsd ldns-keygen ldns-signzone python3)) {
    DnsTest::skip_all_unless_ci("$tool not found (scripts/setup installs it)")
        unless grep { -x "$_/$tool" } split /:/, "$ENV{PATH}:/usr/sbin";
}

my $CHECK = DnsTest::repo_dir() . '/scripts/check-delegation';
my $t = DnsTest->new(ports => 1);
my $P = $t->port(1);
my $dir = $t->prefix;
my $PARENT = '127.53.0.2';
my $NS = 'ns1-www.example.com ns2-www.example.com ns3-www.example.com';

sub host {
    my ($addr, $service, $ns) = @_;
    return DnsTest::server_block(
        service => $service, nameservers => $ns,
        listen => "        listen $addr:$P udp;\n        listen $addr:$P;\n");
}

$t->write_config(DnsTest::conf(no_default_server => 1, servers => join '',
    (map { host("127.53.0.$_", 'www.example.com', $NS) } 11 .. 13),
    host('127.53.0.21', 'api.example.com', 'ns1-api.example.com ns2-api.example.com'),
    host('127.53.0.22', 'api.example.com', 'ns1-api.example.com ns2-api.example.com'),
    host('127.53.0.31', 'app.example.com', 'ns1-app.example.com ns2-app.example.com'),
    host('127.53.0.32', 'app.example.com', 'ns2-app.example.com ns9-app.example.com'),
));
$t->run(wait => 'none') or BAIL_OUT('nginx did not start: ' . $t->error_log);

###############################################################################
# Signed hosts on NSD: keys, signed zones, and the DS records for the parent

sub run_cmd {
    my ($cmd) = @_;
    my $out = `cd '$dir' && $cmd 2>&1`;
    BAIL_OUT("$cmd failed: $out") if $?;
    chomp $out;
    return $out;
}

sub write_file {
    my ($path, $text) = @_;
    open my $fh, '>', $path or BAIL_OUT("$path: $!");
    print {$fh} $text;
    close $fh;
}

my %signed = (sec => '127.53.0.41', bad => '127.53.0.42', old => '127.53.0.43', fake => '127.53.0.44');
my %ds;
for my $z (sort keys %signed) {
    my $apex = "$z.example.com";
    write_file("$dir/$z.zone", <<"EOF");
\$TTL 300
$apex. IN SOA ns1-$z.example.com. hostmaster.$apex. 1 3600 600 86400 10
$apex. IN NS ns1-$z.example.com.
$apex. IN A $signed{$z}
EOF
    my $key = run_cmd("ldns-keygen -a ECDSAP256SHA256 -k $apex");
    my $dates = $z eq 'old' ? '-i 20200101000000 -e 20200201000000' : '';
    run_cmd("ldns-signzone $dates -f $z.signed $z.zone $key");
    $ds{$z} = run_cmd("grep -h ' 2 ' $key.ds");
    if ($z eq 'bad') {    # the parent gets the DS of a key that signs nothing
        my $other = run_cmd("ldns-keygen -a ECDSAP256SHA256 -k $apex");
        $ds{$z} = run_cmd("grep -h ' 2 ' $other.ds");
    }
}
# Alter one byte of the signature over fake's A record.
{
    open my $fh, '<', "$dir/fake.signed" or BAIL_OUT("fake.signed: $!");
    my @lines = <$fh>;
    close $fh;
    my $n = 0;
    for (@lines) {
        next unless /\bRRSIG\s+A\s/;
        s/(\S)(\S{8})$/($1 eq 'A' ? 'B' : 'A') . $2/e;
        $n++;
    }
    is($n, 1, 'one A signature altered in the fake zone');
    write_file("$dir/fake.signed", join '', @lines);
}

###############################################################################
# The parent zone, and the two NSD instances

my $parent_zone = <<"EOF";
\$TTL 3600
example.com. IN SOA ns.example.com. hostmaster.example.com. 1 3600 600 86400 3600
example.com. IN NS ns.example.com.
ns IN A $PARENT
; www: three hosts, the right glue
www IN NS ns1-www.example.com.
www IN NS ns2-www.example.com.
www IN NS ns3-www.example.com.
ns1-www IN A 127.53.0.11
ns2-www IN A 127.53.0.12
ns3-www IN A 127.53.0.13
; api: the glue of ns2 points where no host listens (it is on .22)
api IN NS ns1-api.example.com.
api IN NS ns2-api.example.com.
ns1-api IN A 127.53.0.21
ns2-api IN A 127.53.0.29
; app: the host on .32 serves another NS set
app IN NS ns1-app.example.com.
app IN NS ns2-app.example.com.
ns1-app IN A 127.53.0.31
ns2-app IN A 127.53.0.32
EOF
for my $z (sort keys %signed) {
    $parent_zone .= "$z IN NS ns1-$z.example.com.\nns1-$z IN A $signed{$z}\n$ds{$z}\n";
}
write_file("$dir/example.com.zone", $parent_zone);

my @nsd;
sub start_nsd {
    my ($name, $addrs, $zones) = @_;
    my $d = "$dir/$name";
    make_path($d);
    my $conf = "server:\n" . join('', map { "    ip-address: $_\@$P\n" } @$addrs) . <<"EOF";
    server-count: 1
    username: ""
    chroot: ""
    zonesdir: "$dir"
    database: ""
    zonelistfile: "$d/zone.list"
    xfrdfile: "$d/xfrd.state"
    pidfile: "$d/nsd.pid"
    logfile: "$d/nsd.log"
    answer-cookie: yes
    verbosity: 1
remote-control:
    control-enable: no
EOF
    $conf .= "zone:\n    name: \"$_->[0]\"\n    zonefile: \"$_->[1]\"\n" for @$zones;
    write_file("$d/nsd.conf", $conf);
    my $pid = fork // BAIL_OUT("fork: $!");
    if (!$pid) {
        open STDOUT, '>', "$d/stdout.log";
        open STDERR, '>&', \*STDOUT;
        exec 'nsd', '-d', '-c', "$d/nsd.conf";
        exit 127;
    }
    push @nsd, $pid;
}
END { kill 'TERM', @nsd if @nsd; waitpid $_, 0 for @nsd }

start_nsd('parent', [$PARENT], [['example.com.', 'example.com.zone']]);
start_nsd('signed', [values %signed], [map { ["$_.example.com.", "$_.signed"] } sort keys %signed]);
for my $server ($PARENT, values %signed, '127.53.0.11', '127.53.0.32') {
    my $up = 0;
    for (1 .. 50) {
        my $r = eval { $t->ask(name => 'example.com', type => 'SOA', addr => $server, port => $P, timeout => 0.2) };
        if ($r) { $up = 1; last }
        sleep 0.1;
    }
    $up or BAIL_OUT("nothing answers on $server:$P: " . `cat $dir/*/nsd.log $dir/*/stdout.log 2>&1`
        . $t->error_log);
}

###############################################################################
# The checks

# Runs the checker; returns (exit code, output, rows as [result, check, server, detail]).
sub check {
    my (@args) = @_;
    my $cmd = join ' ', map { "'$_'" } $CHECK, @args, '--port', $P, '--timeout', '1';
    my $out = `$cmd 2>&1`;
    my $rc = $? >> 8;
    my @rows = map { [split /\s{2,}/, $_, 4] } grep { /^(ok|WARN|ERROR)\s/ } split /\n/, $out;
    return ($rc, $out, \@rows);
}

sub row {
    my ($rows, $result, $check, $server, $detail) = @_;
    return grep {
        $_->[0] eq $result && $_->[1] eq $check && $_->[2] =~ $server && ($_->[3] // '') =~ $detail
    } @$rows;
}

{
    my ($rc, $out, $rows) = check('www.example.com', '--parent', $PARENT);
    is($rc, 0, 'www: no error') or diag($out);
    ok(!(grep { $_->[0] ne 'ok' } @$rows), 'www: every row ok') or diag($out);
    my $ns_set = join ' ', map { "$_." } split / /, $NS;
    for my $tcp ('udp', 'tcp') {
        ok(row($rows, 'ok', 'delegation', qr/^parent \Q$PARENT\E $tcp$/, qr/^NS \Q$ns_set\E$/),
            "www: the parent delegates to the three hosts ($tcp)") or diag($out);
    }
    for my $i (1 .. 3) {
        my $host = qr/^ns$i-www\.example\.com 127\.53\.0\.1$i$/;
        ok(row($rows, 'ok', 'answers', $host, qr/^AA, A 127\.53\.0\.1$i$/), "www: host $i answers its own address with AA");
        ok(row($rows, 'ok', $_, $host, qr//), "www: host $i: $_") for 'EDNS', 'cookie', 'TCP', 'NS set', 'SOA';
    }
    ok(row($rows, 'ok', 'SOA serials agree', qr/all hosts/, qr/^serial \d+$/), 'www: the SOA serials agree');
    ok(row($rows, 'ok', 'DS', qr/parent/, qr/not signed/), 'www: no DS, said so');

    my @hosts = map { ('--host', "ns$_-www.example.com=127.53.0.1$_") } 1 .. 3;
    ($rc, $out, $rows) = check('www.example.com', '--no-parent', @hosts);
    is($rc, 0, 'www, pre-flight (hosts only): no error') or diag($out);
    ok(row($rows, 'ok', 'NS set', qr/^ns2-www/, qr/given hosts/), 'pre-flight: NS sets compared with the given hosts');
    ok(!(grep { $_->[1] eq 'delegation' } @$rows), 'pre-flight: the parent is not asked');

    ($rc, $out, $rows) = check('www.example.com', '--no-parent', @hosts[0 .. 3]);
    is($rc, 1, 'pre-flight with a host left out: an error');
    ok(row($rows, 'ERROR', 'NS set', qr/^ns1-www/, qr/extra ns3-www\.example\.com\./), 'the host serves a name not given');
}

{
    my ($rc, $out, $rows) = check('api.example.com', '--parent', $PARENT);
    is($rc, 1, 'api (broken glue): exit 1') or diag($out);
    ok(row($rows, 'ERROR', 'answers', qr/^ns2-api\.example\.com 127\.53\.0\.29$/, qr/nothing listens there|no response/),
        'api: nothing answers at the glue address of ns2') or diag($out);
    ok(row($rows, 'ok', 'answers', qr/^ns1-api/, qr/AA/), 'api: ns1 is fine');

    ($rc, $out, $rows) = check('api.example.com', '--parent', $PARENT,
        '--host', 'ns1-api.example.com=127.53.0.21', '--host', 'ns2-api.example.com=127.53.0.22');
    is($rc, 1, 'api with the hosts given: exit 1');
    ok(row($rows, 'ERROR', 'glue = host', qr/parent/,
        qr/^ns2-api\.example\.com\.: glue 127\.53\.0\.29, host listens on 127\.53\.0\.22$/),
        'api: the glue of ns2 is not where the host listens') or diag($out);
    ok(row($rows, 'ok', 'answers', qr/^ns2-api.* 127\.53\.0\.22$/, qr/AA/), 'api: the host itself answers');
}

{
    my ($rc, $out, $rows) = check('app.example.com', '--parent', $PARENT);
    is($rc, 1, 'app (another NS set): exit 1') or diag($out);
    ok(row($rows, 'ERROR', 'NS set', qr/^ns2-app/,
        qr/differs from the parent's: missing ns1-app\.example\.com\.; extra ns9-app\.example\.com\./),
        'app: the host with another NS set is named, with the difference') or diag($out);
    ok(row($rows, 'ok', 'NS set', qr/^ns1-app/, qr/same as the parent's/), 'app: the other host is fine');
    ok(row($rows, 'ERROR', 'SOA serials agree', qr/all hosts/, qr/127\.53\.0\.31 \d+, 127\.53\.0\.32 \d+/),
        'app: the SOA serials differ');
    ok(row($rows, 'ERROR', 'NS sets agree', qr/all hosts/, qr/2 different/), 'app: the hosts disagree');
}

{
    my ($rc, $out, $rows) = check('gone.example.com', '--parent', $PARENT);
    is($rc, 1, 'gone (not delegated): exit 1');
    ok(row($rows, 'ERROR', 'delegation', qr/parent/, qr/^NXDOMAIN/), 'gone: the parent says NXDOMAIN') or diag($out);
}

{
    my ($rc, $out, $rows) = check('sec.example.com', '--parent', $PARENT);
    is($rc, 0, 'sec (signed, DS right): no error') or diag($out);
    ok(row($rows, 'ok', 'DS', qr/parent/, qr/alg 13 digest 2/), 'sec: the parent has a DS');
    ok(row($rows, 'ok', 'DS = DNSKEY', qr/^ns1-sec/, qr/matches a DNSKEY/), 'sec: it matches the DNSKEY');
    ok(row($rows, 'ok', 'signatures', qr/^ns1-sec/, qr/^4 RRsets validate, until \d{4}-/),
        'sec: DNSKEY, SOA, NS and A signatures validate') or diag($out);

    ($rc, $out, $rows) = check('bad.example.com', '--parent', $PARENT);
    is($rc, 1, 'bad (DS of another key): exit 1');
    ok(row($rows, 'ERROR', 'DS = DNSKEY', qr/^ns1-bad/, qr/no DNSKEY matches/), 'bad: the DS matches no DNSKEY')
        or diag($out);

    ($rc, $out, $rows) = check('old.example.com', '--parent', $PARENT);
    is($rc, 1, 'old (expired signatures): exit 1');
    ok(row($rows, 'ERROR', 'signatures', qr/^ns1-old/, qr/outside its validity period \(2020-01-01 00:00 to 2020-02-01/),
        'old: the signatures are outside their validity period') or diag($out);

    ($rc, $out, $rows) = check('fake.example.com', '--parent', $PARENT);
    is($rc, 1, 'fake (altered signature): exit 1');
    ok(row($rows, 'ERROR', 'signatures', qr/^ns1-fake/, qr/^A: no valid signature$/), 'fake: the A signature does not verify')
        or diag($out);
}

{
    # The parent's servers found through a resolver (here the parent's own
    # server, which answers for example.com itself).
    my ($rc, $out, $rows) = check('www.example.com', '--resolver', "$PARENT\@$P");
    is($rc, 0, 'www, the parent found through the resolver: no error') or diag($out);
    like($out, qr/^Delegation of www\.example\.com\.: parent zone example\.com\. at \Q$PARENT\E, port $P$/m,
        'the parent zone and its server, as found');
    ok(row($rows, 'ok', 'delegation', qr/^parent \Q$PARENT\E tcp$/, qr/^NS /), 'and asked');
}

{
    my ($rc, $out) = check('www.example.com', '--no-parent');
    is($rc, 2, 'pre-flight without hosts: usage error');
    like($out, qr/--no-parent needs the hosts/, 'and it says why');
}

$t->stop;
done_testing();

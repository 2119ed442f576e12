#!/usr/bin/perl

# dns_address_file and dns_address_map: the addresses given out follow a
# file the host (or a metadata script) writes, in every worker within a
# second and without a reload; a missing, bad or unreadable file keeps the
# last good set (each condition logged once); the set survives a reload,
# and a restart without the file (the state file keeps it); a FIFO in its
# place is not waited on. dns_address_map answers `auto` queries with the
# public address of the local one.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";

use POSIX qw(mkfifo);
use Test::More;
use Time::HiRes qw(time sleep);
use AddrTest;
use DnsTest;
use LoadTest;

my $t = DnsTest->new(ports => 3);
my $prefix = $t->prefix;
my $FILE = "$prefix/public.addresses";
my $SP = $t->port(2);

$t->write_config(DnsTest::conf(
    workers => 2,
    main    => LoadTest::status_http('PORT2'),
    server  => "dns_address 192.0.2.1;\ndns_address_file %%PREFIX%%/public.addresses;",
    servers => DnsTest::server_block(
        port    => 'PORT3',
        service => 'mapped.example.net',
        extra   => "dns_address_map 127.0.0.1=198.51.100.5 ::1=2001:db8::5;",
    ),
));
# Replace the default UDP listen with a reuseport one: every worker has its
# own socket, and queries from many source ports reach all of them.
my $conf = $t->config_text;
$conf =~ s/(listen 127\.0\.0\.1:\d+) udp;/$1 udp reuseport;/g;
$t->write_config($conf);

my ($rc, $out) = $t->test_config;
is($rc, 0, 'dns_address_file and dns_address_map pass nginx -t') or diag($out);
like($out, qr/no good address file and no saved state yet: answering with dns_address/,
    'a first start without the file is reported');
$t->run or BAIL_OUT('nginx did not start: ' . $t->error_log);

# First start, no file: the configured address.
ok(defined AddrTest::everywhere($t, 'A', '192.0.2.1'), 'no file yet: dns_address is given out');

# A good file: every worker answers with it within a second.
my $written = time;
LoadTest::write_load($FILE, "# from the metadata service\n203.0.113.7\n");
my $took = AddrTest::everywhere($t, 'A', '203.0.113.7', timeout => 1.5);
ok(defined $took && time - $written <= 1.0, 'a new address file applies in every worker within a second')
    or diag(sprintf 'took %s', $took // 'too long');
is(AddrTest::log_count($t, qr/addresses now 203\.0\.113\.7 \(were 192\.0\.2\.1\), from the address file/), 1,
    'the change is logged once');
my $st = AddrTest::status($SP);
is($st->{origin}, 'file', 'status: origin file');
is_deeply($st->{current}, ['203.0.113.7'], 'status: current addresses');
is($st->{file}{path}, $FILE, 'status: the file');
like($t->read_file('dns_state/www.example.com.state'), qr/^origin file$/m, 'the state file is written');

# Both families.
LoadTest::write_load($FILE, "203.0.113.8, 2001:db8::8\n");
ok(defined AddrTest::everywhere($t, 'A', '203.0.113.8'), 'A follows the file');
ok(defined AddrTest::everywhere($t, 'AAAA', '2001:db8::8'), 'AAAA follows the file');
my $p = $t->ask(name => 'www.example.com', type => 'A', proto => 'tcp');
is(join(' ', map { $_->address } $p->answer), '203.0.113.8', 'TCP answers follow too');

# Bad file: the last good set stays; logged once, however long it lasts.
LoadTest::write_load($FILE, "203.0.113.9 nonsense\n");
sleep 1.2;
ok(defined AddrTest::everywhere($t, 'A', '203.0.113.8'), 'a bad file keeps the last good set');
is(AddrTest::log_count($t, qr/address file .*"nonsense" is not an IPv4 or IPv6 address; keeping the addresses/), 1,
    'a bad file is logged once');

# Missing: the same (it was missing once already, at the start).
unlink $FILE;
sleep 1.2;
ok(defined AddrTest::everywhere($t, 'A', '203.0.113.8'), 'a missing file keeps the last good set');
is(AddrTest::log_count($t, qr/address file .* is missing; keeping the addresses/), 2, 'a missing file is logged once');

# A FIFO in its place is not opened for reading (that would block the worker).
mkfifo($FILE, 0666) or die "mkfifo: $!";
chmod 0666, $FILE;   # the workers run as another user
sleep 0.8;
ok(defined AddrTest::everywhere($t, 'A', '203.0.113.8'), 'a FIFO is not waited on; answers go on');
like($t->error_log, qr/address file .*not a regular file/, 'a FIFO is reported');
unlink $FILE;

# Good again.
LoadTest::write_load($FILE, "203.0.113.10\n");
ok(defined AddrTest::everywhere($t, 'A', '203.0.113.10', timeout => 1.5), 'a good file again applies');
like($t->error_log, qr/address file .* is good again/, 'and that is logged');

# A reload keeps it (the file did not change).
ok($t->reload, 'reload');
ok(defined AddrTest::everywhere($t, 'A', '203.0.113.10'), 'after a reload: the same addresses');
is(AddrTest::log_count($t, qr/addresses now 203\.0\.113\.10/), 1, 'a reload is no change');

# A restart without the file: the state file keeps the last set.
$t->stop;
unlink $FILE;
$t->run or BAIL_OUT('nginx did not restart: ' . $t->error_log);
ok(defined AddrTest::everywhere($t, 'A', '203.0.113.10'), 'after a restart without the file: the saved set');
is(AddrTest::status($SP)->{origin}, 'file', 'status after the restart: origin file');

# The map: `auto` answers with the public address of the local one.
is(AddrTest::addresses($t, 'A', port => $t->port(3), name => 'mapped.example.net'), '198.51.100.5',
    'dns_address_map: the public address of 127.0.0.1');
my $mapped = AddrTest::status($SP, 'mapped.example.net');
is_deeply($mapped->{map}, { '127.0.0.1' => '198.51.100.5', '::1' => '2001:db8::5' }, 'status: the map');
is($mapped->{current}, 'auto', 'status: auto');

is_deeply([$t->crash_lines], [], 'no worker crashed');
$t->stop;

# Configuration errors.
my $bad = DnsTest->new;
for my $case (
    ['dns_address_map 10.0.0.5;', qr/invalid value "10\.0\.0\.5" in "dns_address_map" directive: "10\.0\.0\.5" is not local=public/],
    ['dns_address_map 10.0.0.5=1.2.3.4 10.0.0.5=1.2.3.5;', qr/local address 10\.0\.0\.5 is mapped twice/],
    ["dns_address_file /a;\n dns_address_file /b;", qr/"dns_address_file" directive is duplicate/],
) {
    my ($directive, $want) = @$case;
    $bad->write_config(DnsTest::conf(server => $directive));
    my ($rc, $out) = $bad->test_config;
    isnt($rc, 0, "nginx -t rejects: $directive");
    like($out, $want, 'with the reason');
}
$bad->write_config(DnsTest::conf(no_default_server => 1,
    servers => "    server {\n        listen 127.0.0.1:%%PORT%%;\n        dns_address_file /x;\n        return 1;\n    }\n"));
my ($brc, $bout) = $bad->test_config;
like($bout, qr/"dns_address_file" requires "dns_service"/, 'dns_address_file needs dns_service');
# Two servers of one name share one set: they must agree on its sources.
$bad->write_config(DnsTest::conf(server => 'dns_address_file /x;',
    servers => DnsTest::server_block(listen => "        listen 127.0.0.2:%%PORT%%;\n")));
($brc, $bout) = $bad->test_config;
like($bout, qr/the servers of "dns_service" www\.example\.com must have the same dns_address_file/,
    'servers of one name must agree on the address sources');

done_testing;

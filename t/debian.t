#!/usr/bin/perl

# The module with the nginx packaged by Debian: builds it with
# scripts/build-debian, loads it into /usr/sbin/nginx next to the packaged
# stream module and queries it over UDP and TCP.
#
# Needs the packages nginx, libnginx-mod-stream, nginx-dev and
# libnet-dns-perl; skipped when they are missing. Run with:
#
#   prove -v t/debian.t

use strict;
use warnings;

use Test::More;

use File::Temp qw(tempdir);
use FindBin;
use IO::Socket::INET;
use POSIX qw(WNOHANG);
use Time::HiRes qw(sleep time);
use lib "$FindBin::Bin/lib";
use DnsTest ();

my $NGINX = '/usr/sbin/nginx';
my $PKG_SRC = '/usr/share/nginx/src';
my $STREAM_MODULE = '/usr/lib/nginx/modules/ngx_stream_module.so';

my $SERVICE = 'www.example.com';
my @NAMESERVERS = map { "ns$_-www.example.com" } 1 .. 3;

DnsTest::skip_all_unless_ci("no $NGINX (package nginx)") unless -x $NGINX;
DnsTest::skip_all_unless_ci("no $PKG_SRC (package nginx-dev)") unless -d $PKG_SRC;
DnsTest::skip_all_unless_ci("no $STREAM_MODULE (package libnginx-mod-stream)")
    unless -f $STREAM_MODULE;
DnsTest::skip_all_unless_ci('no Net::DNS (package libnet-dns-perl)')
    unless eval { require Net::DNS; 1 };

my $repo = "$FindBin::Bin/..";
my $dir = tempdir('ngx-dns-debian-XXXXXX', TMPDIR => 1, CLEANUP => 1);
my $pid_file = "$dir/nginx.pid";

# Stop nginx however the test ends.
$SIG{INT} = $SIG{TERM} = sub { exit 1 };
END { stop_nginx() }

###############################################################################

my $version = run_capture(10, $NGINX, '-V');
like($version, qr{^nginx version: nginx/1\.22\.}m, 'packaged nginx is 1.22')
    or diag($version);

my $module = build_module();

my $port = free_port();
write_config($module, $port);

my $test = run_capture(30, $NGINX, nginx_args(), '-t');
ok($? == 0, 'nginx -t accepts the configuration') or diag($test);

start_nginx() or BAIL_OUT('nginx did not start: ' . error_log());

my $res = Net::DNS::Resolver->new(
    nameservers => ['127.0.0.1'],
    port => $port,
    recurse => 0,
    igntc => 1,
    retry => 2,
    retrans => 1,
    udp_timeout => 3,
    tcp_timeout => 3,
);

# The apex A record over UDP: the address the query arrived on.

$res->usevc(0);
my $reply = $res->send($SERVICE, 'A', 'IN');

SKIP: {
    ok($reply, 'A over UDP answered') or diag($res->errorstring);
    skip 'no UDP answer', 5 unless $reply;

    is($reply->header->rcode, 'NOERROR', 'A over UDP: NOERROR');
    ok($reply->header->aa, 'A over UDP: authoritative');
    ok(!$reply->header->tc, 'A over UDP: not truncated');

    my @answer = $reply->answer;
    is(scalar @answer, 1, 'A over UDP: one record') or diag($reply->string);
    is(join(' ', map { $_->type . ' ' . ($_->type eq 'A' ? $_->address : '') }
                 @answer),
       'A 127.0.0.1', 'A over UDP: 127.0.0.1');
}

# The apex NS set over TCP.

$res->usevc(1);
$reply = $res->send($SERVICE, 'NS', 'IN');

SKIP: {
    ok($reply, 'NS over TCP answered') or diag($res->errorstring);
    skip 'no TCP answer', 3 unless $reply;

    is($reply->header->rcode, 'NOERROR', 'NS over TCP: NOERROR');
    ok($reply->header->aa, 'NS over TCP: authoritative');

    my @ns = sort map { lc $_->nsdname } grep { $_->type eq 'NS' }
        $reply->answer;
    is_deeply(\@ns, [sort @NAMESERVERS], 'NS over TCP: three name servers')
        or diag($reply->string);
}

unlike(error_log(), qr/\[(alert|crit|emerg)\]/, 'no alerts in error.log');

done_testing();

###############################################################################

# Builds (or reuses) the module; returns the path of the .so.

sub build_module {
    my $log = "$dir/build.log";

    open(my $saved, '>&', \*STDERR) or die "dup STDERR: $!";
    open(STDERR, '>', $log) or die "open $log: $!";
    my $ok = open(my $out, '-|', "$repo/scripts/build-debian", '--');
    my @lines = $ok ? <$out> : ();
    $ok &&= close($out);
    open(STDERR, '>&', $saved) or die "restore STDERR: $!";

    my $so = @lines ? $lines[-1] : '';
    chomp $so;

    unless ($ok && -f $so) {
        diag(slurp($log));
        BAIL_OUT('scripts/build-debian failed');
    }

    pass("built $so");
    return $so;
}

sub nginx_args {
    return ('-p', "$dir/", '-c', "$dir/nginx.conf", '-e', "$dir/error.log");
}

sub write_config {
    my ($module, $port) = @_;

    open(my $fh, '>', "$dir/nginx.conf") or die "open nginx.conf: $!";
    print $fh <<"EOF";
load_module $STREAM_MODULE;
load_module $module;

daemon on;
master_process on;
worker_processes 1;

pid $pid_file;
error_log $dir/error.log info;

events {
    worker_connections 64;
}

stream {
    server {
        listen 127.0.0.1:$port;
        listen 127.0.0.1:$port udp;

        dns_service $SERVICE;
        dns_nameservers @NAMESERVERS;
    }
}
EOF
    close($fh) or die "close nginx.conf: $!";
}

# Starts the nginx master as a daemon; true once it accepts TCP connections.

sub start_nginx {
    my $out = run_capture(30, $NGINX, nginx_args());
    if ($?) {
        diag($out);
        return 0;
    }

    my $deadline = time() + 10;
    while (time() < $deadline) {
        if (nginx_pid()) {
            my $s = IO::Socket::INET->new(
                PeerAddr => '127.0.0.1',
                PeerPort => $port,
                Proto => 'tcp',
                Timeout => 1,
            );
            return 1 if $s;
        }
        sleep(0.1);
    }

    return 0;
}

sub nginx_pid {
    open(my $fh, '<', $pid_file) or return;
    my $pid = <$fh>;
    return unless defined $pid && $pid =~ /^(\d+)\s*$/;
    return $1;
}

# Stops the master and its workers: graceful first, then SIGKILL to the
# process group (the daemonized master leads its own session).

sub stop_nginx {
    local ($?, $!, $@);

    my $pid = nginx_pid() or return;
    return unless kill(0, $pid);

    kill('TERM', $pid);

    my $deadline = time() + 5;
    while (time() < $deadline) {
        return unless kill(0, $pid);
        sleep(0.1);
    }

    kill('KILL', -$pid);
    kill('KILL', $pid);
}

# Runs a command with a time limit; returns its stdout and stderr, sets $?.

sub run_capture {
    my ($timeout, @cmd) = @_;

    my $out_file = "$dir/run.out";

    my $child = fork();
    die "fork: $!" unless defined $child;

    if ($child == 0) {
        open(STDIN, '<', '/dev/null');
        open(STDOUT, '>', $out_file) or POSIX::_exit(127);
        open(STDERR, '>&', \*STDOUT) or POSIX::_exit(127);
        exec(@cmd) or POSIX::_exit(127);
    }

    my $deadline = time() + $timeout;
    my $status;

    while (1) {
        if (waitpid($child, WNOHANG) == $child) {
            $status = $?;
            last;
        }
        if (time() > $deadline) {
            kill('KILL', $child);
            waitpid($child, 0);
            $status = -1;
            last;
        }
        sleep(0.05);
    }

    my $out = slurp($out_file);
    $out .= "\n(killed after ${timeout}s)\n" if $status == -1;
    $? = $status;
    return $out;
}

# A port on 127.0.0.1 that is free for both TCP and UDP.

sub free_port {
    for (1 .. 50) {
        my $tcp = IO::Socket::INET->new(
            LocalAddr => '127.0.0.1',
            LocalPort => 0,
            Proto => 'tcp',
            Listen => 1,
        ) or next;
        my $port = $tcp->sockport;
        my $udp = IO::Socket::INET->new(
            LocalAddr => '127.0.0.1',
            LocalPort => $port,
            Proto => 'udp',
        ) or next;
        return $port;
    }
    die "no free port on 127.0.0.1";
}

sub error_log {
    return slurp("$dir/error.log");
}

sub slurp {
    my ($file) = @_;
    open(my $fh, '<', $file) or return '';
    local $/;
    return scalar <$fh>;
}

###############################################################################

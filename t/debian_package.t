#!/usr/bin/perl

# The Debian package from scripts/package-debian, installed into the
# system's nginx: its contents and dependencies, lintian, `apt-get install
# ./…deb` (the module enabled through modules-enabled), `nginx -t` of the
# system configuration, a stream server with dns_service in a temporary
# configuration answering DNS on a high port, remove (the module disabled,
# the symlink set aside) and purge (nothing left).
#
# This installs and purges a package on the machine, so it runs only as
# root, and only under CI (CI=true: the CI machine is a disposable one) or
# when asked for with DEBIAN_PACKAGE_TEST=1. It is skipped when the package
# is installed already (the test would remove an installation it did not
# make).

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";

use File::Temp qw(tempdir);
use IO::Socket::IP;
use Test::More;
use Time::HiRes qw(sleep time);
use DnsTest;
use LoadTest;

my $PACKAGE = 'libnginx-mod-stream-dns-service';
my $NGINX = '/usr/sbin/nginx';
my $LINK = '/etc/nginx/modules-enabled/70-mod-stream-dns-service.conf';
my $SO = '/usr/lib/nginx/modules/ngx_stream_dns_service_module.so';
my $CONF = '/usr/share/nginx/modules-available/mod-stream-dns-service.conf';
my $DOC = "/usr/share/doc/$PACKAGE";

my $ci = ($ENV{CI} // '') =~ /^(1|true|yes)$/i;
plan(skip_all => 'installs a package into the system: runs under CI=true or with DEBIAN_PACKAGE_TEST=1')
    unless $ci || $ENV{DEBIAN_PACKAGE_TEST};
plan(skip_all => 'installing packages needs root') if $> != 0;
for my $need ([$NGINX, 'nginx'], ['/usr/lib/nginx/modules/ngx_stream_module.so', 'libnginx-mod-stream'],
    ['/usr/share/nginx/src', 'nginx-dev'], ['/usr/bin/dpkg-shlibdeps', 'dpkg-dev']) {
    DnsTest::skip_all_unless_ci("no $need->[0] (package $need->[1])") unless -e $need->[0];
}
plan(skip_all => "$PACKAGE is installed already; this test would remove it") if installed();

my $work = tempdir('ngx-dns-package-XXXXXX', TMPDIR => 1, CLEANUP => 1);
chmod 0755, $work;
my $we_installed = 0;
END { system("apt-get purge -y -q $PACKAGE >/dev/null 2>&1") if $we_installed }

sub installed {
    my $s = `dpkg-query -W -f='\${Status}' $PACKAGE 2>/dev/null`;
    return $s =~ /install ok installed/;
}

sub apt {
    my (@args) = @_;
    my $out = `DEBIAN_FRONTEND=noninteractive apt-get -y -q -o DPkg::Lock::Timeout=300 @args 2>&1`;
    return ($? >> 8, $out);
}

###############################################################################
# Build

my $deb = `'${\ DnsTest::repo_dir()}/scripts/package-debian' --output '$work' 2>'$work/build.log'`;
chomp $deb;
ok(-f $deb, 'scripts/package-debian built a .deb') or BAIL_OUT('build failed: ' . `tail -n 30 '$work/build.log'`);
like($deb, qr{/${PACKAGE}_\d+\.\d+\.\d+-1_[a-z0-9]+\.deb$}, 'named like a Debian package');

my $control = `dpkg-deb --field '$deb'`;
my ($abi) = `dpkg-query -W -f='\${Provides}' nginx` =~ /(nginx-abi-[^\s,]+)/;
like($control, qr/^Depends: .*\b\Q$abi\E\b/m, "it depends on the installed nginx's ABI ($abi)");
like($control, qr/^Depends: .*\blibnginx-mod-stream\b/m, 'and on libnginx-mod-stream');
like($control, qr/^Depends: .*\blibc6 \(>= [\d.]+\)/m, 'and on the C library, as dpkg-shlibdeps found');
like($control, qr/^Section: httpd$/m, 'in section httpd, like the other nginx modules');

my %files = map { m{^\S+\s+\S+\s+\d+\s+\S+\s+\S+\s+\.(/\S*)} ? ($1 => 1) : () } split /\n/, `dpkg-deb --contents '$deb'`;
for my $f ($SO, $CONF, "$DOC/copyright", "$DOC/changelog.Debian.gz", "$DOC/README.Debian", "$DOC/README.md.gz",
    "$DOC/examples/grafana-dashboard.json") {
    ok($files{$f}, "the package has $f");
}
my $tree = "$work/tree";
system('dpkg-deb', '-x', $deb, $tree) == 0 or BAIL_OUT('dpkg-deb -x failed');
is(slurp("$tree$CONF"), "load_module modules/ngx_stream_dns_service_module.so;\n", 'the load_module line');
like(slurp("$tree$DOC/copyright"), qr{^Format: https://www\.debian\.org/doc/packaging-manuals/copyright-format/1\.0/}m,
    'a machine-readable copyright file');
my $sections = `readelf -S --wide '$tree$SO' 2>&1`;
like($sections, qr/\.dynsym/, 'the module is a shared object');
unlike($sections, qr/\.symtab|\.debug_|\.comment/, 'stripped, as dh_strip would');

SKIP: {
    skip 'lintian not installed', 1 unless -x '/usr/bin/lintian';
    my $lintian = `lintian --no-tag-display-limit '$deb' 2>&1`;
    my @tags = grep { /^[EW]: / } split /\n/, $lintian;
    is_deeply(\@tags, [], 'lintian reports no errors or warnings') or diag($lintian);
}

###############################################################################
# Install into the system's nginx

my ($rc, $out) = apt('install', $deb);
$we_installed = 1;
is($rc, 0, 'apt-get install ./…deb') or diag($out);
ok(installed(), 'the package is installed');
ok(-f $SO && -f $CONF, 'the module and its load_module file are in place');
is(readlink($LINK), $CONF, 'the module is enabled through modules-enabled');

$out = `$NGINX -t 2>&1`;
is($? >> 8, 0, "nginx -t of the system's configuration, with the module loaded") or diag($out);

# A stream server with dns_service in a configuration of its own.
my $t = DnsTest->new(ports => 2);
my ($P, $SP) = ($t->port(1), $t->port(2));
my $prefix = $t->prefix;
write_file("$prefix/nginx.conf", <<"EOF");
include /etc/nginx/modules-enabled/*.conf;
worker_processes 1;
pid $prefix/nginx.pid;
error_log $prefix/error.log info;
events { worker_connections 64; }
stream {
    server {
        listen 127.0.0.1:$P udp;
        listen 127.0.0.1:$P;
        dns_service www.example.com;
        dns_nameservers ns1-www.example.com ns2-www.example.com;
    }
}
http {
    access_log off;
    server { listen 127.0.0.1:$SP; location = /status { dns_service_status; } }
}
EOF
# The default prefix: the load_module lines of modules-enabled are relative to it.
my @nginx = ($NGINX, '-c', "$prefix/nginx.conf", '-e', "$prefix/error.log");
$out = `@nginx -t 2>&1`;
is($? >> 8, 0, 'nginx -t of a configuration with dns_service') or diag($out);
system(@nginx) == 0 or BAIL_OUT('nginx did not start: ' . slurp("$prefix/error.log"));
my $pid;
LoadTest::wait_for(5, sub { ($pid) = (slurp("$prefix/nginx.pid") // '') =~ /(\d+)/; $pid });
END { kill 'QUIT', $pid if $pid }
ok(defined LoadTest::wait_for(5, sub { IO::Socket::IP->new(PeerHost => '127.0.0.1', PeerPort => $P) }),
    "Debian's nginx listens");

for my $proto ('udp', 'tcp') {
    my $p = $t->ask(proto => $proto, name => 'www.example.com', type => 'A');
    ok($p && $p->header->aa, "$proto: an authoritative answer");
    is_deeply([map { $_->address } grep { $_->type eq 'A' } $p ? $p->answer : ()], ['127.0.0.1'],
        "$proto: the address the query arrived on");
}
my $status = LoadTest::status_get($SP, '', headers => { Accept => 'text/html' });
like($status->{content} // '', qr{<span class="state state-ready"}, 'the status page, in HTML');
kill 'QUIT', $pid;
ok(defined LoadTest::wait_for(5, sub { !kill 0, $pid }), 'nginx stopped');
undef $pid;
unlike(slurp("$prefix/error.log") // '', qr/\[(alert|crit|emerg)\]/, 'no alerts in the error log');

###############################################################################
# Remove, then purge

($rc, $out) = apt('remove', $PACKAGE);
is($rc, 0, 'apt-get remove') or diag($out);
ok(!-e $SO, 'remove: the module is gone');
ok(!-e $LINK && -l "$LINK.removed", 'remove: the symlink is set aside, as for the other module packages');
$out = `$NGINX -t 2>&1`;
is($? >> 8, 0, 'nginx -t after remove') or diag($out);

($rc, $out) = apt('purge', $PACKAGE);
is($rc, 0, 'apt-get purge') or diag($out);
$we_installed = 0;
ok(!installed(), 'the package is not installed');
is(`dpkg-query -W -f='\${Status}' $PACKAGE 2>/dev/null`, '', 'dpkg forgot it') ;
ok(!-e $_ && !-l $_, "purge: $_ is gone") for $SO, $CONF, $DOC, $LINK, "$LINK.removed";
$out = `$NGINX -t 2>&1`;
is($? >> 8, 0, 'nginx -t after purge') or diag($out);

done_testing();

sub slurp {
    my ($path) = @_;
    open my $fh, '<', $path or return undef;
    local $/;
    return scalar <$fh>;
}

sub write_file {
    my ($path, $text) = @_;
    open my $fh, '>', $path or BAIL_OUT("$path: $!");
    print {$fh} $text;
    close $fh;
}

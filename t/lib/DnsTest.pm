package DnsTest;

# Test harness for the integration tests: runs a real nginx with the
# ngx_stream_dns_service_module loaded, in a private prefix directory, on
# free loopback ports, and talks DNS to it over UDP and TCP.
#
#   my $t = DnsTest->new(ports => 2);       # skips the test file if nothing is built
#   $t->write_config(DnsTest::conf(server => 'dns_ttl 300s;'));
#   $t->run;
#   my $p = $t->ask(name => 'www.example.com', type => 'A');   # Net::DNS::Packet
#   $t->stop;
#
# Environment: NGINX_BINARY and NGINX_MODULE override the binary and the
# module; TEST_NGINX_LEAVE=1 keeps the prefix directory for inspection.

use strict;
use warnings;

use Carp qw(croak);
use Cwd qw(abs_path);
use Errno qw(EAGAIN EINTR EWOULDBLOCK);
use File::Basename qw(dirname);
use File::Path ();
use File::Spec;
use File::Temp qw(tempdir);
use IO::Select;
use IO::Socket::IP;
use Socket qw(SOCK_DGRAM SOCK_STREAM);
use Test::More ();
use Time::HiRes qw(time sleep);

use Net::DNS;
use Net::DNS::Parameters qw(:type :class);

$SIG{PIPE} = 'IGNORE';

my $REPO = abs_path(File::Spec->catdir(dirname(abs_path(__FILE__)), '..', '..'));
my @INSTANCES;
my %USED_PORTS;

###############################################################################
# Locating the build

sub repo_dir { return $REPO }

sub find_nginx {
    return $ENV{NGINX_BINARY} if $ENV{NGINX_BINARY};
    my @c = grep { -x $_ && -f $_ }
        glob("$REPO/target/debug/build/nginx-sys-*/out/objs/nginx");
    return undef unless @c;
    @c = sort { (stat $b)[9] <=> (stat $a)[9] } @c;
    return $c[0];
}

# Skips the whole test file for a missing prerequisite; under CI (CI=true,
# as .ci/run sets) that is a failure instead, so that a broken build or a
# missing install step can never pass as "0 tests".
sub skip_all_unless_ci {
    my ($reason) = @_;
    if (($ENV{CI} // '') =~ /^(1|true|yes)$/i) {
        Test::More::BAIL_OUT("$reason (CI=true: prerequisites are required)");
    }
    Test::More::plan(skip_all => $reason);
}

sub find_module {
    return $ENV{NGINX_MODULE} if $ENV{NGINX_MODULE};
    my $m = "$REPO/target/debug/libngx_stream_dns_service_module.so";
    return -f $m ? $m : undef;
}

sub have_ipv6 {
    my $s = IO::Socket::IP->new(
        LocalHost => '::1', LocalPort => 0, Proto => 'udp', Type => SOCK_DGRAM);
    return $s ? 1 : 0;
}

###############################################################################
# Construction

# new(ports => N, ipv6 => 1): N free ports (same number free for UDP and TCP
# on 127.0.0.1, and on ::1 too when ipv6 is asked for). Skips the whole test
# file when nginx or the module cannot be found.
sub new {
    my ($class, %o) = @_;

    my $nginx  = find_nginx();
    my $module = find_module();
    skip_all_unless_ci('nginx binary not found (build with cargo build or set NGINX_BINARY)')
        unless $nginx && -x $nginx;
    skip_all_unless_ci('module not found (build with cargo build or set NGINX_MODULE)')
        unless $module && -f $module;
    Test::More::plan(skip_all => 'IPv6 loopback not available')
        if $o{ipv6} && !have_ipv6();

    # removed at exit by the END block below, after nginx has stopped
    my $prefix = tempdir('nginx-dns-test-XXXXXXXX', TMPDIR => 1, CLEANUP => 0);
    chmod 0755, $prefix;
    mkdir "$prefix/logs";

    my $self = bless {
        nginx   => $nginx,
        module  => abs_path($module),
        prefix  => $prefix,
        ports   => [],
        ipv6    => $o{ipv6} ? 1 : 0,
        running => 0,
    }, $class;

    my $n = $o{ports} || 1;
    push @{$self->{ports}}, $self->_free_port for 1 .. $n;

    push @INSTANCES, $self;
    return $self;
}

sub _free_port {
    my ($self) = @_;
    for my $try (1 .. 100) {
        my $tcp = IO::Socket::IP->new(LocalHost => '127.0.0.1', LocalPort => 0,
            Proto => 'tcp', Type => SOCK_STREAM, Listen => 1) or next;
        my $port = $tcp->sockport;
        next if $USED_PORTS{$port};
        my @hold = ($tcp);
        my $udp = IO::Socket::IP->new(LocalHost => '127.0.0.1', LocalPort => $port,
            Proto => 'udp', Type => SOCK_DGRAM) or next;
        push @hold, $udp;
        if ($self->{ipv6}) {
            my $t6 = IO::Socket::IP->new(LocalHost => '::1', LocalPort => $port,
                Proto => 'tcp', Type => SOCK_STREAM, Listen => 1) or next;
            my $u6 = IO::Socket::IP->new(LocalHost => '::1', LocalPort => $port,
                Proto => 'udp', Type => SOCK_DGRAM) or next;
            push @hold, $t6, $u6;
        }
        close $_ for @hold;
        $USED_PORTS{$port} = 1;
        return $port;
    }
    croak 'no free loopback port found';
}

sub port    { my ($self, $n) = @_; return $self->{ports}[($n || 1) - 1] }
sub prefix  { return $_[0]{prefix} }
sub nginx   { return $_[0]{nginx} }
sub module  { return $_[0]{module} }

###############################################################################
# Configuration

# The base configuration of the tests. Options:
#   workers => N         worker_processes (default 1)
#   main    => text      extra main-level directives
#   stream  => text      extra stream-level directives (before the server)
#   server  => text      extra directives inside the default server
#   service => name, nameservers => "a b c"   override the default server's
#   servers => text      additional server blocks (see server_block)
#   no_default_server => 1
sub conf {
    my (%o) = @_;
    my $workers = $o{workers} // 1;
    my $main    = $o{main}    // '';
    my $stream  = $o{stream}  // '';
    my $servers = $o{servers} // '';
    my $default = $o{no_default_server} ? '' : server_block(
        port        => 'PORT',
        service     => $o{service},
        nameservers => $o{nameservers},
        extra       => $o{server},
    );
    return <<"EOF";
load_module %%MODULE%%;
worker_processes $workers;
error_log %%PREFIX%%/error.log info;
pid %%PREFIX%%/nginx.pid;
$main
events { worker_connections 1024; }
stream {
$stream
$default
$servers
}
EOF
}

# A server block listening on UDP and TCP on 127.0.0.1:%%<port>%%.
#   port => 'PORT2', service => name, nameservers => "...", extra => text,
#   listen => text (replaces the default listen lines)
sub server_block {
    my (%o) = @_;
    my $port = $o{port} // 'PORT';
    my $service = $o{service} // 'www.example.com';
    my $ns = $o{nameservers}
        // 'ns1-www.example.com ns2-www.example.com ns3-www.example.com';
    my $extra = $o{extra} // '';
    my $listen = $o{listen}
        // "        listen 127.0.0.1:%%$port%% udp;\n        listen 127.0.0.1:%%$port%%;\n";
    $extra =~ s/^\s*/        /mg if length $extra;
    return <<"EOF";
    server {
$listen        dns_service $service;
        dns_nameservers $ns;
$extra
    }
EOF
}

sub expand {
    my ($self, $text) = @_;
    $text =~ s/%%MODULE%%/$self->{module}/g;
    $text =~ s/%%PREFIX%%/$self->{prefix}/g;
    $text =~ s/%%PORT(\d*)%%/$self->port($1 eq '' ? 1 : $1) or croak "no port $1"/ge;
    return $text;
}

# Writes PREFIX/nginx.conf (placeholders expanded); returns the expanded text.
sub write_config {
    my ($self, $text) = @_;
    my $conf = $self->expand($text);
    my $file = "$self->{prefix}/nginx.conf";
    open my $fh, '>', "$file.tmp" or croak "$file.tmp: $!";
    print {$fh} $conf;
    close $fh or croak "$file.tmp: $!";
    rename "$file.tmp", $file or croak "rename $file: $!";
    $self->{conf} = $conf;
    ($self->{workers}) = $conf =~ /^\s*worker_processes\s+(\d+)\s*;/m;
    $self->{workers} ||= 1;
    return $conf;
}

sub config_text { return $_[0]{conf} }

# Line number (1-based) of the first line of the written config matching $re.
sub config_line {
    my ($self, $re) = @_;
    my @lines = split /\n/, $self->{conf} // '';
    for my $i (0 .. $#lines) {
        return $i + 1 if $lines[$i] =~ $re;
    }
    return undef;
}

sub _shell_quote {
    my ($s) = @_;
    $s =~ s/'/'\\''/g;
    return "'$s'";
}

sub _nginx_cmd {
    my ($self, @extra) = @_;
    my $p = $self->{prefix};
    # NGINX_WRAPPER runs nginx under a tool, e.g. "valgrind --trace-children=yes ...".
    my @wrapper = grep { length } split ' ', $ENV{NGINX_WRAPPER} // '';
    return join ' ', map { _shell_quote($_) }
        @wrapper, $self->{nginx}, @extra, '-p', "$p/", '-c', "$p/nginx.conf", '-e', "$p/error.log";
}

# nginx -t: returns (exit code, combined output).
sub test_config {
    my ($self) = @_;
    croak 'write_config first' unless defined $self->{conf};
    my $out = `@{[ $self->_nginx_cmd('-t') ]} 2>&1`;
    my $rc = $? == -1 ? -1 : $? >> 8;
    return ($rc, $out);
}

###############################################################################
# Process control

sub _alive {
    my ($pid) = @_;
    return 0 unless $pid && kill(0, $pid);
    # a master reparented to an init that does not reap stays a zombie
    if (open my $fh, '<', "/proc/$pid/stat") {
        my $stat = <$fh> // '';
        return 0 if $stat =~ /^\d+ \(.*\) [ZX]/s;
    }
    return 1;
}

sub _read_pid {
    my ($self) = @_;
    open my $fh, '<', "$self->{prefix}/nginx.pid" or return undef;
    my $pid = <$fh>;
    return undef unless defined $pid && $pid =~ /^(\d+)/;
    return $1;
}

sub master_pid { my ($self) = @_; return $self->{pid} }

# The pid currently in the pid file.
sub pid_from_file { my ($self) = @_; return $self->_read_pid }

sub master_alive { my ($self) = @_; return _alive($self->{pid}) }

# Live children of the master (the worker processes).
sub worker_pids {
    my ($self) = @_;
    my $m = $self->{pid} or return ();
    my @w;
    opendir my $dh, '/proc' or return ();
    for my $d (readdir $dh) {
        next unless $d =~ /^\d+$/;
        open my $fh, '<', "/proc/$d/stat" or next;
        my $stat = <$fh> // next;
        next unless $stat =~ /^\d+ \(.*\) (\S) (\d+) /s;
        push @w, $d if $2 == $m && $1 ne 'Z' && $1 ne 'X';
    }
    @w = sort { $a <=> $b } @w;
    return @w;
}

# Starts nginx (daemonized master) and waits until it serves. Options:
#   wait => 'tcp' (default: a TCP connect to %%PORT%% succeeds),
#           'udp' (a datagram to %%PORT%% gets any answer), 'none'
# Returns true on success; on failure returns false and diags the reason.
sub run {
    my ($self, %o) = @_;
    croak 'write_config first' unless defined $self->{conf};
    croak 'already running' if $self->{running};

    unlink "$self->{prefix}/nginx.pid";
    my $log = "$self->{prefix}/startup.log";
    system($self->_nginx_cmd() . ' >' . _shell_quote($log) . ' 2>&1');
    my $rc = $? == -1 ? -1 : $? >> 8;
    if ($rc != 0) {
        Test::More::diag("nginx failed to start (exit $rc): " . _slurp($log));
        return 0;
    }

    # A wrapper such as valgrind starts nginx many times slower.
    my $deadline = time + ($ENV{NGINX_WRAPPER} ? 60 : 5);
    my $pid;
    while (time < $deadline) {
        $pid = $self->_read_pid;
        last if $pid && _alive($pid);
        sleep 0.02;
    }
    unless ($pid && _alive($pid)) {
        Test::More::diag('nginx did not write a pid file: ' . _slurp($log)
            . $self->error_log);
        return 0;
    }
    $self->{pid} = $pid;
    $self->{running} = 1;

    my $wait = $o{wait} // 'tcp';
    return 1 if $wait eq 'none';
    my $ok = $self->_wait_ready($wait, 5);
    Test::More::diag("nginx not ready on port " . $self->port . " ($wait)") unless $ok;
    return $ok;
}

sub _wait_ready {
    my ($self, $how, $timeout) = @_;
    my $deadline = time + $timeout;
    while (time < $deadline) {
        return 0 unless _alive($self->{pid});
        if ($how eq 'udp') {
            my $r = $self->udp_exchange(make_query(name => 'www.example.com', type => 'A'),
                timeout => 0.2);
            return 1 if defined $r;
        } else {
            my $s = IO::Socket::IP->new(PeerHost => '127.0.0.1', PeerPort => $self->port,
                Proto => 'tcp', Type => SOCK_STREAM, Timeout => 1);
            if ($s) { close $s; return 1 }
            sleep 0.05;
        }
    }
    return 0;
}

# Graceful stop (QUIT), bounded; TERM then KILL if the master does not exit.
sub stop {
    my ($self) = @_;
    return 1 unless $self->{running};
    $self->{running} = 0;
    my $pid = $self->{pid} or return 1;
    my @workers = $self->worker_pids;
    kill 'QUIT', $pid;
    for my $sig (qw(TERM KILL)) {
        my $deadline = time + ($sig eq 'TERM' ? 5 : 2);
        while (time < $deadline) {
            last unless _alive($pid);
            sleep 0.02;
        }
        last unless _alive($pid);
        Test::More::diag("nginx master $pid did not exit, sending $sig");
        kill $sig, $pid;
    }
    my $deadline = time + 2;
    while (time < $deadline && grep { _alive($_) } @workers) { sleep 0.02 }
    kill 'KILL', $_ for grep { _alive($_) } @workers;
    return !_alive($pid);
}

# HUP to the master; waits (bounded) until the new worker processes started.
# Returns true when they did.
sub reload {
    my ($self, %o) = @_;
    return 0 unless $self->{running} && _alive($self->{pid});
    my $before = () = $self->error_log =~ /start worker process /g;
    kill 'HUP', $self->{pid};
    return 1 if $o{nowait};
    my $deadline = time + ($o{timeout} // 5);
    while (time < $deadline) {
        my $now = () = $self->error_log =~ /start worker process /g;
        return 1 if $now >= $before + $self->{workers};
        sleep 0.02;
    }
    return 0;
}

# Number of "start worker process" lines in the error log so far.
sub worker_starts {
    my ($self) = @_;
    my $n = () = $self->error_log =~ /start worker process /g;
    return $n;
}

sub _slurp {
    my ($file) = @_;
    open my $fh, '<', $file or return '';
    local $/;
    my $s = <$fh>;
    return $s // '';
}

sub read_file { my ($self, $name) = @_; return _slurp("$self->{prefix}/$name") }

sub error_log { my ($self) = @_; return _slurp("$self->{prefix}/error.log") }

# Error log lines showing a crash: a worker killed by a signal or a panic.
sub crash_lines {
    my ($self) = @_;
    return grep { /exited on signal|panicked|\[alert\].*core dumped/ }
        split /\n/, $self->error_log;
}

sub DESTROY {
    my ($self) = @_;
    local ($?, $@, $!);
    $self->stop if $self->{running};
}

END {
    local ($?, $@, $!);
    for my $t (@INSTANCES) { $t->stop if $t && $t->{running} }
    unless ($ENV{TEST_NGINX_LEAVE}) {
        for my $t (@INSTANCES) {
            File::Path::remove_tree($t->{prefix}, { safe => 1 })
                if $t && $t->{prefix} && $t->{prefix} =~ m{/nginx-dns-test-\w+$};
        }
    }
}

###############################################################################
# Building queries

sub _type_num {
    my ($t) = @_;
    return $t if $t =~ /^\d+$/;
    return typebyname(uc $t);
}

sub _class_num {
    my ($c) = @_;
    return $c if $c =~ /^\d+$/;
    return classbyname(uc $c);
}

# Wire form of a name, keeping the letter case; '.' is the root.
sub encode_name {
    my ($name) = @_;
    $name =~ s/\.$//;
    return "\0" if $name eq '';
    my $out = '';
    for my $label (split /\./, $name, -1) {
        croak "empty label in '$name'" if $label eq '';
        $out .= pack('C', length $label) . $label;
    }
    return $out . "\0";
}

# An OPT pseudo-record: size, version, do, extrcode, flags, options => [[code, data], ...]
sub encode_opt {
    my (%e) = @_;
    my $size  = $e{size} // 1232;
    my $flags = ($e{flags} // 0) | ($e{do} ? 0x8000 : 0);
    my $ttl   = ((($e{extrcode} // 0) & 0xff) << 24)
              | ((($e{version} // 0) & 0xff) << 16) | ($flags & 0xffff);
    my $rdata = join '', map { pack('nn', $_->[0], length $_->[1]) . $_->[1] }
        @{$e{options} || []};
    return "\0" . pack('nnNn', 41, $size, $ttl, length $rdata) . $rdata;
}

# A query message. Options:
#   id, name, type, class, opcode, qr, aa, tc, rd, ra, ad, cd, z
#   questions => [[name, type, class], ...]   (default: one from name/type/class)
#   qdcount/ancount/nscount/arcount => override the header counts
#   edns => {size, version, do, options, ...}  (see encode_opt)
#   opts => number of OPT records to add (default 1 when edns given)
sub make_query {
    my (%o) = @_;
    my $id = $o{id} // 1 + int(rand(65535));
    my $flags = 0;
    $flags |= 0x8000 if $o{qr};
    $flags |= (($o{opcode} // 0) & 0xf) << 11;
    $flags |= 0x0400 if $o{aa};
    $flags |= 0x0200 if $o{tc};
    $flags |= 0x0100 if $o{rd};
    $flags |= 0x0080 if $o{ra};
    $flags |= 0x0040 if $o{z};
    $flags |= 0x0020 if $o{ad};
    $flags |= 0x0010 if $o{cd};
    $flags |= ($o{rcode} // 0) & 0xf;
    my @q = $o{questions}
        ? @{$o{questions}}
        : ([$o{name} // 'www.example.com', $o{type} // 'A', $o{class} // 'IN']);
    my $body = join '', map {
        encode_name($_->[0]) . pack('nn', _type_num($_->[1] // 'A'), _class_num($_->[2] // 'IN'))
    } @q;
    my $ar = '';
    my $arcount = 0;
    if ($o{edns}) {
        my $n = $o{opts} // 1;
        $ar = encode_opt(%{$o{edns}}) x $n;
        $arcount = $n;
    }
    return pack('n6',
        $id, $flags,
        $o{qdcount} // scalar(@q),
        $o{ancount} // 0,
        $o{nscount} // 0,
        $o{arcount} // $arcount) . $body . $ar;
}

###############################################################################
# Looking at responses

sub decode {
    my ($data) = @_;
    return undef unless defined $data;
    my $p = eval { Net::DNS::Packet->new(\$data) };
    return $p;
}

# Header fields of a raw message: id, qr, opcode, aa, tc, rd, ra, z, ad, cd,
# rcode (low 4 bits), qdcount, ancount, nscount, arcount.
sub header {
    my ($data) = @_;
    return undef unless defined $data && length $data >= 12;
    my ($id, $f, $qd, $an, $ns, $ar) = unpack 'n6', $data;
    return {
        id => $id, qr => ($f >> 15) & 1, opcode => ($f >> 11) & 0xf,
        aa => ($f >> 10) & 1, tc => ($f >> 9) & 1, rd => ($f >> 8) & 1,
        ra => ($f >> 7) & 1, z => ($f >> 6) & 1, ad => ($f >> 5) & 1,
        cd => ($f >> 4) & 1, rcode => $f & 0xf,
        qdcount => $qd, ancount => $an, nscount => $ns, arcount => $ar,
    };
}

# The RNAME of a Net::DNS SOA record in DNS form (lower case, no final dot);
# Net::DNS's rname() gives the mailbox form user@domain.
sub soa_rname {
    my ($soa) = @_;
    return undef unless $soa && $soa->{rname};
    my $n = lc $soa->{rname}->name;
    $n =~ s/\.$//;
    return $n;
}

# The first question of a raw message exactly as its bytes are:
# (wire name bytes, qtype, qclass), or () if it cannot be read.
sub raw_question {
    my ($data) = @_;
    return () unless defined $data && length $data > 12;
    my $off = 12;
    my $start = $off;
    for (1 .. 128) {
        return () if $off >= length $data;
        my $len = ord substr($data, $off, 1);
        return () if $len & 0xc0;
        $off += 1 + $len;
        last if $len == 0;
    }
    return () if $off + 4 > length $data;
    my ($type, $class) = unpack 'nn', substr($data, $off, 4);
    return (substr($data, $start, $off - $start), $type, $class);
}

# Skips a (possibly compressed) name at $off; returns the offset after it,
# or undef when the name runs past the end of the message.
sub _skip_name {
    my ($data, $off) = @_;
    for (1 .. 128) {
        return undef if $off >= length $data;
        my $len = ord substr($data, $off, 1);
        return $off + 2 if ($len & 0xc0) == 0xc0;
        return undef if $len & 0xc0;
        $off += 1 + $len;
        return $off if $len == 0;
    }
    return undef;
}

# The resource records of a raw message read straight from the wire:
# a list of {section => 'an'|'ns'|'ar', type, class, ttl, rdata}.
# Returns () when the message cannot be walked to its end.
sub raw_records {
    my ($data) = @_;
    my $h = header($data) or return ();
    my $off = 12;
    for (1 .. $h->{qdcount}) {
        $off = _skip_name($data, $off) // return ();
        $off += 4;
    }
    my @rr;
    for my $sec (['an', $h->{ancount}], ['ns', $h->{nscount}], ['ar', $h->{arcount}]) {
        for (1 .. $sec->[1]) {
            $off = _skip_name($data, $off) // return ();
            return () if $off + 10 > length $data;
            my ($type, $class, $ttl, $rdlen) = unpack 'nnNn', substr($data, $off, 10);
            $off += 10;
            return () if $off + $rdlen > length $data;
            push @rr, { section => $sec->[0], type => $type, class => $class,
                        ttl => $ttl, rdata => substr($data, $off, $rdlen) };
            $off += $rdlen;
        }
    }
    return @rr;
}

# The OPT records of a raw message.
sub raw_opts {
    my ($data) = @_;
    return grep { $_->{type} == 41 } raw_records($data);
}

# The first OPT record of a raw message as {size, extrcode, version, flags,
# do, options => {code => value}, codes => [codes in order]}, or undef.
sub raw_opt {
    my ($data) = @_;
    my ($opt) = raw_opts($data) or return undef;
    my $ttl = $opt->{ttl};
    my (%options, @codes);
    my $rdata = $opt->{rdata};
    my $off = 0;
    while ($off + 4 <= length $rdata) {
        my ($code, $len) = unpack 'nn', substr($rdata, $off, 4);
        $options{$code} = substr($rdata, $off + 4, $len);
        push @codes, $code;
        $off += 4 + $len;
    }
    return {
        size     => $opt->{class},
        extrcode => ($ttl >> 24) & 0xff,
        version  => ($ttl >> 16) & 0xff,
        flags    => $ttl & 0xffff,
        do       => ($ttl >> 15) & 1,
        options  => \%options,
        codes    => \@codes,
    };
}

###############################################################################
# Talking to the server

sub _peer {
    my ($self, %o) = @_;
    return ($o{addr} // '127.0.0.1', $o{port} // $self->port);
}

# Sends one datagram, returns the first datagram received within the timeout
# (default 2 s) or undef.
sub udp_exchange {
    my ($self, $data, %o) = @_;
    my ($addr, $port) = $self->_peer(%o);
    my $s = IO::Socket::IP->new(PeerHost => $addr, PeerPort => $port,
        Proto => 'udp', Type => SOCK_DGRAM) or croak "udp socket: $!";
    $s->send($data) // return undef;
    return udp_recv($s, $o{timeout} // 2);
}

# A connected UDP socket to the server.
sub udp_socket {
    my ($self, %o) = @_;
    my ($addr, $port) = $self->_peer(%o);
    my $s = IO::Socket::IP->new(PeerHost => $addr, PeerPort => $port,
        Proto => 'udp', Type => SOCK_DGRAM) or croak "udp socket: $!";
    return $s;
}

sub udp_recv {
    my ($s, $timeout) = @_;
    my $sel = IO::Select->new($s);
    my $deadline = time + $timeout;
    while (1) {
        my $left = $deadline - time;
        return undef if $left <= 0;
        next unless $sel->can_read($left);
        my $buf;
        return defined($s->recv($buf, 65535)) ? $buf : undef;
    }
}

sub tcp_connect {
    my ($self, %o) = @_;
    my ($addr, $port) = $self->_peer(%o);
    return IO::Socket::IP->new(PeerHost => $addr, PeerPort => $port,
        Proto => 'tcp', Type => SOCK_STREAM, Timeout => 2);
}

# Writes all of $data (bounded by a 2 s deadline). Returns true on success.
sub tcp_write {
    my ($s, $data) = @_;
    my $off = 0;
    my $sel = IO::Select->new($s);
    my $deadline = time + 2;
    while ($off < length $data) {
        return 0 if time > $deadline;
        next unless $sel->can_write(0.1);
        my $n = syswrite $s, $data, length($data) - $off, $off;
        unless (defined $n) {
            next if $! == EAGAIN || $! == EINTR || $! == EWOULDBLOCK;
            return 0;
        }
        $off += $n;
    }
    return 1;
}

sub frame { my ($m) = @_; return pack('n', length $m) . $m }

# Reads exactly $len bytes. Returns the bytes, or undef; then $$why is set to
# 'eof', 'timeout' or 'error'.
sub tcp_read_exact {
    my ($s, $len, $timeout, $why) = @_;
    my $buf = '';
    my $sel = IO::Select->new($s);
    my $deadline = time + $timeout;
    while (length $buf < $len) {
        my $left = $deadline - time;
        if ($left <= 0) { $$why = 'timeout' if $why; return undef }
        next unless $sel->can_read($left);
        my $n = sysread $s, $buf, $len - length $buf, length $buf;
        if (!defined $n) {
            next if $! == EAGAIN || $! == EINTR;
            $$why = 'error' if $why;
            return undef;
        }
        if ($n == 0) { $$why = 'eof' if $why; return undef }
    }
    return $buf;
}

# Reads one length-framed message (default timeout 2 s).
sub tcp_read_msg {
    my ($s, $timeout, $why) = @_;
    $timeout //= 2;
    my $deadline = time + $timeout;
    my $hdr = tcp_read_exact($s, 2, $timeout, $why) // return undef;
    my $len = unpack 'n', $hdr;
    return '' if $len == 0;
    my $left = $deadline - time;
    $left = 0.5 if $left < 0.5;
    return tcp_read_exact($s, $len, $left, $why);
}

# Waits until the peer closes the connection. Returns the seconds waited
# when EOF (or a reset) is seen, undef if still open after the timeout.
# Data the server sends meanwhile is returned through $$data.
sub tcp_wait_close {
    my ($s, $timeout, $data) = @_;
    my $start = time;
    my $sel = IO::Select->new($s);
    my $deadline = $start + $timeout;
    $$data = '' if $data;
    while (1) {
        my $left = $deadline - time;
        return undef if $left <= 0;
        next unless $sel->can_read($left);
        my $buf;
        my $n = sysread $s, $buf, 65535;
        if (!defined $n) {
            next if $! == EAGAIN || $! == EINTR;
            return time - $start;
        }
        return time - $start if $n == 0;
        $$data .= $buf if $data;
    }
}

# One framed query on a new connection; returns the raw answer or undef.
sub tcp_exchange {
    my ($self, $data, %o) = @_;
    my $s = $self->tcp_connect(%o) or return undef;
    tcp_write($s, frame($data)) or return undef;
    my $r = tcp_read_msg($s, $o{timeout} // 2);
    close $s;
    return $r;
}

# ask(proto => 'udp'|'tcp', port, addr, timeout, <make_query options>):
# sends a raw query, returns the decoded answer (scalar context) or
# (decoded answer, raw answer, raw query) in list context.
sub ask {
    my ($self, %o) = @_;
    my $proto = delete $o{proto} // 'udp';
    my %net = map { exists $o{$_} ? ($_ => delete $o{$_}) : () } qw(port addr timeout);
    my $q = make_query(%o);
    my $raw = $proto eq 'tcp'
        ? $self->tcp_exchange($q, %net)
        : $self->udp_exchange($q, %net);
    my $p = decode($raw);
    return wantarray ? ($p, $raw, $q) : $p;
}

# A Net::DNS::Resolver aimed at the server. Options: proto => 'udp'|'tcp',
# port, addr, igntc (default 1), dnssec, udppacketsize, timeout.
sub resolver {
    my ($self, %o) = @_;
    my ($addr, $port) = $self->_peer(%o);
    my $timeout = $o{timeout} // 2;
    my $res = Net::DNS::Resolver->new(
        nameservers => [$addr],
        port        => $port,
        recurse     => 0,
        retry       => 1,
        retrans     => $timeout,
        udp_timeout => $timeout,
        tcp_timeout => $timeout,
        igntc       => $o{igntc} // 1,
        usevc       => (($o{proto} // 'udp') eq 'tcp') ? 1 : 0,
        defnames    => 0,
        dnsrch      => 0,
        persistent_tcp => 0,
        persistent_udp => 0,
    );
    $res->dnssec(1) if $o{dnssec};
    $res->udppacketsize($o{udppacketsize}) if $o{udppacketsize};
    return $res;
}

# query(name, type, proto => 'udp'|'tcp', class => 'IN', <resolver options>)
# through Net::DNS::Resolver; returns the answer packet or undef.
sub query {
    my ($self, $name, $type, %o) = @_;
    my $res = $self->resolver(%o);
    return $res->send($name, $type // 'A', $o{class} // 'IN');
}

1;

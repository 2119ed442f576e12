package LoadTest;

# Helpers for the load and health tests: bursts of UDP queries with per-query
# latency, the status endpoint (Prometheus text and JSON), load files and
# bounded waits.
#
#   my @r = LoadTest::burst($t, n => 200, timeout => 1.5);
#   my ($answered, $median) = LoadTest::summary(@r);
#   my $doc = LoadTest::status_json($port);        # decoded JSON or undef
#   my $svc = LoadTest::service($doc, 'www.example.com');
#   LoadTest::write_load($path, 'drain');
#   my $took = LoadTest::wait_for(1.5, sub { ... });   # seconds, or undef

use strict;
use warnings;

use Carp qw(croak);
use HTTP::Tiny;
use IO::Select;
use IO::Socket::IP;
use JSON::PP ();
use Socket qw(SOCK_DGRAM);
use Time::HiRes qw(time sleep);

use DnsTest;

# burst($t, n => N, timeout => s, name, type, port, spacing => s,
#       targets => [[port, n, name], ...], batch => k, gap => s):
# sends queries at once, each from its own UDP socket (on the session path
# each is its own nginx session and access log line) with a distinct ID,
# and collects the answers until all arrived or the timeout passed. With
# targets, n queries go to each [port, n, name] (interleaved). Returns a
# list of { port, answered => 0|1, latency => s, rcode => n, raw => bytes }.
sub burst {
    my ($t, %o) = @_;
    my $timeout = $o{timeout} // 1.5;
    my @targets = $o{targets}
        ? @{$o{targets}}
        : ([$o{port} // $t->port, $o{n} // 20, $o{name}]);
    my @plan;
    my $more = 1;
    for (my $i = 0; $more; $i++) {
        $more = 0;
        for my $tg (@targets) {
            next unless $i < $tg->[1];
            push @plan, [$tg->[0], $tg->[2] // $o{name} // 'www.example.com'];
            $more = 1;
        }
    }
    my (@q, %by_fd);
    my $sel = IO::Select->new;
    my $i = 0;
    # Sockets first: creating them is the slow part of the client.
    for my $p (@plan) {
        my $s = IO::Socket::IP->new(PeerHost => '127.0.0.1', PeerPort => $p->[0],
            Proto => 'udp', Type => SOCK_DGRAM) or croak "udp socket: $!";
        my $id = (($o{id_base} // 1000) + $i++) & 0xffff;
        my $r = { sock => $s, port => $p->[0], id => $id, answered => 0,
                  latency => undef, rcode => undef,
                  msg => DnsTest::make_query(id => $id, name => $p->[1], type => $o{type} // 'A') };
        push @q, $r;
        $by_fd{fileno $s} = $r;
        $sel->add($s);
    }
    my $left = @q;
    my $collect = sub {
        my ($wait) = @_;
        for my $s ($sel->can_read($wait)) {
            my $r = $by_fd{fileno $s};
            my $buf;
            next unless defined $s->recv($buf, 65535);
            my $h = DnsTest::header($buf);
            next unless $h && $h->{qr} && $h->{id} == $r->{id};
            next if $r->{answered};
            $r->{answered} = 1;
            $r->{latency} = time - $r->{sent};
            $r->{rcode} = $h->{rcode};
            $r->{raw} = $buf;
            $sel->remove($s);
            $left--;
        }
    };
    # Send, in batches of $o{batch} (default: all) with $o{gap} seconds of
    # receiving between batches; answers are collected while sending.
    my $batch = $o{batch} || scalar @q;
    my $k = 0;
    for my $r (@q) {
        $r->{sent} = time;
        $r->{sock}->send($r->{msg});
        $collect->(0);
        if (++$k % $batch == 0 && $k < @q && $o{gap}) {
            my $until = time + $o{gap};
            while ($left > 0 && (my $w = $until - time) > 0) { $collect->($w) }
        }
    }
    my $deadline = time + $timeout;
    while ($left > 0) {
        my $wait = $deadline - time;
        last if $wait <= 0;
        $collect->($wait);
    }
    for my $r (@q) { close delete $r->{sock} }
    return @q;
}

# (number answered, median latency of the answered ones, max latency).
sub summary {
    my (@r) = @_;
    my @lat = sort { $a <=> $b } map { $_->{latency} } grep { $_->{answered} } @r;
    return (0, undef, undef) unless @lat;
    my $median = @lat % 2 ? $lat[$#lat / 2] : ($lat[@lat / 2 - 1] + $lat[@lat / 2]) / 2;
    return (scalar @lat, $median, $lat[-1]);
}

sub ms { my ($s) = @_; return defined $s ? sprintf('%.1f ms', $s * 1000) : 'n/a' }

# One query; true when answered within $timeout.
sub answered_once {
    my ($t, $timeout, %o) = @_;
    my ($r) = burst($t, n => 1, timeout => $timeout // 0.3, %o);
    return $r->{answered};
}

# wait_for($timeout, $code, $step): calls $code every $step (default 0.05)
# seconds until it returns true; returns the seconds it took, or undef.
sub wait_for {
    my ($timeout, $code, $step) = @_;
    my $start = time;
    my $deadline = $start + $timeout;
    while (1) {
        return time - $start if $code->();
        return undef if time >= $deadline;
        sleep($step // 0.05);
    }
}

# Writes a load file atomically (a temporary file renamed over it).
sub write_load {
    my ($path, $content) = @_;
    open my $fh, '>', "$path.tmp" or croak "$path.tmp: $!";
    print {$fh} $content;
    close $fh or croak "$path.tmp: $!";
    rename "$path.tmp", $path or croak "rename $path: $!";
}

my $HTTP = HTTP::Tiny->new(timeout => 3, keep_alive => 0);

# The http block serving the status endpoint on 127.0.0.1:%%<port>%%/status.
sub status_http {
    my ($port) = @_;
    return "http {\n    access_log off;\n    server {\n        listen 127.0.0.1:%%$port%%;\n"
         . "        location = /status { dns_service_status; }\n    }\n}\n";
}

# GET the status endpoint; returns the HTTP::Tiny response. Options: path,
# method, headers => { name => value }.
sub status_get {
    my ($port, $query, %o) = @_;
    my $url = "http://127.0.0.1:$port" . ($o{path} // '/status') . ($query // '');
    return $HTTP->request($o{method} // 'GET', $url, { headers => $o{headers} // {} });
}

# The status as decoded JSON, or undef.
sub status_json {
    my ($port) = @_;
    my $r = status_get($port, '?format=json');
    return undef unless $r->{success};
    return eval { JSON::PP::decode_json($r->{content}) };
}

# The service named $name in a decoded status document.
sub service {
    my ($doc, $name) = @_;
    return undef unless $doc && ref $doc->{services} eq 'ARRAY';
    my ($s) = grep { ($_->{name} // '') eq $name } @{$doc->{services}};
    return $s;
}

# The state of service $name ('' when it cannot be read).
sub state_of {
    my ($port, $name) = @_;
    my $s = service(status_json($port), $name // 'www.example.com');
    return $s ? $s->{state} // '' : '';
}

# Prometheus text → { 'metric{labels}' => value } (labels as written).
sub prometheus {
    my ($text) = @_;
    my %m;
    for my $line (split /\n/, $text // '') {
        next if $line =~ /^#/ || $line !~ /\S/;
        $m{$1} = $2 if $line =~ /^(\S+)\s+(\S+)$/;
    }
    return \%m;
}

# Resident memory of a process in KiB (undef when it cannot be read).
sub rss_kib {
    my ($pid) = @_;
    open my $fh, '<', "/proc/$pid/status" or return undef;
    while (<$fh>) { return $1 if /^VmRSS:\s+(\d+)\s+kB/ }
    return undef;
}

# Lines of the file $path appended after byte offset $from.
sub lines_after {
    my ($path, $from) = @_;
    open my $fh, '<', $path or return ();
    seek $fh, $from // 0, 0;
    local $/;
    my $s = <$fh> // '';
    return split /\n/, $s;
}

sub file_size { my ($path) = @_; return (-s $path) // 0 }

1;

package AddrTest;

# Helpers for the tests of addresses that change while nginx runs (address
# file, RFC 2136 UPDATE, glue pushed to a parent): what every worker
# answers, nsupdate runs, TSIG keys.
#
#   my @seen = AddrTest::addresses($t, 'A');          # one query's answer
#   my $ok = AddrTest::everywhere($t, 'A', '192.0.2.7');   # all workers agree
#   my ($rc, $out) = AddrTest::nsupdate($t, key => $file, commands => [...]);

use strict;
use warnings;

use IO::Select;
use IO::Socket::IP;
use Socket qw(SOCK_DGRAM);
use Time::HiRes qw(time sleep);

use DnsTest;
use LoadTest;

# The address of an A or AAAA record, IPv6 in its short form.
sub addr { my ($rr) = @_; return $rr->type eq 'AAAA' ? $rr->address_short : $rr->address }

# The addresses of one answer to an apex query (sorted), or undef when no
# answer came.
sub addresses {
    my ($t, $type, %o) = @_;
    my $p = $t->ask(name => $o{name} // 'www.example.com', type => $type // 'A',
        port => $o{port} // $t->port, proto => $o{proto} // 'udp', timeout => 1);
    return undef unless $p;
    return join ' ', sort map { addr($_) } grep { $_->type eq ($type // 'A') } $p->answer;
}

# Sends $n queries, each from a fresh UDP socket (a new source port: with
# `reuseport` the kernel spreads them over every worker's socket), and
# returns the answers' address lists (sorted, space-separated; '' for none,
# 'none' when nothing came back).
sub spread {
    my ($t, $type, %o) = @_;
    my $n = $o{n} // 40;
    my @socks;
    for my $i (1 .. $n) {
        my $s = IO::Socket::IP->new(PeerHost => '127.0.0.1', PeerPort => $o{port} // $t->port,
            Proto => 'udp', Type => SOCK_DGRAM) or next;
        $s->send(DnsTest::make_query(id => $i, name => $o{name} // 'www.example.com',
            type => $type // 'A'));
        push @socks, $s;
    }
    my @out;
    for my $s (@socks) {
        my $raw = DnsTest::udp_recv($s, 1);
        my $p = DnsTest::decode($raw);
        push @out, $p
            ? join(' ', sort map { addr($_) } grep { $_->type eq ($type // 'A') } $p->answer)
            : 'none';
    }
    return @out;
}

# Whether $n queries spread over the workers all answer exactly $want
# (space-separated, sorted), within $timeout seconds (default 1). Returns
# the seconds it took, or undef.
sub everywhere {
    my ($t, $type, $want, %o) = @_;
    return LoadTest::wait_for($o{timeout} // 1, sub {
        my @seen = spread($t, $type, %o);
        !grep { $_ ne $want } @seen;
    }, 0.05);
}

# A TSIG key file as tsig-keygen writes it, at $path; returns $path.
sub keygen {
    my ($path, $name, %o) = @_;
    my $out = `tsig-keygen -a @{[ $o{algorithm} // 'hmac-sha256' ]} $name 2>&1`;
    die "tsig-keygen: $out" if $?;
    open my $fh, '>', $path or die "$path: $!";
    print {$fh} $out;
    close $fh;
    return $path;
}

# Runs nsupdate with `commands` (a list of lines; "server" and "send" are
# added), key => file (omit for unsigned), tcp => 1 for -v. Returns (exit
# code, combined output).
sub nsupdate {
    my ($t, %o) = @_;
    my $port = $o{port} // $t->port;
    my $script = "$o{dir}/nsupdate.in";
    open my $fh, '>', $script or die "$script: $!";
    print {$fh} "server 127.0.0.1 $port\n";
    print {$fh} "$_\n" for @{$o{commands}};
    print {$fh} "send\n";
    close $fh;
    my @args = ('-t', 3);
    push @args, '-k', $o{key} if $o{key};
    push @args, '-v' if $o{tcp};
    my $out = `timeout 15 nsupdate @args $script 2>&1`;
    return ($? >> 8, $out);
}

# The "addresses" object of a service in the JSON status.
sub status {
    my ($port, $name) = @_;
    my $s = LoadTest::service(LoadTest::status_json($port), $name // 'www.example.com');
    return $s ? $s->{addresses} : undef;
}

# Number of lines in the error log matching $re.
sub log_count {
    my ($t, $re) = @_;
    return scalar grep { /$re/ } split /\n/, $t->error_log;
}

1;

package TestApp;

# Runs t/app.py, a small controllable HTTP application, for the load and
# health tests, and holds slow requests open through nginx.
#
#   my $app = TestApp->start(ready => 0);          # 503 on /health until ready
#   $app->port;                                     # its 127.0.0.1 port
#   $app->control(ready => 1, load => '0.9');       # POST /control?ready=1&load=0.9
#   my @pids = TestApp::hold("http://127.0.0.1:$p/slow?ms=3000", 4);
#   TestApp::wait_pids(5, @pids);
#   $app->stop;                                     # also done at END
#
# The application exits by itself after its lifetime (default 120 s) and
# when the test process goes away.

use strict;
use warnings;

use Carp qw(croak);
use Cwd qw(abs_path);
use File::Basename qw(dirname);
use File::Spec;
use HTTP::Tiny;
use IO::Select;
use POSIX qw(WNOHANG _exit);
use Time::HiRes qw(time sleep);

my $SCRIPT = abs_path(File::Spec->catfile(dirname(abs_path(__FILE__)), '..', 'app.py'));
my @APPS;
my %HOLDERS;

sub script { return $SCRIPT }

# start(ready => 0|1, health => 'ok'|'fail', lifetime => seconds)
sub start {
    my ($class, %o) = @_;
    my @cmd = ('python3', $SCRIPT,
        '--lifetime', $o{lifetime} // 120,
        '--ready',    $o{ready} // 1,
        '--health',   $o{health} // 'ok');
    my $pid = open(my $out, '-|', @cmd) or croak "cannot run @cmd: $!";
    my $self = bless { pid => $pid, out => $out }, $class;
    push @APPS, $self;

    my $sel = IO::Select->new($out);
    my $deadline = time + 10;
    my $line = '';
    while (time < $deadline && $line !~ /\n/) {
        next unless $sel->can_read($deadline - time);
        my $n = sysread $out, $line, 256, length $line;
        last unless $n;
    }
    unless ($line =~ /^PORT (\d+)$/m) {
        $self->stop;
        croak "test application did not start: '$line'";
    }
    $self->{port} = $1;
    return $self;
}

sub port { return $_[0]{port} }
sub pid  { return $_[0]{pid} }
sub url  { my ($self, $path) = @_; return "http://127.0.0.1:$self->{port}$path" }

sub _http { return HTTP::Tiny->new(timeout => 3, keep_alive => 0) }

# control(key => value, ...): sets the application's state; returns the
# state line it reports, or undef when the request failed.
sub control {
    my ($self, %kv) = @_;
    my $q = join '&', map { "$_=$kv{$_}" } sort keys %kv;
    my $r = _http()->request('POST', $self->url("/control?$q"));
    return $r->{success} ? $r->{content} : undef;
}

# The application's counters: { health_requests, health_failed, active_slow }.
sub stats {
    my ($self) = @_;
    my $r = _http()->get($self->url('/stats'));
    return {} unless $r->{success};
    return { map { /^(\w+) (\d+)$/ ? ($1 => $2) : () } split /\n/, $r->{content} };
}

sub stop {
    my ($self) = @_;
    my $pid = delete $self->{pid} or return;
    kill 'TERM', $pid;
    my $deadline = time + 3;
    while (time < $deadline) {
        last if waitpid($pid, WNOHANG) != 0;
        sleep 0.02;
    }
    if (kill 0, $pid) {
        kill 'KILL', $pid;
        waitpid($pid, 0);
    }
    close $self->{out} if $self->{out};
    delete $self->{out};
}

# hold($url, $n): $n child processes each GET $url (a slow request), so
# that $n connections stay active until the application answers. Returns
# their pids; each child exits 0 on a 2xx answer.
sub hold {
    my ($url, $n, %o) = @_;
    my $timeout = $o{timeout} // 15;
    my @pids;
    for (1 .. $n) {
        my $pid = fork;
        croak "fork: $!" unless defined $pid;
        if ($pid == 0) {
            my $r = HTTP::Tiny->new(timeout => $timeout, keep_alive => 0)->get($url);
            _exit($r->{success} ? 0 : 1);
        }
        $HOLDERS{$pid} = 1;
        push @pids, $pid;
    }
    return @pids;
}

# wait_pids($timeout, @pids): waits (bounded) for the children; returns the
# number that exited with status 0. Children still running are killed.
sub wait_pids {
    my ($timeout, @pids) = @_;
    my %left = map { $_ => 1 } @pids;
    my $ok = 0;
    my $deadline = time + $timeout;
    while (%left && time < $deadline) {
        for my $pid (keys %left) {
            my $r = waitpid($pid, WNOHANG);
            next if $r == 0;
            $ok++ if $r == $pid && $? == 0;
            delete $left{$pid};
            delete $HOLDERS{$pid};
        }
        sleep 0.02 if %left;
    }
    for my $pid (keys %left) {
        kill 'KILL', $pid;
        waitpid($pid, 0);
        delete $HOLDERS{$pid};
    }
    return $ok;
}

END {
    local ($?, $@, $!);
    for my $pid (keys %HOLDERS) {
        kill 'KILL', $pid;
        waitpid($pid, 0);
    }
    $_->stop for grep { $_ } @APPS;
}

1;

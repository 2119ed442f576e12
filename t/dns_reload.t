#!/usr/bin/perl

# Reloads under load: queries keep flowing while nginx is reloaded three
# times with a new dns_ttl each time; the new TTL is served afterwards and
# nothing crashes.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";

use Test::More;
use Time::HiRes qw(sleep time);
use DnsTest;

my $t = DnsTest->new(ports => 1);
sub conf_ttl { return DnsTest::conf(server => "dns_ttl $_[0]s;") }
$t->write_config(conf_ttl(10));
$t->run or BAIL_OUT('nginx did not start: ' . $t->error_log);

my $master = $t->master_pid;
my $starts = $t->worker_starts;

my %reload_at = (60 => 20, 140 => 30, 220 => 40);
my %valid_ttl = map { $_ => 1 } 10, 20, 30, 40;

my $s = $t->udp_socket;
my ($sent, $answered, $lost, $bad_ttl, $hups) = (0, 0, 0, 0, 0);
my (%seen_ttl, @lost_at);
my $deadline = time + 20;
my $id = 0;

for my $i (1 .. 300) {
    last if time > $deadline;

    if (my $ttl = $reload_at{$i}) {
        $t->write_config(conf_ttl($ttl));
        $hups++ if $t->reload(nowait => 1);
    }

    $id = ($id + 1) & 0xffff;
    $s->send(DnsTest::make_query(id => $id, name => 'www.example.com', type => 'A'));
    $sent++;

    my $got;
    my $until = time + 0.25;
    while (time < $until) {
        my $r = DnsTest::udp_recv($s, $until - time) // last;
        my $h = DnsTest::header($r) or next;
        next unless $h->{id} == $id;     # a late answer to an earlier query
        $got = $r;
        last;
    }
    if (!defined $got) {
        $lost++;
        push @lost_at, $i;
    } else {
        $answered++;
        my $p = DnsTest::decode($got);
        my ($a) = grep { $_->type eq 'A' } ($p ? $p->answer : ());
        if ($a) {
            $seen_ttl{$a->ttl}++;
            $bad_ttl++ unless $valid_ttl{$a->ttl};
        } else {
            $bad_ttl++;
        }
    }
    sleep 0.01;
}

diag("reload under load: sent $sent, answered $answered, lost $lost"
    . (@lost_at ? " (queries @lost_at)" : '')
    . '; TTLs seen: ' . join(' ', map { "$_ x$seen_ttl{$_}" } sort { $a <=> $b } keys %seen_ttl));

is($sent, 300, 'all 300 queries sent within the time bound');
is($hups, 3, 'three reloads signalled');
ok($lost <= 15, 'at most 15 of 300 queries lost during reloads');
is($bad_ttl, 0, 'every answer is a well-formed A with a configured TTL');
ok($seen_ttl{10}, 'TTL 10 served before the reloads');

# let the reloads settle: three new generations of workers

my $settled = 0;
my $until = time + 10;
while (time < $until) {
    if ($t->worker_starts >= $starts + 3) { $settled = 1; last }
    sleep 0.05;
}
ok($settled, 'three new worker generations started');

# old workers go away
$until = time + 10;
while (time < $until && scalar($t->worker_pids) > 1) { sleep 0.05 }
is(scalar($t->worker_pids), 1, 'one worker process left');

{
    my ($ok, @ttls) = (0);
    for my $i (1 .. 20) {
        my $p = $t->ask(name => 'www.example.com', type => 'A', timeout => 1);
        my ($a) = grep { $_->type eq 'A' } ($p ? $p->answer : ());
        push @ttls, $a ? $a->ttl : 'none';
        $ok++ if $a && $a->ttl == 40;
    }
    is($ok, 20, 'after the reloads: 20 of 20 queries answered with the new TTL 40')
        or diag("TTLs: @ttls");

    my $p = $t->ask(proto => 'tcp', name => 'www.example.com', type => 'A');
    my ($a) = grep { $_->type eq 'A' } ($p ? $p->answer : ());
    is($a && $a->ttl, 40, 'after the reloads: TCP serves TTL 40');
}

# a reload with a bad configuration keeps the old one serving

{
    $t->write_config(DnsTest::conf(server => 'dns_ttl 0;'));
    ok(!$t->reload(timeout => 1.5), 'reload with a bad config starts no new workers');
    like($t->error_log, qr/"dns_ttl"/, 'bad reload logged with the directive name');
    my $p = $t->ask(name => 'www.example.com', type => 'A');
    my ($a) = grep { $_->type eq 'A' } ($p ? $p->answer : ());
    is($a && $a->ttl, 40, 'bad reload: the previous configuration still serves');
}

is($t->pid_from_file, $master, "same master process in the pid file");
ok($t->master_alive, 'master alive');
my @crash = $t->crash_lines;
is(join("\n", @crash), '', 'no "exited on signal" or panic in error log');

$t->stop;
done_testing();

#!/usr/bin/perl

# The default for "no answer" is a fast REFUSED (dns_silence refuse): the
# resolver lab measured that silence costs BIND and PowerDNS clients up to
# 0.8 s and 1.5 s per resolution, and keeps resolvers away longer after a
# drain, while REFUSED moves them at once (docs/lab.md).

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";

use Test::More;
use Time::HiRes qw(sleep time);
use DnsTest;

my $t = DnsTest->new(ports => 1);
$t->write_config(DnsTest::conf(server => 'dns_load_file %%PREFIX%%/app.load;'));
$t->run or BAIL_OUT('nginx did not start: ' . $t->error_log);

sub ask {
    my (%o) = @_;
    my $start = time;
    my $reply = $o{tcp}
        ? $t->tcp_exchange(DnsTest::make_query(), timeout => 1)
        : $t->udp_exchange(DnsTest::make_query(), timeout => 1);
    return (DnsTest::decode($reply), time - $start);
}

my ($p) = ask();
is($p && $p->header->rcode, 'NOERROR', 'ready: answered');
is($p && scalar($p->answer), 1, 'ready: one address');

open my $fh, '>', $t->prefix . '/app.load' or die;
print $fh "drain\n";
close $fh;
sleep 1;

for my $tcp (0, 1) {
    my $how = $tcp ? 'TCP' : 'UDP';
    my ($r, $took) = ask(tcp => $tcp);
    is($r && $r->header->rcode, 'REFUSED', "draining, $how: REFUSED by default");
    is($r && scalar($r->answer), 0, "draining, $how: no records");
    ok($r && !$r->header->aa, "draining, $how: not authoritative");
    ok($took < 0.1, sprintf("draining, $how: at once (%.1f ms)", $took * 1000));
}
done_testing();

#!/usr/bin/perl

# dns_service_status picks its format: ?format=html|json|prometheus, else
# HTML when the Accept header prefers text/html (a browser), else Prometheus
# text (scrapers, curl). The HTML page is one self-contained document: it
# reloads itself, has no script and no external assets, shows each service
# with its state and the reason, the load file's reading and age, the
# counters, a chart of the last seconds and the state changes, and escapes
# what it shows. The history and the changes survive a reload.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";

use Encode qw(decode_utf8);
use Test::More;
use Time::HiRes qw(sleep);
use DnsTest;
use LoadTest;

my $t = DnsTest->new(ports => 2);
my $prefix = $t->prefix;
my $LOAD = "$prefix/app.load";
LoadTest::write_load($LOAD, "0.2\n");

$t->write_config(DnsTest::conf(
    main => LoadTest::status_http('PORT2'),
    server => "dns_load_file %%PREFIX%%/app.load;",
));
$t->run or BAIL_OUT('nginx did not start: ' . $t->error_log);
my $SP = $t->port(2);

sub get {
    my ($query, %headers) = @_;
    return LoadTest::status_get($SP, $query, headers => \%headers);
}

sub page { return decode_utf8(get('?format=html')->{content} // '') }

my $FIREFOX = 'text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8';
my $PROM = 'application/openmetrics-text;version=1.0.0;q=0.5,text/plain;version=0.0.4;q=0.4,*/*;q=0.1';

###############################################################################
# The format

my @cases = (
    ['', {}, qr{^text/plain; version=0\.0\.4}, 'no Accept: Prometheus text'],
    ['', { Accept => '*/*' }, qr{^text/plain}, 'Accept */* (curl): Prometheus text'],
    ['', { Accept => $PROM }, qr{^text/plain}, 'a Prometheus scraper\'s Accept: Prometheus text'],
    ['', { Accept => $FIREFOX }, qr{^text/html; charset=utf-8$}, 'a browser\'s Accept: HTML'],
    ['?format=html', {}, qr{^text/html}, '?format=html: HTML'],
    ['?format=json', { Accept => $FIREFOX }, qr{^application/json$}, '?format=json wins over Accept'],
    ['?format=prometheus', { Accept => $FIREFOX }, qr{^text/plain}, '?format=prometheus wins over Accept'],
);
for my $c (@cases) {
    my ($query, $headers, $type, $name) = @$c;
    my $r = get($query, %$headers);
    is($r->{status}, 200, "$name: 200");
    like($r->{headers}{'content-type'} // '', $type, $name);
    is($r->{headers}{vary} // '', 'Accept', "$name: Vary: Accept");
}
is(get('?format=html')->{headers}{'cache-control'} // '', 'no-store', 'the page is never cached');

###############################################################################
# The page

# Queries to count, and time for the tick to record a few seconds.
for (1 .. 3) {
    my (undef, $raw) = $t->ask(name => 'www.example.com', type => 'A');
}
sleep 2.5;

my $page = page();
like($page, qr{^<!DOCTYPE html>}, 'an HTML document');
like($page, qr{<meta http-equiv="refresh" content="5">}, 'it reloads itself every 5 s');
unlike($page, qr{<script|<link|<img|<iframe|\bsrc=|url\(}i, 'no script and no external assets');
like($page, qr{<section class="service" id="service-www\.example\.com">}, 'a section for the service');
like($page, qr{<span class="state state-ready"[^>]*>ready</span>}, 'state ready');
like($page, qr{Because of <span class="cause">load file: load 0\.200</span>}, 'the reason: the load file\'s reading');
like($page, qr{<tr class="source-file"><td>load file</td><td>load 0\.200</td><td class="n">[0-9.]+ s</td>},
    'the load file\'s last reading and its age');
like($page, qr{<th>queries over UDP</th><td class="n">3</td>}, 'the counters');
like($page, qr{<svg class="chart".*?<path }s, 'a chart with lines');
like($page, qr{<tr class="change">.*?<span class="from">start</span> \x{2192} <span class="to">ready</span>}s,
    'the first evaluation is the first entry of the state changes');
my ($history) = $page =~ m{<title>ready</title>}g;
ok($history, 'the chart shows the state band');

# Drain: the page says so, with the change and its cause.
LoadTest::write_load($LOAD, "drain\n");
ok(defined LoadTest::wait_for(2, sub { LoadTest::state_of($SP) eq 'draining' }), 'draining after the load file says drain');
$page = page();
like($page, qr{<span class="state state-draining"[^>]*>draining</span>}, 'state draining');
like($page, qr{Because of <span class="cause">load file: drain</span>, since \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC},
    'the reason and since when');
like($page, qr{<tr class="change"><td>[^<]+</td><td class="n">[^<]+</td><td><span class="from">ready</span> \x{2192} <span class="to">draining</span></td><td>load file: drain</td>},
    'the change ready → draining, because of the load file');

###############################################################################
# A reload keeps the history and the changes

my $changes_before = () = $page =~ /<tr class="change">/g;
$t->reload or BAIL_OUT('reload failed: ' . $t->error_log);
sleep 1.5;
$page = page();
my $changes_after = () = $page =~ /<tr class="change">/g;
is($changes_after, $changes_before, 'the state changes survive a reload (and the reload adds none)');
my $bands = () = $page =~ /class="band"/g;
ok($bands >= 2, "the chart still shows the seconds before the reload ($bands state bands)");

$t->stop;
unlike($t->error_log, qr/\[(alert|crit|emerg)\]|panicked/, 'no alerts or panics in the error log');

done_testing();

#!/usr/bin/perl

# The status page in a real browser (headless Chromium): the plain status
# URL, asked for by a browser, is the HTML page; it shows the service ready;
# after the load file says drain it shows the service draining and the
# change ready → draining; a screenshot of it is a real picture.
#
# Needs Debian's chromium (scripts/setup installs it); skipped without it
# unless CI is set. STATUS_SCREENSHOT=file.png keeps the screenshot.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";

use Encode qw(decode_utf8);
use File::Copy qw(copy);
use File::Temp qw(tempdir);
use Test::More;
use Time::HiRes qw(sleep);
use DnsTest;
use LoadTest;

my ($CHROMIUM) = grep { -x } map { "$_/chromium" } split /:/, $ENV{PATH} // '';
DnsTest::skip_all_unless_ci('chromium not found (apt-get install chromium)') unless $CHROMIUM;

my $t = DnsTest->new(ports => 2);
my $prefix = $t->prefix;
my $LOAD = "$prefix/app.load";
LoadTest::write_load($LOAD, "0.1\n");
$t->write_config(DnsTest::conf(
    main => LoadTest::status_http('PORT2'),
    server => "dns_load_file %%PREFIX%%/app.load;",
));
$t->run or BAIL_OUT('nginx did not start: ' . $t->error_log);
my $SP = $t->port(2);
my $URL = "http://127.0.0.1:$SP/status";

# One headless Chromium run; returns (exit code, stdout). Its profile lives
# in a fresh directory; it makes no connection but to nginx.
sub chromium {
    my (@args) = @_;
    my $profile = tempdir('chromium-XXXXXX', TMPDIR => 1, CLEANUP => 1);
    my @cmd = ('timeout', '90', $CHROMIUM, '--headless', '--no-sandbox', '--disable-gpu',
        '--disable-dev-shm-usage', '--disable-background-networking', '--disable-component-update',
        '--disable-sync', '--no-first-run', '--hide-scrollbars', "--user-data-dir=$profile", @args);
    my $cmd = join ' ', map { "'$_'" } @cmd;
    my $out = `$cmd 2>$profile/stderr`;
    my $rc = $? >> 8;
    if ($rc != 0) {
        open my $fh, '<', "$profile/stderr";
        diag("chromium exited with $rc: " . join '', grep { defined } <$fh>);
    }
    return ($rc, decode_utf8($out // ''));
}

my ($rc, $dom) = chromium('--dump-dom', $URL);
is($rc, 0, 'chromium loaded the status URL');
like($dom, qr{<title>DNS services</title>}, 'a browser asking for the status URL gets the HTML page');
like($dom, qr{<section class="service" id="service-www\.example\.com">}, 'the service is on the page');
like($dom, qr{<span class="state state-ready"[^>]*>ready</span>}, 'it shows the state ready');
like($dom, qr{<svg class="chart"}, 'with its chart');

LoadTest::write_load($LOAD, "drain\n");
ok(defined LoadTest::wait_for(2, sub { LoadTest::state_of($SP) eq 'draining' }), 'the service drains');
($rc, $dom) = chromium('--dump-dom', $URL);
is($rc, 0, 'chromium loaded the page again');
like($dom, qr{<span class="state state-draining"[^>]*>draining</span>}, 'it shows the state draining');
like($dom, qr{<span class="cause">load file: drain</span>}, 'because the load file says drain');
like($dom, qr{<tr class="change">.*?<span class="from">ready</span> \x{2192} <span class="to">draining</span></td><td>load file: drain</td>}s,
    'and the change ready → draining among the state changes');

my $png = "$prefix/status.png";
($rc) = chromium("--screenshot=$png", '--window-size=1200,900', $URL);
is($rc, 0, 'chromium took a screenshot');
my $head = '';
if (open my $fh, '<:raw', $png) { read $fh, $head, 8 }
is($head, "\x89PNG\r\n\x1a\n", 'the screenshot is a PNG');
ok((-s $png // 0) > 20_000, sprintf('of a rendered page (%d bytes)', -s $png // 0));
copy($png, $ENV{STATUS_SCREENSHOT}) if $ENV{STATUS_SCREENSHOT};

$t->stop;
unlike($t->error_log, qr/\[(alert|crit|emerg)\]|panicked/, 'no alerts or panics in the error log');

done_testing();

#!/usr/bin/perl

# Configuration checks of the load and health directives: every bad value,
# a duplicate, and a load directive in a server without dns_service make
# "nginx -t" fail with one [emerg] line naming the directive in quotes and
# nginx.conf:LINE; good values pass.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";

use Test::More;
use DnsTest;

my $t = DnsTest->new(ports => 2);
my $file = $t->prefix . '/nginx.conf';

# A server block without dns_service holding $directive.
sub plain_server {
    my ($directive) = @_;
    return "    server {\n        listen 127.0.0.1:%%PORT2%%;\n        return \"x\";\n"
         . "        $directive\n    }\n";
}

# [description, directive named, conf() options, regex of the offending line,
#  optional regex of the reason given]
my @bad = (
    ['probe with an ftp URL', 'dns_load_probe',
        { server => 'dns_load_probe ftp://x;' }, qr/dns_load_probe ftp:/, qr/not a probe URL/],
    ['probe to a host name', 'dns_load_probe',
        { server => 'dns_load_probe http://localhost/;' }, qr/dns_load_probe http:\/\/localhost/, qr/not a probe URL/],
    ['probe timeout longer than its interval', 'dns_load_probe',
        { server => 'dns_load_probe tcp://127.0.0.1:1 timeout=2s interval=1s;' }, qr/timeout=2s/,
        qr/timeout must be shorter than its interval/],
    ['probe without a port', 'dns_load_probe',
        { server => 'dns_load_probe tcp://127.0.0.1;' }, qr/dns_load_probe tcp:\/\/127\.0\.0\.1;/],
    ['probe rise=0', 'dns_load_probe',
        { server => 'dns_load_probe tcp://127.0.0.1:80 rise=0;' }, qr/rise=0/],
    ['probe with an unknown parameter', 'dns_load_probe',
        { server => 'dns_load_probe tcp://127.0.0.1:80 retries=3;' }, qr/retries=3/],
    ['probe load from an unknown place', 'dns_load_probe',
        { server => 'dns_load_probe http://127.0.0.1:80/ load=cookie;' }, qr/load=cookie/],
    ['probe given twice', 'dns_load_probe',
        { server => "dns_load_probe tcp://127.0.0.1:80;\ndns_load_probe tcp://127.0.0.1:81;" },
        qr/dns_load_probe tcp:\/\/127\.0\.0\.1:81/],

    ['curve loads decreasing', 'dns_shed',
        { server => 'dns_shed 0.8:0 0.5:0;' }, qr/dns_shed 0\.8:0 0\.5:0/, qr/must increase/],
    ['high mark below the curve', 'dns_shed',
        { server => 'dns_shed 0.5:0 high=0.4;' }, qr/high=0\.4/, qr/high mark/],
    ['curve delay over 10 s', 'dns_shed',
        { server => 'dns_shed 0.5:0 0.9:11s;' }, qr/0\.9:11s/],
    ['curve drop above 1', 'dns_shed',
        { server => 'dns_shed 0.5:0 0.9:10ms:1.5;' }, qr/0\.9:10ms:1\.5/],
    ['curve point without a delay', 'dns_shed',
        { server => 'dns_shed 0.5;' }, qr/dns_shed 0\.5;/],

    ['silence maybe', 'dns_silence',
        { server => 'dns_silence maybe;' }, qr/dns_silence maybe/, qr/"maybe"/],

    ['load file missing=perhaps', 'dns_load_file',
        { server => 'dns_load_file /x missing=perhaps;' }, qr/missing=perhaps/, qr/"missing=perhaps"/],
    ['load file grace=abc', 'dns_load_file',
        { server => 'dns_load_file /x grace=abc;' }, qr/grace=abc/],
    ['load file given twice', 'dns_load_file',
        { server => "dns_load_file /x;\ndns_load_file /y;" }, qr/dns_load_file \/y/],

    ['host cpu', 'dns_load_host',
        { server => 'dns_load_host cpu;' }, qr/dns_load_host cpu/, qr/"cpu"/],

    ['smoothing abc', 'dns_load_smoothing',
        { server => 'dns_load_smoothing abc;' }, qr/dns_load_smoothing abc/],

    ['delay queue -1', 'dns_delay_queue',
        { server => 'dns_delay_queue -1;' }, qr/dns_delay_queue -1/, qr/"-1"/],
    ['delay queue abc', 'dns_delay_queue',
        { server => 'dns_delay_queue abc;' }, qr/dns_delay_queue abc/],

    ['upstream capacity=0', 'dns_load_upstream',
        { server => 'dns_load_upstream app capacity=0;',
          main => 'http { upstream app { zone app 64k; server 127.0.0.1:9; } }' },
        qr/capacity=0/, qr/"capacity=0"/],

    ['dns_load_file without dns_service', 'dns_load_file',
        { servers => plain_server('dns_load_file /x;') }, qr/dns_load_file \/x;/,
        qr/requires "dns_service"/],
    ['dns_shed without dns_service', 'dns_shed',
        { servers => plain_server('dns_shed 0.5:0 0.9:100ms;') }, qr/dns_shed 0\.5/,
        qr/requires "dns_service"/],
    ['dns_load_probe without dns_service', 'dns_load_probe',
        { servers => plain_server('dns_load_probe tcp://127.0.0.1:80;') }, qr/dns_load_probe tcp/,
        qr/requires "dns_service"/],
    ['dns_silence without dns_service', 'dns_silence',
        { servers => plain_server('dns_silence refuse;') }, qr/dns_silence refuse/,
        qr/requires "dns_service"/],
    ['dns_delay_queue without dns_service', 'dns_delay_queue',
        { servers => plain_server('dns_delay_queue 10;') }, qr/dns_delay_queue 10/,
        qr/requires "dns_service"/],

    ['dns_service_status with an argument', 'dns_service_status',
        { main => "http { server { listen 127.0.0.1:%%PORT2%%;\n"
                . "location / { dns_service_status json; } } }" },
        qr/dns_service_status json/],
    ['dns_service_status in a server block', 'dns_service_status',
        { main => "http { server { listen 127.0.0.1:%%PORT2%%;\n"
                . "dns_service_status; } }" },
        qr/^dns_service_status;/],
);

for my $case (@bad) {
    my ($what, $directive, $opts, $line_re, $why) = @$case;
    $t->write_config(DnsTest::conf(%$opts));
    my @lines = split /\n/, $t->config_text;
    my ($line) = grep { $lines[$_ - 1] =~ $line_re } reverse 1 .. @lines;
    ok($line, "$what: the offending line is in the config") or next;
    my ($rc, $out) = $t->test_config;
    isnt($rc, 0, "$what: nginx -t fails");
    like($out, qr/\[emerg\][^\n]*"\Q$directive\E"[^\n]*\Q$file\E:$line\b/,
        "$what: [emerg] names \"$directive\" and nginx.conf:$line")
        or diag($out);
    like($out, $why, "$what: says why") if $why;
}

###############################################################################
# Good values pass

my @good = (
    ['every load directive with good values', { main => "http { upstream app { zone app 64k; server 127.0.0.1:9 max_conns=10; }\n"
            . "server { listen 127.0.0.1:%%PORT2%%; location = /status { dns_service_status; } } }",
        server => join("\n",
            'dns_load_upstream app capacity=100;',
            'dns_load_probe http://127.0.0.1:9/health interval=1s timeout=500ms rise=2 fall=4 load=header:X-Load host=app.example.com;',
            'dns_load_file /nonexistent/app.load grace=5s missing=down;',
            'dns_load_host loadavg;',
            'dns_load_smoothing 0;',
            'dns_shed 0.5:0 0.8:100ms 0.9:1s:0.5 high=0.95;',
            'dns_silence refuse;',
            'dns_delay_queue 10;') }],
    ['probe load=body, IPv6 literal', { server => 'dns_load_probe http://[::1]:8080/ready load=body;' }],
    ['TCP probe, host psi', { server => "dns_load_probe tcp://127.0.0.1:5432;\ndns_load_host psi;" }],
    ['the example configuration', undef],
);

for my $case (@good) {
    my ($what, $opts) = @$case;
    if ($opts) {
        $t->write_config(DnsTest::conf(%$opts));
    } else {
        my $text = do {
            open my $fh, '<', DnsTest::repo_dir() . '/nginx-conf/example-load-file.conf' or die $!;
            local $/;
            <$fh>;
        };
        $text =~ s{^load_module \S+;}{load_module %%MODULE%%;}m;
        $text =~ s{error_log stderr}{error_log %%PREFIX%%/error.log};
        $text =~ s{127\.0\.0\.1:8053}{127.0.0.1:%%PORT2%%}g;
        $text =~ s{127\.0\.0\.1:5353}{127.0.0.1:%%PORT%%}g;
        $text =~ s{/dev/stdout}{%%PREFIX%%/access.log}g;
        $t->write_config("pid %%PREFIX%%/nginx.pid;\n$text");
    }
    my ($rc, $out) = $t->test_config;
    is($rc, 0, "$what: nginx -t passes") or diag($out);
}

done_testing;

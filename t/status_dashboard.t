#!/usr/bin/perl

# docs/grafana-dashboard.json only asks for what the module exports: every
# metric its queries name is in the Prometheus text of a running nginx,
# every label it matches on or groups by is a label of that metric (or
# `instance`, which Prometheus adds), and every label value it matches
# exactly occurs.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";

use JSON::PP ();
use Test::More;
use DnsTest;
use LoadTest;

my $DASHBOARD = DnsTest::repo_dir() . '/docs/grafana-dashboard.json';

my $t = DnsTest->new(ports => 2);
my $prefix = $t->prefix;
# A load file, so that the per-source metrics exist too.
LoadTest::write_load("$prefix/app.load", "0.3\n");
$t->write_config(DnsTest::conf(
    main => LoadTest::status_http('PORT2'),
    server => "dns_load_file %%PREFIX%%/app.load;",
));
$t->run or BAIL_OUT('nginx did not start: ' . $t->error_log);
ok(defined LoadTest::wait_for(2, sub {
    (LoadTest::status_get($t->port(2))->{content} // '') =~ /^dns_service_source_load/m
}), 'the status reports the load file');
my $text = LoadTest::status_get($t->port(2))->{content} // '';
$t->stop;

# metric → { label → { value → 1 } }, from the sample lines.
my %exported;
for my $line (split /\n/, $text) {
    next unless $line =~ /^(dns_service_\w+)\{([^}]*)\}\s/;
    my ($metric, $labels) = ($1, $2);
    $exported{$metric} //= {};
    $exported{$metric}{$1}{$2} = 1 while $labels =~ /(\w+)="([^"]*)"/g;
}
ok(scalar keys %exported >= 10, sprintf('the status exports %d metrics', scalar keys %exported));

open my $fh, '<', $DASHBOARD or BAIL_OUT("$DASHBOARD: $!");
my $dashboard = JSON::PP::decode_json(do { local $/; <$fh> });
is(ref $dashboard->{panels}, 'ARRAY', 'the dashboard has panels');

# Every PromQL text: panel targets and template variable queries.
my @queries;
sub walk {
    my ($node) = @_;
    if (ref $node eq 'HASH') {
        for my $k (sort keys %$node) {
            my $v = $node->{$k};
            if (!ref $v && ($k eq 'expr' || $k eq 'definition' || ($k eq 'query' && $v =~ /dns_service_/))) {
                push @queries, $v;
            }
            walk($v) if ref $v;
        }
    } elsif (ref $node eq 'ARRAY') {
        walk($_) for @$node;
    }
}
walk($dashboard);
ok(@queries >= 10, scalar(@queries) . ' queries in the dashboard');

my %used;
for my $q (@queries) {
    my @metrics;
    while ($q =~ /\b(dns_service_[a-z_]+)\b(?:\{([^}]*)\})?/g) {
        my ($metric, $matchers) = ($1, $2 // '');
        push @metrics, $metric;
        $used{$metric} = 1;
        next unless $exported{$metric};
        while ($matchers =~ /(\w+)\s*(=~|!~|!=|=)\s*"([^"]*)"/g) {
            my ($label, $op, $value) = ($1, $2, $3);
            next if $label eq 'instance';
            ok($exported{$metric}{$label}, "$metric has the label $label");
            ok($exported{$metric}{$label}{$value}, "$metric has $label=\"$value\"")
                if $op eq '=' && $value !~ /\$/;
        }
    }
    # Labels of `by (...)` and `label_values(..., label)`.
    my @grouped;
    push @grouped, split /\s*,\s*/, $1 while $q =~ /\bby\s*\(([^)]*)\)/g;
    push @grouped, $1 if $q =~ /label_values\([^,]*,\s*(\w+)\s*\)/;
    for my $label (grep { $_ ne 'instance' } map { s/\s//gr } @grouped) {
        ok((grep { $exported{$_} && $exported{$_}{$label} } @metrics),
            "the label $label of a grouping is a label of @metrics");
    }
}
for my $metric (sort keys %used) {
    ok($exported{$metric}, "the dashboard's metric $metric is exported");
}

done_testing();

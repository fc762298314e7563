#!/usr/bin/env perl
# perl-provider.pl: a tether provider written in Perl with nothing but the
# core modules, to show that `tether check` judges providers in any
# language, and what it says about one that gets the protocol wrong.
#
#     perl-provider.pl [good|sloppy]
#
# One resource type, `note`: a file in the working directory holding some
# text. Inputs {"name": string, "text": string}, outputs {"path", "bytes"}.
#
# "good" (the default) follows SPEC sections 1 to 5. "sloppy" makes five
# mistakes that real providers make, each of which tether check names:
#   - an unknown method gets -32603 instead of -32601;
#   - ids go through a number conversion, so "42" comes back as 42 and a
#     20-digit id loses its last digits;
#   - a notification with an unknown method is answered (with id null);
#   - inputs are not checked, so a misspelt one goes unnoticed;
#   - create prints a debug line on stdout, where only messages belong.
use strict;
use warnings;
use B ();
use JSON::PP ();

my $mode = shift(@ARGV) // 'good';
die "perl-provider.pl: unknown mode $mode (good or sloppy)\n"
  unless $mode eq 'good' || $mode eq 'sloppy';
my $sloppy = $mode eq 'sloppy';

if (-t STDIN) {
    print STDERR "perl-provider.pl: a tether provider; run it through "
      . "`tether run` or `tether check`, not from a terminal\n";
    exit 1;
}

# The protocol gets a private copy of stdout, and stdout itself points at
# stderr, so a stray print cannot corrupt the message stream. The sloppy
# mode writes its debug line to the real channel on purpose.
open(my $proto, '>&', \*STDOUT) or die "perl-provider.pl: dup stdout: $!\n";
open(STDOUT, '>&', \*STDERR) or die "perl-provider.pl: redirect stdout: $!\n";
binmode($proto);
binmode(STDIN);
$proto->autoflush(1);
$SIG{PIPE} = 'IGNORE';

# Strict RFC 8259 (JSON::PP refuses comments, trailing commas, NaN and
# leading zeros unless told otherwise), 20-digit ids kept exactly, and a
# nesting limit that fails cleanly instead of exhausting the stack.
my $json = JSON::PP->new->utf8->allow_bignum->allow_nonref->max_depth(512);

my %types = (
    note => {
        description   => 'A file in the working directory holding some text',
        requireState  => JSON::PP::false,
        stateProvider => JSON::PP::false,
        operations    => [qw(create update delete read)],
    },
);
my %inputs = (name => 1, text => 1); # both required, both strings

my $framing;          # 'ndjson' or 'content-length', from the first message
my $initialized = 0;
my $shut_down = 0;

sub send_message {
    my ($msg) = @_;
    my $text = $json->encode($msg);
    if (($framing // 'ndjson') eq 'content-length') {
        print {$proto} 'Content-Length: ' . length($text) . "\r\n\r\n" . $text;
    } else {
        print {$proto} $text . "\n";
    }
}

sub error_of {
    my ($code, $message, $data) = @_;
    my %e = (code => $code, message => $message);
    $e{data} = $data if defined $data;
    return \%e;
}

# A decoded scalar that was a JSON string (not a number, not a boolean).
sub is_string {
    my ($v) = @_;
    return 0 if !defined($v) || ref($v);
    my $flags = B::svref_2object(\$v)->FLAGS;
    return ($flags & B::SVp_POK) && !($flags & (B::SVp_IOK | B::SVp_NOK));
}

sub is_object { return ref($_[0]) eq 'HASH' }
sub is_bool { return JSON::PP::is_bool($_[0]) }

sub check_inputs {
    my ($in, $where) = @_;
    return undef if $sloppy;
    for my $k (sort keys %$in) {
        return error_of(-32602, "$where/$k: unknown input property "
              . "(known: name, text)", {path => "$where/$k"})
          unless $inputs{$k};
        return error_of(-32602, "$where/$k: must be a string",
            {path => "$where/$k"})
          unless is_string($in->{$k});
    }
    for my $k (sort keys %inputs) {
        return error_of(-32602, "$where/$k: missing", {path => "$where/$k"})
          unless exists $in->{$k};
    }
    return undef;
}

sub outputs_of {
    my ($in) = @_;
    return {path => $in->{name}, bytes => length($in->{text})};
}

sub write_note {
    my ($in) = @_;
    my $tmp = "$in->{name}.tmp$$";
    open(my $fh, '>', $tmp) or return error_of(-32000, "$tmp: $!");
    print {$fh} $in->{text};
    close($fh) or return error_of(-32000, "$tmp: $!");
    rename($tmp, $in->{name}) or return error_of(-32000, "$in->{name}: $!");
    return undef;
}

# Checks the params an operation needs; returns (error) or (undef, type,
# inputs, resource).
sub operation_params {
    my ($method, $p) = @_;
    return error_of(-32602, 'params must be an object', {path => ''})
      unless is_object($p);
    my ($type, $in, $res);
    if ($method eq 'create') {
        return error_of(-32602, 'missing /type', {path => '/type'})
          unless is_string($p->{type});
        return error_of(-32602, 'missing /inputProperties',
            {path => '/inputProperties'})
          unless is_object($p->{inputProperties});
        return error_of(-32602, 'missing /isStateful', {path => '/isStateful'})
          unless is_bool($p->{isStateful});
        ($type, $in) = ($p->{type}, $p->{inputProperties});
    } else {
        $res = $p->{resource};
        return error_of(-32602, 'missing /resource', {path => '/resource'})
          unless is_object($res) && is_string($res->{type});
        $type = $res->{type};
        $in = is_object($res->{inputProperties}) ? $res->{inputProperties} : {};
        if ($method eq 'update') {
            return error_of(-32602, 'missing /inputProperties',
                {path => '/inputProperties'})
              unless is_object($p->{inputProperties});
            $in = $p->{inputProperties};
        }
    }
    return error_of(-32001, "unknown resource type \"$type\"",
        {type => $type, known => [sort keys %types]})
      unless $types{$type};
    return error_of(-32011, "type $type does not support $method",
        {type => $type, operation => $method})
      unless grep { $_ eq $method } @{$types{$type}{operations}};
    my $where = $method eq 'create' || $method eq 'update'
      ? '/inputProperties' : '/resource/inputProperties';
    my $bad = check_inputs($in, $where);
    return $bad if $bad;
    return (undef, $type, $in, $res);
}

sub operation {
    my ($method, $p) = @_;
    my ($err, $type, $in, $res) = operation_params($method, $p);
    return (undef, $err) if $err;
    if ($method eq 'create') {
        print {$proto} "creating note $in->{name}\n" if $sloppy;
        my $e = write_note($in);
        return $e ? (undef, $e) : ({outputProperties => outputs_of($in)});
    }
    if ($method eq 'update') {
        my $old = $res->{inputProperties}{name};
        my $e = write_note($in);
        return (undef, $e) if $e;
        unlink($old) if defined($old) && !ref($old) && $old ne $in->{name};
        return ({outputProperties => outputs_of($in)});
    }
    if ($method eq 'delete') {
        return (undef, error_of(-32000, "$in->{name}: $!"))
          if !unlink($in->{name}) && !$!{ENOENT};
        return ({});
    }
    # read
    return ({exists => JSON::PP::false}) unless -e $in->{name};
    return ({exists => JSON::PP::true, outputProperties => outputs_of($in)});
}

sub initialize {
    my ($p) = @_;
    my $v = is_object($p) ? $p->{protocolVersion} : undef;
    return (undef, error_of(-32602, 'unsupported protocol version '
              . ($json->encode($v)) . ' (this provider speaks 1)',
            {supported => [1]}))
      unless defined($v) && !ref($v) && $v =~ /\A1\z/;
    $initialized = 1;
    return ({
        protocolVersion => 1,
        provider        => {name => 'perl-provider', version => '1.0.0'},
        concurrency     => 1,
        resourceTypes   => \%types,
    });
}

# Answers one request; returns the response, or undef for a notification.
sub handle {
    my ($m) = @_;
    return {jsonrpc => '2.0', id => undef,
        error => error_of(-32600, 'invalid request: not an object')}
      unless is_object($m);
    my $has_id = exists $m->{id};
    my $id = $m->{id};
    $id = undef if ref($id) && !(ref($id) =~ /^Math::Big/);
    # The sloppy conversion goes through a double, as a JavaScript or Lua
    # provider's would: 12345678901234567890 becomes 12345678901234567168.
    $id = 0 + sprintf('%.0f', "$id")
      if $sloppy && defined($id) && "$id" =~ /\A-?[0-9]+\z/;
    my $reply = sub {
        my ($result, $error) = @_;
        return {jsonrpc => '2.0', id => $id,
            ($error ? (error => $error) : (result => $result))};
    };
    return $reply->(undef, error_of(-32600, 'invalid request: "jsonrpc" '
          . 'must be "2.0"'))
      unless is_string($m->{jsonrpc}) && $m->{jsonrpc} eq '2.0';
    return $reply->(undef, error_of(-32600, 'invalid request: "method" '
          . 'must be a string'))
      unless is_string($m->{method});
    return $reply->(undef, error_of(-32600, 'invalid request: "params" '
          . 'must be an object or an array'))
      if exists($m->{params}) && ref($m->{params}) ne 'HASH'
      && ref($m->{params}) ne 'ARRAY';
    my $method = $m->{method};
    my $p = $m->{params} // {};

    if (!$has_id) {
        if ($method eq 'exit') {
            exit($shut_down ? 0 : 1);
        }
        return {jsonrpc => '2.0', id => undef,
            error => error_of(-32601, "no notification $method")}
          if $sloppy && $method ne '$/cancelRequest';
        # Requests are answered one at a time, so there is never one in
        # flight to cancel; other notifications are for someone else.
        return undef;
    }
    return $reply->(undef, error_of(-32600, 'shutdown was received'))
      if $shut_down;
    return $reply->(initialize($p)) if $method eq 'initialize';
    return $reply->(undef, error_of(-32002, 'not initialized'))
      unless $initialized;
    if ($method eq 'shutdown') {
        $shut_down = 1;
        return $reply->(undef);
    }
    return $reply->(operation($method, $p))
      if grep { $_ eq $method } qw(create update delete read state_read
      state_event);
    return $reply->(undef, error_of($sloppy ? -32603 : -32601,
            "unknown method \"$method\""));
}

sub handle_text {
    my ($text) = @_;
    my $m = eval { $json->decode($text) };
    if (!defined($m) && $@) {
        (my $why = $@) =~ s/ at \S+ line \d+\.\n\z//;
        send_message({jsonrpc => '2.0', id => undef,
            error => error_of(-32700, "parse error: $why")});
        return;
    }
    if (ref($m) eq 'ARRAY') {
        if (!@$m) {
            send_message({jsonrpc => '2.0', id => undef,
                error => error_of(-32600, 'invalid request: an empty batch')});
            return;
        }
        my @out = grep { defined } map { handle($_) } @$m;
        send_message(\@out) if @out;
        return;
    }
    my $r = handle($m);
    send_message($r) if $r;
}

# Cuts messages out of what was read, in either framing.
my $buf = '';
sub next_message {
    $buf =~ s/\A[ \t\r\n]+//;
    return undef if $buf eq '';
    $framing //= $buf =~ /\A[A-Za-z0-9-]+:/ ? 'content-length' : 'ndjson';
    if ($framing eq 'ndjson') {
        return undef unless $buf =~ s/\A([^\n]*)\n//;
        return $1;
    }
    return undef unless $buf =~ /\A(.*?)\r?\n\r?\n/s;
    my $headers = $1;
    my $start = $+[0];
    die "perl-provider.pl: a header block without Content-Length\n"
      unless $headers =~ /^content-length:\s*([0-9]+)\s*$/mi;
    my $len = $1;
    return undef if length($buf) < $start + $len;
    my $body = substr($buf, $start, $len);
    substr($buf, 0, $start + $len) = '';
    return $body;
}

for (;;) {
    my $got = sysread(STDIN, $buf, 65536, length $buf);
    next if !defined($got) && $!{EINTR};
    last unless $got;
    while (defined(my $text = next_message())) {
        handle_text($text);
    }
}
exit 0;

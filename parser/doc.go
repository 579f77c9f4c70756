// Package parser reads an nginx.conf the way nginx does and turns it into
// gproxy's typed configuration (package config), with nginx's diagnostics:
// the same message, file and line that `nginx -t` prints.
//
// Reading happens in three steps, mirroring nginx:
//
//  1. lex.Parse tokenizes one file into directives with their lines
//     (nginx's ngx_conf_read_token rules).
//  2. The loader walks the directives in order, in their context, through
//     the directive table (one command per directive and context, like
//     ngx_command_t): it checks context, terminator and argument count,
//     then runs the directive's setter, which validates and records the
//     value. include is expanded where it stands. Errors are reported in
//     the order nginx would meet them: a directive's handler runs before
//     any syntax error later in the file.
//  3. When the http block closes, the checks nginx makes at that point run
//     in nginx's order (upstreams, merge, locations, variables, server
//     names), and every Server and Location gets its effective Settings.
//
// Directives come in three kinds (see Directives): implemented, ignored
// (accepted with one warning per name; they change nothing a gRPC proxy
// does) and unsupported (rejected, "is not supported by gproxy"). A word
// nginx does not know is nginx's "unknown directive".
//
// # gonginx
//
// gonginx (github.com/tufanbarisyildirim/gonginx) supplies the list of
// directive names nginx documents, which separates "not supported by
// gproxy" from "unknown directive" and fills the unsupported rows of
// Directives. Its tokenizer and tree are not used, because we measured
// that it:
//
//   - returns success for a stray top-level "}" and drops the rest of the
//     file (lex: TestGonginxStrayBraceDropsRest);
//   - gives a block directive the line of its closing brace, reports end
//     of file without a line, and never names the file (TestGonginxBlockLine);
//   - keeps quotes and escapes in values and fails on a string ending in
//     an escaped backslash (TestGonginxQuotes);
//   - breaks on braces inside Lua strings (TestGonginxLuaBraces);
//   - ignores a missing include file, does not unquote include paths, and
//     its typed wrappers reorder directives and drop duplicate parameters;
//   - checks no context and no argument count.
//
// Correcting those after the fact would cost a second pass over the text
// for positions and values anyway, so package lex is the single pass; the
// tests there record gonginx's behaviour on each case so that a fixed
// gonginx can be reconsidered.
package parser

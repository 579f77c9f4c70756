package main

import (
	"go.uber.org/zap/zapcore"

	"github.com/gproxy/gproxy/parser/config"
	"github.com/gproxy/gproxy/proxy/syslog"
)

// maxErrorLine is nginx's NGX_MAX_ERROR_STR: longer error log lines are cut
// there, which also keeps each one within a datagram.
const maxErrorLine = 2048

// levelSeverities are the syslog severities of error log entries, nginx's
// level minus one; the severity= parameter plays no part for error_log, as
// in nginx.
var levelSeverities = map[zapcore.Level]int{
	zapcore.DebugLevel:  syslog.Debug,
	zapcore.InfoLevel:   syslog.Notice, // printed as notice: see nginxLevels
	zapcore.WarnLevel:   syslog.Warn,
	zapcore.ErrorLevel:  syslog.Error,
	zapcore.DPanicLevel: syslog.Crit,
	zapcore.PanicLevel:  syslog.Crit,
	zapcore.FatalLevel:  syslog.Crit,
	critLevel:           syslog.Crit,
	alertLevel:          syslog.Alert,
	emergLevel:          syslog.Emerg,
}

// syslogCore writes error log entries to a syslog destination. Each
// message carries the whole error log line, time stamp included, as
// nginx's do:
//
//	<187>Nov 25 08:49:53 host nginx: 2026/11/25 08:49:53 [error] 1234#0: message
//
// Failed sends are not reported: the error log is where they would go.
type syslogCore struct {
	zapcore.LevelEnabler
	enc  zapcore.Encoder
	sink *syslog.Sink
}

// newSyslogCore makes the core of one error_log syslog destination; it
// connects on the first message, as nginx does.
func newSyslogCore(cfg config.Syslog, lvl zapcore.Level) *syslogCore {
	return &syslogCore{LevelEnabler: lvl, enc: newEncoder(), sink: syslog.New(cfg, nil)}
}

// With implements zapcore.Core.
func (c *syslogCore) With(fields []zapcore.Field) zapcore.Core {
	enc := c.enc.Clone()
	for _, f := range fields {
		f.AddTo(enc)
	}
	return &syslogCore{LevelEnabler: c.LevelEnabler, enc: enc, sink: c.sink}
}

// Check implements zapcore.Core.
func (c *syslogCore) Check(e zapcore.Entry, ce *zapcore.CheckedEntry) *zapcore.CheckedEntry {
	if c.Enabled(e.Level) {
		return ce.AddCore(e, c)
	}
	return ce
}

// Write implements zapcore.Core.
func (c *syslogCore) Write(e zapcore.Entry, fields []zapcore.Field) error {
	buf, err := c.enc.EncodeEntry(e, fields)
	if err != nil {
		return err
	}
	defer buf.Free()
	line := buf.Bytes()
	if n := len(line); n > 0 && line[n-1] == '\n' {
		line = line[:n-1]
	}
	line = line[:min(len(line), maxErrorLine)]
	return c.sink.Send(levelSeverities[e.Level], line)
}

// Sync implements zapcore.Core.
func (c *syslogCore) Sync() error { return nil }

// Close closes the connection to syslog.
func (c *syslogCore) Close() error { return c.sink.Close() }

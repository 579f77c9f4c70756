package main

import (
	"fmt"
	"log/syslog"
	"net"
	"strings"

	"go.uber.org/zap/zapcore"
)

// syslogFacilities are nginx's facility names and their numbers.
var syslogFacilities = map[string]int{
	"kern": 0, "user": 1, "mail": 2, "daemon": 3, "auth": 4, "intern": 5,
	"lpr": 6, "news": 7, "uucp": 8, "clock": 9, "authpriv": 10, "ftp": 11,
	"ntp": 12, "audit": 13, "alert": 14, "cron": 15,
	"local0": 16, "local1": 17, "local2": 18, "local3": 19,
	"local4": 20, "local5": 21, "local6": 22, "local7": 23,
}

// syslogTarget is a parsed "syslog:server=...,facility=...,tag=..." path.
type syslogTarget struct {
	network, addr string
	facility      int
	tag           string
}

// parseSyslog reads nginx's syslog destination syntax. severity= only
// matters for access logs and nohostname has no effect on Go's writer, so
// both are accepted and ignored, as for nginx's error_log.
func parseSyslog(path string) (syslogTarget, error) {
	t := syslogTarget{network: "udp", facility: syslogFacilities["local7"], tag: "gproxy"}
	params := strings.TrimPrefix(path, "syslog:")
	for _, p := range strings.Split(params, ",") {
		key, value, _ := strings.Cut(p, "=")
		switch key {
		case "server":
			if sock, ok := strings.CutPrefix(value, "unix:"); ok {
				t.network, t.addr = "unixgram", sock
				continue
			}
			if _, _, err := net.SplitHostPort(value); err != nil {
				value = net.JoinHostPort(strings.Trim(value, "[]"), "514")
			}
			t.addr = value
		case "facility":
			f, ok := syslogFacilities[value]
			if !ok {
				return t, fmt.Errorf("unknown syslog facility %q", value)
			}
			t.facility = f
		case "tag":
			t.tag = value
		case "severity", "nohostname":
		default:
			return t, fmt.Errorf("unknown syslog parameter %q", p)
		}
	}
	if t.addr == "" {
		return t, fmt.Errorf("no syslog server specified in %q", path)
	}
	return t, nil
}

// syslogCore writes error log entries to syslog with a severity matching
// each entry's level. Lines carry no time stamp: syslog adds its own.
type syslogCore struct {
	zapcore.LevelEnabler
	enc zapcore.Encoder
	w   *syslog.Writer
}

// newSyslogCore dials the syslog destination named by path.
func newSyslogCore(path string, lvl zapcore.Level) (*syslogCore, error) {
	t, err := parseSyslog(path)
	if err != nil {
		return nil, err
	}
	w, err := syslog.Dial(t.network, t.addr, syslog.Priority(t.facility<<3)|syslog.LOG_ERR, t.tag)
	if err != nil {
		return nil, fmt.Errorf("syslog %s: %w", t.addr, err)
	}
	enc := zapcore.NewConsoleEncoder(zapcore.EncoderConfig{
		LevelKey:         "level",
		MessageKey:       "msg",
		EncodeLevel:      newLevelEncoder(),
		EncodeDuration:   zapcore.StringDurationEncoder,
		ConsoleSeparator: " ",
	})
	return &syslogCore{LevelEnabler: lvl, enc: enc, w: w}, nil
}

// With implements zapcore.Core.
func (c *syslogCore) With(fields []zapcore.Field) zapcore.Core {
	enc := c.enc.Clone()
	for _, f := range fields {
		f.AddTo(enc)
	}
	return &syslogCore{LevelEnabler: c.LevelEnabler, enc: enc, w: c.w}
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
	msg := strings.TrimSuffix(buf.String(), "\n")
	buf.Free()
	switch {
	case e.Level >= zapcore.DPanicLevel:
		return c.w.Crit(msg)
	case e.Level >= zapcore.ErrorLevel:
		return c.w.Err(msg)
	case e.Level == zapcore.WarnLevel:
		return c.w.Warning(msg)
	case e.Level == zapcore.InfoLevel:
		return c.w.Info(msg)
	default:
		return c.w.Debug(msg)
	}
}

// Sync implements zapcore.Core.
func (c *syslogCore) Sync() error { return nil }

// Close closes the connection to syslog.
func (c *syslogCore) Close() error { return c.w.Close() }

package accesslog

import (
	"github.com/gproxy/gproxy/parser/config"
	"github.com/gproxy/gproxy/proxy/syslog"
	"go.uber.org/zap"
)

// syslogSink sends each line, without its newline, as one syslog message
// at the access_log's severity (see package proxy/syslog for the format).
// Syslog lines cannot be buffered (nginx refuses buffer= too).
type syslogSink struct {
	*syslog.Sink
	sev int
}

// newSyslog makes the sink of one destination; it connects on the first
// line. Failed sends are reported to errlog at most once a second; the
// lines are lost, as with nginx.
func newSyslog(cfg config.Syslog, errlog *zap.Logger) *syslogSink {
	report := func(err error) { errlog.Error(err.Error()) }
	return &syslogSink{Sink: syslog.New(cfg, report), sev: cfg.Severity}
}

func (s *syslogSink) write(line []byte) {
	_ = s.Send(s.sev, line[:len(line)-1])
}

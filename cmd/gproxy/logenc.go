package main

import (
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"

	"go.uber.org/zap/buffer"
	"go.uber.org/zap/zapcore"

	"github.com/gproxy/gproxy/proxy/errlog"
)

// connectionKey is the one field the error log understands: the client
// connection number, printed as nginx's "*N " before the message. Every
// other part of a line is in its message (see the contract in
// README.md, "Logging").
const connectionKey = errlog.ConnectionKey

// linePool hands out the buffers lines are built in.
var linePool = buffer.NewPool()

// nginxEncoder is a zapcore.Encoder writing nginx's error log line:
//
//	2026/11/30 12:00:00 [error] 1234#0: *17 upstream timed out (110: ...) while ..., client: ...
//
// The "*N " part appears only when the entry carries the "connection"
// field. Any other field (there should be none: callers put everything in
// the message) is appended as nginx appends context, ", key: value",
// never as JSON.
type nginxEncoder struct {
	*zapcore.MapObjectEncoder
	pidTag string
}

// newEncoder returns the error log's encoder.
func newEncoder() zapcore.Encoder {
	return &nginxEncoder{MapObjectEncoder: zapcore.NewMapObjectEncoder(), pidTag: strconv.Itoa(os.Getpid()) + "#0: "}
}

// Clone implements zapcore.Encoder.
func (e *nginxEncoder) Clone() zapcore.Encoder {
	c := zapcore.NewMapObjectEncoder()
	for k, v := range e.Fields {
		c.Fields[k] = v
	}
	return &nginxEncoder{MapObjectEncoder: c, pidTag: e.pidTag}
}

// EncodeEntry implements zapcore.Encoder.
func (e *nginxEncoder) EncodeEntry(ent zapcore.Entry, fields []zapcore.Field) (*buffer.Buffer, error) {
	all := e.MapObjectEncoder
	if len(fields) > 0 {
		all = zapcore.NewMapObjectEncoder()
		for k, v := range e.Fields {
			all.Fields[k] = v
		}
		for _, f := range fields {
			f.AddTo(all)
		}
	}
	b := linePool.Get()
	b.AppendTime(ent.Time, "2006/01/02 15:04:05")
	b.AppendString(" [")
	b.AppendString(levelName(ent.Level))
	b.AppendString("] ")
	b.AppendString(e.pidTag)
	if c, ok := all.Fields[connectionKey]; ok {
		b.AppendByte('*')
		b.AppendString(fmt.Sprint(c))
		b.AppendByte(' ')
	}
	b.AppendString(ent.Message)
	if len(all.Fields) > 0 {
		keys := make([]string, 0, len(all.Fields))
		for k := range all.Fields {
			if k != connectionKey {
				keys = append(keys, k)
			}
		}
		sort.Strings(keys)
		for _, k := range keys {
			b.AppendString(", ")
			b.AppendString(k)
			b.AppendString(": ")
			b.AppendString(fieldText(all.Fields[k]))
		}
	}
	b.AppendByte('\n')
	return b, nil
}

// fieldText is a field's value as plain text.
func fieldText(v any) string {
	switch x := v.(type) {
	case string:
		return x
	case time.Duration:
		return x.String()
	case error:
		return x.Error()
	}
	return strings.TrimSpace(fmt.Sprint(v))
}

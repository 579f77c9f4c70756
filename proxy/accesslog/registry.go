package accesslog

import (
	"os"
	"sync"
	"time"

	"github.com/gproxy/gproxy/parser/config"
	"go.uber.org/zap"
)

// The destinations open in the process, shared by the Sets of successive
// configurations so that a reload neither reopens files nor cuts off the
// streams still logging through the old configuration.
var registry = struct {
	mu      sync.Mutex
	files   map[fileKey]*file
	syslogs map[config.Syslog]*syslogSink
	refs    map[any]int
}{files: map[fileKey]*file{}, syslogs: map[config.Syslog]*syslogSink{}, refs: map[any]int{}}

// fileKey names one file with one buffer policy. The same path with
// another policy (buffer= changed on reload) is a second open file; lines
// never interleave inside a write, since every write(2) is whole lines
// and the files are opened with O_APPEND.
type fileKey struct {
	path  string // "stderr" is the process's standard error
	size  int
	flush time.Duration
}

func acquireFile(k fileKey, errlog *zap.Logger) (*file, error) {
	registry.mu.Lock()
	defer registry.mu.Unlock()
	if f, ok := registry.files[k]; ok {
		registry.refs[f]++
		return f, nil
	}
	w, path := os.Stderr, ""
	if k.path != "stderr" {
		var err error
		if w, err = openFile(k.path); err != nil {
			return nil, err
		}
		path = k.path
	}
	f := newFile(path, w, k.size, k.flush, errlog)
	f.key = k
	registry.files[k] = f
	registry.refs[f] = 1
	return f, nil
}

// releaseFile closes f when no Set holds it any more.
func releaseFile(f *file) error {
	registry.mu.Lock()
	registry.refs[f]--
	last := registry.refs[f] == 0
	if last {
		delete(registry.refs, f)
		delete(registry.files, f.key)
	}
	registry.mu.Unlock()
	if last {
		return f.close()
	}
	return nil
}

// acquireSyslog returns the sink of cfg, shared by every Set that names
// the same destination with the same parameters.
func acquireSyslog(cfg config.Syslog, errlog *zap.Logger) *syslogSink {
	registry.mu.Lock()
	defer registry.mu.Unlock()
	if sl, ok := registry.syslogs[cfg]; ok {
		registry.refs[sl]++
		return sl
	}
	sl := newSyslog(cfg, errlog)
	registry.syslogs[cfg] = sl
	registry.refs[sl] = 1
	return sl
}

// releaseSyslog closes sl when no Set holds it any more.
func releaseSyslog(sl *syslogSink) error {
	registry.mu.Lock()
	registry.refs[sl]--
	last := registry.refs[sl] == 0
	if last {
		delete(registry.refs, sl)
		delete(registry.syslogs, sl.Config())
	}
	registry.mu.Unlock()
	if last {
		return sl.Close()
	}
	return nil
}

//go:build !nginxonly

package e2e

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/gproxy/gproxy/parser"
	"github.com/gproxy/gproxy/proxy"
)

// startGproxy parses the config with gproxy's parser and runs the engine in
// this process, so that -race watches it. Its log is shown if the test fails.
func startGproxy(t *testing.T, httpBody string) *proxyInstance {
	t.Helper()
	conf := fmt.Sprintf(`daemon off;
worker_processes 1;
events { worker_connections %d; }
http {
access_log off;
%s
}
`, workerConnections, httpBody)
	path := filepath.Join(t.TempDir(), "nginx.conf")
	if err := os.WriteFile(path, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, diags, err := parser.LoadBytes(path, []byte(conf), parser.Options{})
	for i := range diags {
		t.Logf("gproxy: %s", diags[i].Error())
	}
	if err != nil {
		t.Fatalf("gproxy rejected the config: %v\n%s", err, conf)
	}

	logs := &syncBuffer{}
	log := zap.New(zapcore.NewCore(
		zapcore.NewConsoleEncoder(zap.NewDevelopmentEncoderConfig()),
		zapcore.AddSync(logs), zap.InfoLevel))
	s, err := proxy.New(cfg, log)
	if err != nil {
		t.Fatalf("proxy.New: %v", err)
	}
	if err := s.Start(); err != nil {
		t.Fatalf("proxy.Start: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := s.Shutdown(ctx); err != nil {
			t.Logf("gproxy shutdown: %v", err)
			_ = s.Close()
		}
		if t.Failed() {
			t.Logf("gproxy log:\n%s", logs.String())
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for _, addr := range listenAddrs(httpBody) {
		if err := waitListening(ctx, addr); err != nil {
			t.Fatalf("gproxy: %v (listening on %v)", err, s.Addrs())
		}
	}
	return &proxyInstance{kind: "gproxy", mem: func() (uint64, string) {
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		return ms.HeapInuse, "Go heap in use (proxy, clients and backends together)"
	}}
}

// syncBuffer is a bytes.Buffer safe for the engine's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

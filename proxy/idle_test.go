package proxy

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"

	"github.com/gproxy/gproxy/examples/h2attack"
)

var (
	idleConns   = flag.Int("idle.n", 2000, "connections TestIdleConnMemory holds open")
	idleProfile = flag.String("idle.heapprofile", "", "write a heap profile, taken while the connections are idle, to this file (suffixed by case)")
)

// TestIdleConnMemory measures what an idle HTTP/2 client connection costs
// the proxy: a helper process (this test binary, re-executed) opens -idle.n
// h2c connections to an in-process Server, completes the handshake (and,
// in the "after request" case, one request each) and holds them; the
// delta of the Go runtime's heap+stack in use and of the process RSS,
// divided by the count, is logged. The clients live in another process so
// that only the server side is counted.
//
//	go test -run TestIdleConnMemory -v ./proxy/ -idle.n=2000
//
// It asserts a bound that catches a regression pinning a goroutine or a
// buffer per idle connection; the figure to compare with nginx is
// TestIdleRSS's (make idle-rss), on the binary.
func TestIdleConnMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("opens thousands of connections")
	}
	if *idleProfile != "" {
		runtime.MemProfileRate = 1 // every allocation, for a per-connection breakdown
		defer func() { runtime.MemProfileRate = 512 << 10 }()
	}
	be := startBackend(t)
	for _, warm := range []string{"", "healthz", "grpc"} {
		name := map[string]string{"": "handshake only", "healthz": "after one request", "grpc": "after one gRPC call"}[warm]
		t.Run(name, func(t *testing.T) {
			port := freePort(t)
			s := startProxy(t, strings.Replace(articleConf(port, be.addr), "worker_connections 1024", "worker_connections 100000", 1))
			addr := s.Addrs()[0].String()

			before := memNow()
			cmd := exec.Command(os.Args[0], "-test.run=^TestIdleClientHelper$")
			cmd.Env = append(os.Environ(), "GPROXY_IDLE_ADDR="+addr,
				"GPROXY_IDLE_N="+strconv.Itoa(*idleConns), "GPROXY_IDLE_WARM="+warm)
			stdin, err := cmd.StdinPipe()
			if err != nil {
				t.Fatal(err)
			}
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			stdout, err := cmd.StdoutPipe()
			if err != nil {
				t.Fatal(err)
			}
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			done := make(chan error, 1)
			go func() {
				sc := bufio.NewScanner(stdout)
				for sc.Scan() {
					if sc.Text() == "ready" {
						done <- nil
						io.Copy(io.Discard, stdout)
						return
					}
				}
				done <- errors.New("helper exited before ready")
			}()
			defer func() {
				stdin.Close()
				cmd.Wait()
			}()
			select {
			case err := <-done:
				if err != nil {
					t.Fatalf("%v\n%s", err, stderr.String())
				}
			case <-time.After(60 * time.Second):
				cmd.Process.Kill()
				t.Fatalf("helper not ready in time\n%s", stderr.String())
			}
			// Let the server finish the handshakes' writes and the codec see the
			// connections idle (h2.idleGrace).
			time.Sleep(1500 * time.Millisecond)
			after := memNow()
			if *idleProfile != "" {
				writeHeapProfile(t, *idleProfile+"."+strings.ReplaceAll(name, " ", "-"))
			}
			n := float64(*idleConns)
			goPer := float64(int64(after.goInuse)-int64(before.goInuse)) / n
			rssPer := float64(int64(after.rss)-int64(before.rss)) / n
			t.Logf("%d idle h2c conns (%s): Go heap+stack %.2f KiB/conn (heap %.2f, stack %.2f), RSS %.2f KiB/conn",
				*idleConns, name, goPer/1024,
				float64(int64(after.heap)-int64(before.heap))/n/1024,
				float64(int64(after.stack)-int64(before.stack))/n/1024, rssPer/1024)
			// About 3 KiB since idle connections are parked and shed what
			// they can rebuild (a goroutine, its stack and a read buffer
			// would be 7 or more).
			if goPer > 6<<10 {
				t.Errorf("an idle connection holds %.1f KiB of Go memory, more than 6 KiB", goPer/1024)
			}
		})
	}
}

func writeHeapProfile(t *testing.T, path string) {
	runtime.GC() // the profile lags a cycle behind: publish memNow's frees
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := pprof.Lookup("heap").WriteTo(f, 0); err != nil {
		t.Fatal(err)
	}
}

type memSample struct{ heap, stack, goInuse, rss uint64 }

// memNow collects garbage (twice, so stacks shrink and finalizers run),
// returns freed memory to the OS and samples the runtime and the RSS.
func memNow() memSample {
	runtime.GC()
	runtime.GC()
	debug.FreeOSMemory()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return memSample{heap: m.HeapInuse, stack: m.StackInuse, goInuse: m.HeapInuse + m.StackInuse, rss: rssBytes()}
}

func rssBytes() uint64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, _ := strconv.ParseUint(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
			return kb << 10
		}
	}
	return 0
}

// TestIdleClientHelper is the client process of TestIdleConnMemory; it
// does nothing unless run by it.
func TestIdleClientHelper(t *testing.T) {
	addr := os.Getenv("GPROXY_IDLE_ADDR")
	if addr == "" {
		t.Skip("helper process for TestIdleConnMemory")
	}
	n, _ := strconv.Atoi(os.Getenv("GPROXY_IDLE_N"))
	warm := os.Getenv("GPROXY_IDLE_WARM")
	if warm == "grpc" {
		closeAll, err := h2attack.IdleAfterCall(context.Background(), addr, n)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		defer closeAll()
		fmt.Println("ready")
		io.Copy(io.Discard, os.Stdin)
		return
	}
	conns := make([]net.Conn, 0, n)
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	for range n {
		c, err := net.DialTimeout("tcp", addr, 5*time.Second)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		conns = append(conns, c)
		if err := idleHandshake(c, warm == "healthz"); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
	}
	fmt.Println("ready")
	io.Copy(io.Discard, os.Stdin) // hold until the test closes stdin
}

// idleHandshake does the HTTP/2 handshake on c and, if warm, one GET
// /healthz, reading the whole response.
func idleHandshake(c net.Conn, warm bool) error {
	c.SetDeadline(time.Now().Add(10 * time.Second))
	defer c.SetDeadline(time.Time{})
	if _, err := io.WriteString(c, http2.ClientPreface); err != nil {
		return err
	}
	fr := http2.NewFramer(c, c)
	if err := fr.WriteSettings(); err != nil {
		return err
	}
	if warm {
		var hb bytes.Buffer
		enc := hpack.NewEncoder(&hb)
		for _, f := range []hpack.HeaderField{{Name: ":method", Value: "GET"}, {Name: ":scheme", Value: "http"},
			{Name: ":path", Value: "/healthz"}, {Name: ":authority", Value: "localhost"}, {Name: "user-agent", Value: "idle-test"}} {
			enc.WriteField(f)
		}
		if err := fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: hb.Bytes(), EndStream: true, EndHeaders: true}); err != nil {
			return err
		}
	}
	gotSettings, gotAck, gotEnd := false, false, !warm
	for !gotSettings || !gotAck || !gotEnd {
		f, err := fr.ReadFrame()
		if err != nil {
			return err
		}
		switch f := f.(type) {
		case *http2.SettingsFrame:
			if f.IsAck() {
				gotAck = true
			} else {
				gotSettings = true
				if err := fr.WriteSettingsAck(); err != nil {
					return err
				}
			}
		case *http2.HeadersFrame:
			gotEnd = gotEnd || f.StreamEnded()
		case *http2.DataFrame:
			gotEnd = gotEnd || f.StreamEnded()
		case *http2.GoAwayFrame:
			return fmt.Errorf("GOAWAY %v", f.ErrCode)
		}
	}
	return nil
}

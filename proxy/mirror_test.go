package proxy

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gproxy/gproxy/proxy/nginxtest"
)

// seen records the requests a backend got, as "METHOD PATH body=BODY".
type seen struct {
	mu   sync.Mutex
	reqs []string
}

func (s *seen) handler(reply string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		s.mu.Lock()
		s.reqs = append(s.reqs, fmt.Sprintf("%s %s body=%q", r.Method, r.URL.RequestURI(), b))
		s.mu.Unlock()
		io.WriteString(w, reply)
	}
}

func (s *seen) wait(t *testing.T, n int) []string {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		s.mu.Lock()
		got := append([]string(nil), s.reqs...)
		s.mu.Unlock()
		if len(got) >= n || time.Now().After(deadline) {
			return got
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestMirrorMatchesNginx: mirror sends a copy of each request (method,
// arguments, body) to the mirror location's upstream and drops its
// response; with mirror_request_body the body is read whole first, so
// $request_body has it; with it off the copy has no body. The same
// configuration through real nginx gives the same.
func TestMirrorMatchesNginx(t *testing.T) {
	conf := func(listen, main, shadow string) string {
		return fmt.Sprintf(`
    server {
        listen %s;
        location / {
            mirror /shadow;
            add_header X-Body $request_body;
            grpc_pass grpc://%s;
        }
        location /nobody {
            mirror /shadow;
            mirror_request_body off;
            grpc_pass grpc://%s;
        }
        location /shadow { internal; grpc_pass grpc://%s; }
    }
`, listen, main, main, shadow)
	}
	run := func(t *testing.T, start func(body string) string) {
		var main, shadow seen
		mainAddr := startH2C(t, main.handler("main\n"))
		shadowAddr := startH2C(t, shadow.handler("shadow\n"))
		addr := start(conf("{LISTEN}", mainAddr, shadowAddr))
		post := func(path string) (string, string) {
			res, err := http.Post("http://"+addr+path, "text/plain", strings.NewReader("Hello"))
			if err != nil {
				t.Fatal(err)
			}
			defer res.Body.Close()
			b, _ := io.ReadAll(res.Body)
			return string(b), res.Header.Get("X-Body")
		}
		if b, xb := post("/call?a=1"); b != "main\n" || xb != "Hello" {
			t.Errorf("response %q, X-Body %q; want main, Hello", b, xb)
		}
		if got := shadow.wait(t, 1); len(got) != 1 || got[0] != `POST /shadow?a=1 body="Hello"` {
			t.Errorf("mirror backend got %q", got)
		}
		if b, _ := post("/nobody"); b != "main\n" {
			t.Errorf("response %q", b)
		}
		if got := shadow.wait(t, 2); len(got) != 2 || got[1] != `POST /shadow body=""` {
			t.Errorf("mirror backend got %q, want the copy without body", got)
		}
		if got := main.wait(t, 2); len(got) != 2 || got[0] != `POST /call?a=1 body="Hello"` || got[1] != `POST /nobody body="Hello"` {
			t.Errorf("main backend got %q", got)
		}
	}
	t.Run("gproxy", func(t *testing.T) {
		run(t, func(body string) string {
			addr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
			startProxy(t, "events {}\nhttp {\n"+strings.Replace(body, "{LISTEN}", addr, 1)+"}\n")
			return addr
		})
	})
	t.Run("nginx", func(t *testing.T) {
		run(t, func(body string) string {
			_, addr := nginxtest.Start(t, "access_log off;\n"+strings.Replace(body, "{LISTEN}", "{ADDR}", 1))
			return addr
		})
	})
}

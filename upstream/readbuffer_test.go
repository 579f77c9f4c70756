package upstream

import (
	"testing"

	"github.com/gproxy/gproxy/parser/config"
	"github.com/gproxy/gproxy/proxy/h2"
)

// TestGroupReadBufferSize: grpc_buffer_size (GroupOptions.ReadBufferSize)
// becomes the read buffer of the group's connections; 0 keeps the codec's.
func TestGroupReadBufferSize(t *testing.T) {
	u := &config.Upstream{Name: "up", Servers: []config.UpstreamServer{{Address: "127.0.0.1:1"}}}
	for _, tc := range []struct{ opt, want int }{
		{0, h2.DefaultLimits().ReadBufferSize},
		{16 << 10, 16 << 10},
	} {
		set := NewSet(nil, h2.DefaultLimits())
		g, err := NewGroup(u, set, GroupOptions{ReadBufferSize: tc.opt})
		if err != nil {
			t.Fatal(err)
		}
		if got := g.Peers()[0].Pool.lim.ReadBufferSize; got != tc.want {
			t.Errorf("ReadBufferSize option %d: pool reads with %d bytes, want %d", tc.opt, got, tc.want)
		}
	}
}

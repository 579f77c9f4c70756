package proxy

import (
	"strings"
	"testing"
)

// BenchmarkUnaryDynamic: as BenchmarkUnaryMethods, for least_time and
// gproxy_outlier_detection beside round robin in the same run.
func BenchmarkUnaryDynamic(b *testing.B) {
	bes := []string{startH2Backend(b).ln.Addr().String(), startH2Backend(b).ln.Addr().String(), startH2Backend(b).ln.Addr().String()}
	for _, m := range []string{"round_robin", "least_time header", "least_time last_byte inflight", "gproxy_outlier_detection"} {
		b.Run(strings.ReplaceAll(m, " ", "_"), func(b *testing.B) {
			ups := strings.Join(bes, "; server ")
			if m != "round_robin" {
				ups += "; " + m
			}
			s := startBenchProxy(b, "access_log off;", ups)
			u := dialUnary(b, s.Addrs()[0].String())
			for range 3 {
				if err := u.call(); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				if err := u.call(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

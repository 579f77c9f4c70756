package main

import (
	"bufio"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"time"

	"golang.org/x/net/http2"
)

// idle opens -n HTTP/2 connections to -addr that finish the handshake
// (preface and SETTINGS both ways, ours acknowledged) and then stay silent,
// and reads the resident memory of process -pid before and after.
//
// Output: KiB of RSS growth per connection, RSS before (KiB), RSS after
// (KiB).
func idle(args []string) error {
	fs := flag.NewFlagSet("idle", flag.ExitOnError)
	addr := fs.String("addr", "", "proxy address")
	n := fs.Int("n", 1000, "connections")
	pid := fs.Int("pid", 0, "process whose RSS to read")
	settle := fs.Duration("settle", 500*time.Millisecond, "wait after the last handshake before reading RSS")
	_ = fs.Parse(args)
	if *addr == "" || *n <= 0 || *pid <= 0 {
		return errors.New("-addr, -pid and -n > 0 are required")
	}
	before, err := rssKiB(*pid)
	if err != nil {
		return err
	}
	conns := make([]net.Conn, 0, *n)
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	for i := range *n {
		c, err := net.DialTimeout("tcp", *addr, 5*time.Second)
		if err != nil {
			return fmt.Errorf("connection %d: %w", i+1, err)
		}
		conns = append(conns, c)
		if err := handshake(c); err != nil {
			return fmt.Errorf("connection %d: %w", i+1, err)
		}
	}
	time.Sleep(*settle)
	after, err := rssKiB(*pid)
	if err != nil {
		return err
	}
	fmt.Printf("%.2f %d %d\n", float64(after-before)/float64(*n), before, after)
	return nil
}

// handshake does the client side of an HTTP/2 connection start.
func handshake(c net.Conn) error {
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	defer c.SetDeadline(time.Time{})
	if _, err := io.WriteString(c, http2.ClientPreface); err != nil {
		return err
	}
	fr := http2.NewFramer(c, c)
	if err := fr.WriteSettings(); err != nil {
		return err
	}
	var gotSettings, gotAck bool
	for !gotSettings || !gotAck {
		f, err := fr.ReadFrame()
		if err != nil {
			return err
		}
		s, ok := f.(*http2.SettingsFrame)
		switch {
		case !ok:
		case s.IsAck():
			gotAck = true
		default:
			gotSettings = true
			if err := fr.WriteSettingsAck(); err != nil {
				return err
			}
		}
	}
	return nil
}

// rssKiB reads VmRSS of a process from /proc.
func rssKiB(pid int) (int, error) {
	f, err := os.Open("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			return strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(v), " kB"))
		}
	}
	return 0, fmt.Errorf("no VmRSS in /proc/%d/status", pid)
}

package upstream

import (
	"hash/crc32"
	"net"
	"slices"
	"strconv"
	"sync/atomic"

	"github.com/gproxy/gproxy/parser/config"
)

// Hash methods map a stream to a peer over every peer of the group, down
// and unavailable ones included, so that a peer going away moves only its
// own keys; when the mapped peer cannot take the stream they look again
// (rehash), up to 20 times, then fall back to round robin over the live
// peers, as nginx does. A retry (PickNext) replays the same sequence and
// skips the peers tried, which continues it where the first pick left it.

// weightedPeers is the peers of a tier with their weights laid end to end,
// the space nginx's hash and ip_hash index into.
type weightedPeers struct {
	all   []*Peer
	up    []bool
	total uint64
	rr    *rrPicker // the fallback
}

func newWeightedPeers(all []*Peer, up []bool) weightedPeers {
	w := weightedPeers{all: all, up: up, rr: newRRPicker(live(all, up))}
	for _, p := range all {
		w.total += uint64(p.Weight)
	}
	return w
}

// at returns the index of the peer whose weight span holds x.
func (w *weightedPeers) at(x uint64) int {
	x %= w.total
	i := 0
	for x >= uint64(w.all[i].Weight) {
		x -= uint64(w.all[i].Weight)
		i++
	}
	return i
}

// take acquires peer i if it may take the stream.
func (w *weightedPeers) take(i int, tried []*Peer) *Peer {
	if p := w.all[i]; w.up[i] && takes(p, tried) && p.acquire() {
		return p
	}
	return nil
}

// hashPicker is nginx's `hash KEY` (Cache::Memcached compatible): the
// weighted position of the sum of ((crc32([REHASH] KEY) >> 16) & 0x7fff)
// over the tries, REHASH being the try number from the second on.
type hashPicker struct{ weightedPeers }

func buildHash(b *config.Balance, all []*Peer, up []bool) picker {
	if b.Consistent {
		return newConsistentHash(all, up)
	}
	return &hashPicker{newWeightedPeers(all, up)}
}

// rehashPrefix[n] is the decimal text of n, the prefix of the key at the
// n-th rehash.
var rehashPrefix = func() (p [maxRehash + 1][]byte) {
	for i := range p {
		p[i] = strconv.AppendInt(nil, int64(i), 10)
	}
	return p
}()

func (pk *hashPicker) pick(info *StreamInfo, tried []*Peer) *Peer {
	if len(pk.all) < 2 || len(info.Key) == 0 {
		return pk.rr.pick(info, tried)
	}
	var sum uint64
	for rehash := 0; rehash <= maxRehash; rehash++ {
		var c uint32
		if rehash > 0 {
			c = crc32.Update(c, crc32.IEEETable, rehashPrefix[rehash])
		}
		c = crc32.Update(c, crc32.IEEETable, info.Key)
		sum += uint64((c >> 16) & 0x7fff)
		if p := pk.take(pk.at(sum), tried); p != nil {
			return p
		}
	}
	return pk.rr.pick(info, tried)
}

// ipHashPicker is nginx's ip_hash: the first three octets of a client's
// IPv4 address (the whole IPv6 address) hashed into the weighted peers;
// clients of one /24 go to the same peer.
type ipHashPicker struct{ weightedPeers }

func buildIPHash(_ *config.Balance, all []*Peer, up []bool) picker {
	return &ipHashPicker{newWeightedPeers(all, up)}
}

func (pk *ipHashPicker) pick(info *StreamInfo, tried []*Peer) *Peer {
	if len(pk.all) < 2 {
		return pk.rr.pick(info, tried)
	}
	addr := []byte{0, 0, 0} // not an IP (unix socket): nginx's pseudo address
	if a, ok := info.RemoteAddr.(*net.TCPAddr); ok {
		if ip4 := a.IP.To4(); ip4 != nil {
			addr = ip4[:3]
		} else if len(a.IP) == net.IPv6len {
			addr = a.IP
		}
	}
	h := uint64(89)
	for range maxRehash + 1 {
		for _, b := range addr {
			h = (h*113 + uint64(b)) % 6271
		}
		if p := pk.take(pk.at(h), tried); p != nil {
			return p
		}
	}
	return pk.rr.pick(info, tried)
}

// chashPicker is nginx's `hash KEY consistent` (ketama, compatible with
// Cache::Memcached::Fast): each peer puts weight*160 points on a ring of
// crc32 values, derived from its server's name (crc32 of HOST \0 PORT
// followed by the previous point); a key goes to the server of the first
// point at or after crc32(KEY), then to the following points' servers.
// Among several live addresses of one server name, the picks take turns.
type chashPicker struct {
	weightedPeers
	points []chashPoint
	// byServer lists, per server index of a point, the indexes in all of
	// the server's peers.
	byServer [][]int
	next     atomic.Uint64
}

type chashPoint struct {
	hash   uint32
	server int
}

// chashPointsPerWeight is nginx's 160 points per unit of weight.
const chashPointsPerWeight = 160

func newConsistentHash(all []*Peer, up []bool) *chashPicker {
	pk := &chashPicker{weightedPeers: newWeightedPeers(all, up)}
	names := map[string]int{}
	for i, p := range all {
		name := serverName(p)
		s, ok := names[name]
		if !ok {
			s = len(pk.byServer)
			names[name] = s
			pk.byServer = append(pk.byServer, nil)
		}
		pk.byServer[s] = append(pk.byServer[s], i)
		base := ketamaBase(name)
		var prev [4]byte
		for range p.Weight * chashPointsPerWeight {
			h := crc32.Update(base, crc32.IEEETable, prev[:])
			pk.points = append(pk.points, chashPoint{h, s})
			prev = [4]byte{byte(h), byte(h >> 8), byte(h >> 16), byte(h >> 24)}
		}
	}
	slices.SortStableFunc(pk.points, func(a, b chashPoint) int { return int(int64(a.hash) - int64(b.hash)) })
	pk.points = slices.CompactFunc(pk.points, func(a, b chashPoint) bool { return a.hash == b.hash })
	return pk
}

// serverName is the name a consistent-hash peer's points derive from: its
// server line's address ("host:port", "unix:/path").
func serverName(p *Peer) string {
	if p.Server != nil {
		return p.Server.Address
	}
	return p.Addr
}

// ketamaBase is the crc32 state after HOST \0 PORT: a name ending in
// ":digits" splits there; unix sockets and names without a port hash
// whole with an empty port.
func ketamaBase(name string) uint32 {
	host, port := name, ""
	if len(name) >= 5 && (name[:5] == "unix:" || name[:5] == "UNIX:") {
		host = name[5:]
	} else {
		for j := len(name) - 1; j >= 0; j-- {
			c := name[j]
			if c == ':' {
				host, port = name[:j], name[j+1:]
				break
			}
			if c < '0' || c > '9' {
				break
			}
		}
	}
	c := crc32.Update(0, crc32.IEEETable, []byte(host))
	c = crc32.Update(c, crc32.IEEETable, []byte{0})
	return crc32.Update(c, crc32.IEEETable, []byte(port))
}

func (pk *chashPicker) pick(info *StreamInfo, tried []*Peer) *Peer {
	if len(pk.all) < 2 || len(info.Key) == 0 || len(pk.points) == 0 {
		return pk.rr.pick(info, tried)
	}
	h := crc32.ChecksumIEEE(info.Key)
	i, _ := slices.BinarySearchFunc(pk.points, h, func(p chashPoint, h uint32) int {
		return int(int64(p.hash) - int64(h))
	})
	for range maxRehash + 1 {
		if p := pk.takeServer(pk.points[i%len(pk.points)].server, tried); p != nil {
			return p
		}
		i++
	}
	return pk.rr.pick(info, tried)
}

// takeServer acquires one of server s's peers that may take the stream,
// starting at a rotating position.
func (pk *chashPicker) takeServer(s int, tried []*Peer) *Peer {
	idx := pk.byServer[s]
	if len(idx) == 1 {
		return pk.take(idx[0], tried)
	}
	n := pk.next.Add(1) - 1
	for k := range idx {
		if p := pk.take(idx[(n+uint64(k))%uint64(len(idx))], tried); p != nil {
			return p
		}
	}
	return nil
}

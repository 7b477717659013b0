package network

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"strings"
	"sync"
	"time"

	"golang.org/x/net/dns/dnsmessage"
)

// Lookup returns the addresses a name has on a network (the containers'
// names, aliases and short IDs), none when the network does not know it.
type Lookup func(name string) []netip.Addr

// Answer makes the reply to a DNS query of a container: the addresses of
// a name the network knows (A records; no AAAA, the networks being
// IPv4-only), or forward set when the query is for a name it does not
// know and should go to the host's resolvers. A message that is not a
// single-question query gets an error (FORMERR or NOTIMP) when it can be
// answered at all, nothing when not even its header can be read. It does
// no I/O: it decodes what any container sends, and is fuzzed.
func Answer(query []byte, lookup Lookup) (reply []byte, forward bool) {
	var p dnsmessage.Parser
	h, err := p.Start(query)
	if err != nil || h.Response {
		return nil, false
	}
	q, err := p.Question()
	if err != nil {
		return errorReply(h, nil, dnsmessage.RCodeFormatError), false
	}
	if h.OpCode != 0 {
		return errorReply(h, &q, dnsmessage.RCodeNotImplemented), false
	}
	if _, err := p.Question(); !errors.Is(err, dnsmessage.ErrSectionDone) {
		return errorReply(h, &q, dnsmessage.RCodeFormatError), false
	}
	name := strings.TrimSuffix(strings.ToLower(q.Name.String()), ".")
	if q.Class != dnsmessage.ClassINET && q.Class != dnsmessage.ClassANY {
		return nil, true
	}
	addrs := lookup(name)
	if len(addrs) == 0 {
		return nil, true
	}
	rh := dnsmessage.Header{ID: h.ID, Response: true, Authoritative: true, RecursionDesired: h.RecursionDesired, RecursionAvailable: true}
	b := dnsmessage.NewBuilder(make([]byte, 0, 512), rh)
	b.EnableCompression()
	if err := b.StartQuestions(); err != nil {
		return nil, false
	}
	if err := b.Question(q); err != nil {
		return nil, false
	}
	if err := b.StartAnswers(); err != nil {
		return nil, false
	}
	if q.Type == dnsmessage.TypeA || q.Type == dnsmessage.TypeALL {
		for _, a := range addrs {
			if !a.Is4() {
				continue
			}
			if err := b.AResource(dnsmessage.ResourceHeader{Name: q.Name, Class: dnsmessage.ClassINET, TTL: 600}, dnsmessage.AResource{A: a.As4()}); err != nil {
				return nil, false
			}
		}
	}
	out, err := b.Finish()
	if err != nil {
		return nil, false
	}
	return out, false
}

// errorReply answers a query with an error code, echoing its question
// when it had one that could be read.
func errorReply(h dnsmessage.Header, q *dnsmessage.Question, rcode dnsmessage.RCode) []byte {
	rh := dnsmessage.Header{ID: h.ID, Response: true, OpCode: h.OpCode, RecursionDesired: h.RecursionDesired, RCode: rcode}
	b := dnsmessage.NewBuilder(nil, rh)
	if q != nil {
		if b.StartQuestions() != nil || b.Question(*q) != nil {
			return nil
		}
	}
	out, err := b.Finish()
	if err != nil {
		return nil
	}
	return out
}

// servfail answers a query the upstream resolvers could not.
func servfail(query []byte) []byte {
	var p dnsmessage.Parser
	h, err := p.Start(query)
	if err != nil {
		return nil
	}
	q, err := p.Question()
	if err != nil {
		return errorReply(h, nil, dnsmessage.RCodeServerFailure)
	}
	return errorReply(h, &q, dnsmessage.RCodeServerFailure)
}

// Upstreams reads the nameservers of a resolv.conf.
func Upstreams(r io.Reader) []netip.AddrPort {
	var out []netip.AddrPort
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) >= 2 && f[0] == "nameserver" {
			if a, err := netip.ParseAddr(f[1]); err == nil {
				out = append(out, netip.AddrPortFrom(a.Unmap(), 53))
			}
		}
	}
	return out
}

// dnsServer answers the containers of one network on its gateway's port
// 53 (UDP), forwarding the names it does not know to the host's
// resolvers.
type dnsServer struct {
	conn   *net.UDPConn
	lookup Lookup
	log    *slog.Logger
	wg     sync.WaitGroup
	// forwards bounds the queries being forwarded at once; beyond it a
	// query is dropped (the client retries), so a container flooding the
	// server cannot make it hold unbounded goroutines and sockets.
	forwards chan struct{}
}

// maxForwards is how many forwarded queries a network's server has in
// flight at most.
const maxForwards = 64

// forwardTimeout bounds a forwarded query: a host whose resolvers cannot
// be reached answers SERVFAIL quickly rather than leaving the container's
// resolver to time out.
const forwardTimeout = 2 * time.Second

func startDNS(addr netip.Addr, lookup Lookup, log *slog.Logger) (*dnsServer, error) {
	conn, err := net.ListenUDP("udp4", net.UDPAddrFromAddrPort(netip.AddrPortFrom(addr, 53)))
	if err != nil {
		return nil, fmt.Errorf("embedded DNS server on %s: %w", addr, err)
	}
	s := &dnsServer{conn: conn, lookup: lookup, log: log, forwards: make(chan struct{}, maxForwards)}
	s.wg.Add(1)
	go s.serve()
	return s, nil
}

func (s *dnsServer) serve() {
	defer s.wg.Done()
	buf := make([]byte, 65535)
	for {
		n, from, err := s.conn.ReadFromUDPAddrPort(buf)
		if err != nil {
			return // closed
		}
		q := append([]byte(nil), buf[:n]...)
		reply, forward := Answer(q, s.lookup)
		if forward {
			select {
			case s.forwards <- struct{}{}:
			default:
				s.log.Debug("DNS query dropped: too many forwarded at once")
				continue
			}
			s.wg.Add(1)
			go func() {
				defer s.wg.Done()
				defer func() { <-s.forwards }()
				ctx, cancel := context.WithTimeout(context.Background(), forwardTimeout)
				defer cancel()
				r := forwardQuery(ctx, q)
				if r == nil {
					r = servfail(q)
				}
				if r != nil {
					s.conn.WriteToUDPAddrPort(r, from)
				}
			}()
			continue
		}
		if reply != nil {
			s.conn.WriteToUDPAddrPort(reply, from)
		}
	}
}

func (s *dnsServer) close() {
	s.conn.Close()
	s.wg.Wait()
}

// forwardQuery asks the host's resolvers in turn, within ctx.
func forwardQuery(ctx context.Context, q []byte) []byte {
	f, err := os.Open("/etc/resolv.conf")
	if err != nil {
		return nil
	}
	ups := Upstreams(f)
	f.Close()
	for _, up := range ups {
		if ctx.Err() != nil {
			return nil
		}
		var d net.Dialer
		c, err := d.DialContext(ctx, "udp", up.String())
		if err != nil {
			continue
		}
		deadline, _ := ctx.Deadline()
		c.SetDeadline(deadline)
		if _, err := c.Write(q); err == nil {
			buf := make([]byte, 65535)
			if n, err := c.Read(buf); err == nil {
				c.Close()
				return buf[:n]
			}
		}
		c.Close()
	}
	return nil
}

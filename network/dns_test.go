package network

import (
	"net/netip"
	"strings"
	"testing"

	"golang.org/x/net/dns/dnsmessage"
)

func query(t testing.TB, name string, typ dnsmessage.Type) []byte {
	t.Helper()
	b := dnsmessage.NewBuilder(nil, dnsmessage.Header{ID: 4242, RecursionDesired: true})
	b.StartQuestions()
	if err := b.Question(dnsmessage.Question{Name: dnsmessage.MustNewName(name), Type: typ, Class: dnsmessage.ClassINET}); err != nil {
		t.Fatal(err)
	}
	m, err := b.Finish()
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func testLookup(name string) []netip.Addr {
	switch name {
	case "web", "db":
		return []netip.Addr{netip.MustParseAddr("10.1.0.2")}
	case "pair":
		return []netip.Addr{netip.MustParseAddr("10.1.0.3"), netip.MustParseAddr("10.1.0.4")}
	}
	return nil
}

func TestAnswer(t *testing.T) {
	cases := []struct {
		name    string
		typ     dnsmessage.Type
		forward bool
		want    []string
	}{
		{"web.", dnsmessage.TypeA, false, []string{"10.1.0.2"}},
		{"WEB.", dnsmessage.TypeA, false, []string{"10.1.0.2"}}, // names are case-insensitive
		{"db.", dnsmessage.TypeA, false, []string{"10.1.0.2"}},
		{"pair.", dnsmessage.TypeA, false, []string{"10.1.0.3", "10.1.0.4"}},
		{"web.", dnsmessage.TypeAAAA, false, nil}, // known name, no IPv6: empty NOERROR
		{"example.com.", dnsmessage.TypeA, true, nil},
	}
	for _, c := range cases {
		reply, forward := Answer(query(t, c.name, c.typ), testLookup)
		if forward != c.forward {
			t.Errorf("%s %v: forward %v", c.name, c.typ, forward)
			continue
		}
		if forward {
			if reply != nil {
				t.Errorf("%s: a reply and a forward", c.name)
			}
			continue
		}
		var p dnsmessage.Parser
		h, err := p.Start(reply)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if !h.Response || h.ID != 4242 || h.RCode != dnsmessage.RCodeSuccess || !h.Authoritative {
			t.Errorf("%s: header %+v", c.name, h)
		}
		q, err := p.Question()
		if err != nil || !strings.EqualFold(q.Name.String(), c.name) {
			t.Errorf("%s: question %v, %v", c.name, q, err)
		}
		p.SkipAllQuestions()
		var got []string
		for {
			rh, err := p.AnswerHeader()
			if err != nil {
				break
			}
			a, err := p.AResource()
			if err != nil {
				t.Fatalf("%s: %v", c.name, err)
			}
			if rh.TTL == 0 {
				t.Errorf("%s: TTL 0", c.name)
			}
			got = append(got, netip.AddrFrom4(a.A).String())
		}
		if strings.Join(got, ",") != strings.Join(c.want, ",") {
			t.Errorf("%s %v: answers %v, want %v", c.name, c.typ, got, c.want)
		}
	}
}

func TestAnswerMalformed(t *testing.T) {
	// Not even a header: dropped.
	if r, f := Answer([]byte{1, 2, 3}, testLookup); r != nil || f {
		t.Fatalf("short message: %v %v", r, f)
	}
	// A response is never answered (no loops between resolvers).
	resp := query(t, "web.", dnsmessage.TypeA)
	resp[2] |= 0x80
	if r, f := Answer(resp, testLookup); r != nil || f {
		t.Fatalf("response: %v %v", r, f)
	}
	// A header without its question: FORMERR.
	q := query(t, "web.", dnsmessage.TypeA)
	r, _ := Answer(q[:12], testLookup)
	var p dnsmessage.Parser
	if h, err := p.Start(r); err != nil || h.RCode != dnsmessage.RCodeFormatError || h.ID != 4242 {
		t.Fatalf("truncated: %+v %v", h, err)
	}
	if s := servfail(query(t, "example.com.", dnsmessage.TypeA)); s == nil {
		t.Fatal("no SERVFAIL")
	} else if h, _ := new(dnsmessage.Parser).Start(s); h.RCode != dnsmessage.RCodeServerFailure {
		t.Fatalf("SERVFAIL rcode %v", h.RCode)
	}
}

func TestUpstreams(t *testing.T) {
	got := Upstreams(strings.NewReader("# comment\nsearch example.com\nnameserver 10.255.255.53\nnameserver ::1\nnameserver bogus\noptions ndots:2\n"))
	if len(got) != 2 || got[0].String() != "10.255.255.53:53" || got[1].String() != "[::1]:53" {
		t.Fatalf("Upstreams = %v", got)
	}
}

// FuzzAnswer feeds the DNS server's decoder what a container could send.
func FuzzAnswer(f *testing.F) {
	f.Add(query(f, "web.", dnsmessage.TypeA))
	f.Add(query(f, "example.com.", dnsmessage.TypeAAAA))
	f.Add(query(f, "pair.", dnsmessage.TypeALL))
	f.Add([]byte{})
	f.Add(make([]byte, 12))
	f.Fuzz(func(t *testing.T, msg []byte) {
		reply, forward := Answer(msg, testLookup)
		if reply != nil && forward {
			t.Fatal("a reply and a forward")
		}
		if reply != nil {
			var p dnsmessage.Parser
			h, err := p.Start(reply)
			if err != nil {
				t.Fatalf("unparsable reply: %v", err)
			}
			if !h.Response {
				t.Fatal("reply is not a response")
			}
		}
		servfail(msg)
	})
}

package cli

import (
	"net"
	"testing"
)

func TestIsLocalIP(t *testing.T) {
	mine := []net.IP{net.ParseIP("192.0.2.2"), net.ParseIP("2001:db8::2")}
	for _, c := range []struct {
		ip   string
		want bool
	}{
		{"127.0.0.1", true},
		{"127.0.0.60", true}, // all of 127/8 is this machine's
		{"::1", true},
		{"192.0.2.2", true},
		{"2001:db8::2", true},
		{"192.0.2.3", false},
		{"10.0.0.1", false},
	} {
		if got := isLocalIP(net.ParseIP(c.ip), mine); got != c.want {
			t.Errorf("isLocalIP(%s) = %v, want %v", c.ip, got, c.want)
		}
	}
}

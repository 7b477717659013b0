package pool_test

import (
	"crypto/sha256"
	"encoding/base32"
	"encoding/hex"
	"errors"
	"net"
	"strings"
	"testing"

	"github.com/cais-platform/cais/pool"
)

func fingerprint(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

func newToken(t *testing.T) pool.Token {
	t.Helper()
	secret, err := pool.NewSecret()
	if err != nil {
		t.Fatal(err)
	}
	return pool.Token{CAFingerprint: fingerprint("ca"), Secret: secret}
}

func TestNewSecret(t *testing.T) {
	seen := map[string]bool{}
	for range 50 {
		s, err := pool.NewSecret()
		if err != nil {
			t.Fatal(err)
		}
		if len(s) != 32 || s != strings.ToLower(s) {
			t.Fatalf("secret %q is not 32 lower-case characters", s)
		}
		if b, err := base32.StdEncoding.DecodeString(strings.ToUpper(s)); err != nil || len(b) != 20 {
			t.Fatalf("secret %q is not 20 bytes of base32: %v", s, err)
		}
		if seen[s] {
			t.Fatalf("secret %q repeated", s)
		}
		seen[s] = true
	}
}

func TestTokenRoundTrip(t *testing.T) {
	tok := newToken(t)
	s := tok.String()
	if !strings.HasPrefix(s, "CAIS1-"+tok.CAFingerprint+"-") {
		t.Errorf("String() = %q", s)
	}
	for _, in := range []string{s, "  " + s + "\n", strings.ToUpper(s), "CAIS1-" + strings.ToUpper(tok.CAFingerprint) + "-" + tok.Secret} {
		got, err := pool.ParseToken(in)
		if err != nil {
			t.Fatalf("ParseToken(%q) = %v", in, err)
		}
		if got != tok {
			t.Errorf("ParseToken(%q) = %+v, want %+v", in, got, tok)
		}
	}
}

func TestParseTokenMalformed(t *testing.T) {
	tok := newToken(t)
	fp, secret := tok.CAFingerprint, tok.Secret
	shortSecret := strings.ToLower(base32.StdEncoding.EncodeToString(make([]byte, 10)))
	tests := []struct {
		name string
		in   string
	}{
		{"empty", ""},
		{"wrong prefix", "CAIS2-" + fp + "-" + secret},
		{"lower-case prefix", "cais1-" + fp + "-" + secret},
		{"no prefix", fp + "-" + secret},
		{"missing secret", "CAIS1-" + fp},
		{"extra part", "CAIS1-" + fp + "-" + secret + "-x"},
		{"empty extra part", "CAIS1-" + fp + "-" + secret + "-"},
		{"short fingerprint", "CAIS1-" + fp[:62] + "-" + secret},
		{"long fingerprint", "CAIS1-" + fp + "00-" + secret},
		{"odd fingerprint", "CAIS1-" + fp[:63] + "-" + secret},
		{"non-hex fingerprint", "CAIS1-" + "zz" + fp[2:] + "-" + secret},
		{"short secret", "CAIS1-" + fp + "-" + shortSecret},
		{"long secret", "CAIS1-" + fp + "-" + secret + "aaaaaaaa"},
		{"bad base32", "CAIS1-" + fp + "-" + "1" + secret[1:]},
		{"padded secret", "CAIS1-" + fp + "-" + secret[:24] + "========"},
		{"empty secret", "CAIS1-" + fp + "-"},
		{"space inside", "CAIS1-" + fp + "- " + secret},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := pool.ParseToken(tt.in)
			if !errors.Is(err, pool.ErrBadToken) {
				t.Fatalf("ParseToken(%q) = %+v, %v; want ErrBadToken", tt.in, got, err)
			}
			if got != (pool.Token{}) {
				t.Errorf("ParseToken returned %+v with its error", got)
			}
		})
	}
}

// TestParseTokenLineBreakInSecret: base32 decoding skips CR and LF, so a
// token broken over two lines parses with the line break kept in Secret,
// which then never matches the pool's secret.
func TestParseTokenLineBreakInSecret(t *testing.T) {
	tok := newToken(t)
	in := "CAIS1-" + tok.CAFingerprint + "-" + tok.Secret[:16] + "\n" + tok.Secret[16:]
	got, err := pool.ParseToken(in)
	if err == nil && got != tok {
		t.Errorf("ParseToken(%q) = %+v; want ErrBadToken or %+v", in, got, tok)
	}
}

func TestProof(t *testing.T) {
	secret := newToken(t).Secret
	const uuid = "6f1c2d3e-0000-4000-8000-000000000001"
	csr := []byte("-----BEGIN CERTIFICATE REQUEST-----\nMIIB\n-----END CERTIFICATE REQUEST-----\n")
	p := pool.Proof(secret, uuid, csr)
	if len(p) != 64 {
		t.Fatalf("proof %q is not 64 hex digits", p)
	}
	if _, err := hex.DecodeString(p); err != nil {
		t.Fatalf("proof %q is not hex: %v", p, err)
	}
	if p != pool.Proof(secret, uuid, csr) {
		t.Error("Proof is not deterministic")
	}
	if !pool.CheckProof(secret, uuid, csr, p) {
		t.Error("CheckProof refuses a proof made with the right secret")
	}
	if !pool.CheckProof(secret, uuid, csr, strings.ToUpper(p)) {
		t.Error("CheckProof refuses an upper-case proof")
	}
	other := newToken(t).Secret
	flipped := append([]byte(nil), csr...)
	flipped[len(flipped)/2] ^= 1
	tests := []struct {
		name   string
		secret string
		uuid   string
		csr    []byte
		proof  string
	}{
		{"wrong secret", other, uuid, csr, p},
		{"empty secret", "", uuid, csr, p},
		{"wrong uuid", secret, "6f1c2d3e-0000-4000-8000-000000000002", csr, p},
		{"one csr byte changed", secret, uuid, flipped, p},
		{"csr truncated", secret, uuid, csr[:len(csr)-1], p},
		{"proof truncated", secret, uuid, csr, p[:63]},
		{"empty proof", secret, uuid, csr, ""},
		// The separator keeps uuid and request apart: moving bytes from
		// one to the other must change the proof.
		{"uuid/csr boundary moved", secret, uuid[:len(uuid)-1], append([]byte(uuid[len(uuid)-1:]), csr...), p},
	}
	for _, tt := range tests {
		if pool.CheckProof(tt.secret, tt.uuid, tt.csr, tt.proof) {
			t.Errorf("%s: CheckProof accepted", tt.name)
		}
	}
	if pool.Proof(other, uuid, csr) == p {
		t.Error("two secrets give the same proof")
	}
}

func TestSameSecret(t *testing.T) {
	a, b := newToken(t).Secret, newToken(t).Secret
	if !pool.SameSecret(a, a) || !pool.SameSecret(a, strings.Clone(a)) {
		t.Error("SameSecret(a, a) = false")
	}
	if pool.SameSecret(a, b) || pool.SameSecret(a, a[:31]) || pool.SameSecret(a, "") {
		t.Error("SameSecret of different secrets = true")
	}
}

func TestMatchAddr(t *testing.T) {
	type member struct{ name, addr string }
	members := []member{
		{"n1", "10.0.0.1"},
		{"bad", "not-an-ip"},
		{"n2", "10.0.0.2"},
		{"n3", "2001:db8::3"},
		{"n2-again", "10.0.0.2"},
	}
	addr := func(m member) string { return m.addr }
	tests := []struct {
		name string
		ips  []net.IP
		want string // "" means no match
	}{
		{"first member", []net.IP{net.ParseIP("10.0.0.1")}, "n1"},
		{"first of equal members", []net.IP{net.ParseIP("10.0.0.2")}, "n2"},
		{"ipv6", []net.IP{net.ParseIP("2001:db8::3")}, "n3"},
		{"ipv4 in 16-byte form", []net.IP{net.ParseIP("::ffff:10.0.0.1")}, "n1"},
		{"ip order wins over member order", []net.IP{net.ParseIP("10.0.0.9"), net.ParseIP("10.0.0.2"), net.ParseIP("10.0.0.1")}, "n2"},
		{"no match", []net.IP{net.ParseIP("10.0.0.9")}, ""},
		{"no ips", nil, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := pool.MatchAddr(members, tt.ips, addr)
			if tt.want == "" {
				if ok || got != (member{}) {
					t.Errorf("MatchAddr = %+v, %v; want no match", got, ok)
				}
				return
			}
			if !ok || got.name != tt.want {
				t.Errorf("MatchAddr = %+v, %v; want %s", got, ok, tt.want)
			}
		})
	}
	if _, ok := pool.MatchAddr([]member(nil), []net.IP{net.ParseIP("10.0.0.1")}, addr); ok {
		t.Error("MatchAddr over no members matched")
	}
}

func FuzzParseToken(f *testing.F) {
	fp := fingerprint("ca")
	secret := strings.ToLower(base32.StdEncoding.EncodeToString([]byte("0123456789abcdefghij")))
	good := "CAIS1-" + fp + "-" + secret
	for _, s := range []string{
		good, strings.ToUpper(good), " " + good + "\n", "", "CAIS1", "CAIS1--", "CAIS1-" + fp,
		"CAIS1-" + fp + "-" + secret + "-", "CAIS2-" + fp + "-" + secret, "CAIS1-" + fp[:10] + "-" + secret,
		"CAIS1-" + fp + "-" + secret[:24] + "========", "CAIS1-" + fp + "-" + secret[:16] + "\r\n" + secret[16:],
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		tok, err := pool.ParseToken(s)
		if err != nil {
			if !errors.Is(err, pool.ErrBadToken) {
				t.Fatalf("ParseToken(%q) = %v, which does not wrap ErrBadToken", s, err)
			}
			return
		}
		if b, err := hex.DecodeString(tok.CAFingerprint); err != nil || len(b) != sha256.Size || tok.CAFingerprint != strings.ToLower(tok.CAFingerprint) {
			t.Fatalf("ParseToken(%q) accepted fingerprint %q", s, tok.CAFingerprint)
		}
		again, err := pool.ParseToken(tok.String())
		if err != nil {
			t.Fatalf("ParseToken(%q) = %+v, but its String %q does not parse: %v", s, tok, tok.String(), err)
		}
		if again != tok {
			t.Fatalf("round trip changed the token: %+v, then %+v", tok, again)
		}
	})
}

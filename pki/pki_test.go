package pki_test

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"testing"
	"time"

	"github.com/cais-platform/cais/pki"
)

func newCA(t *testing.T, poolID string) *pki.CA {
	t.Helper()
	ca, err := pki.NewCA(poolID)
	if err != nil {
		t.Fatal(err)
	}
	return ca
}

// issued is a key and the certificate a CA issued for it.
type issued struct {
	key     *ecdsa.PrivateKey
	keyPEM  []byte
	certPEM []byte
	cert    *x509.Certificate
}

func issue(t *testing.T, ca *pki.CA, id pki.Identity, validity time.Duration) issued {
	t.Helper()
	key, err := pki.NewKey()
	if err != nil {
		t.Fatal(err)
	}
	certPEM, err := ca.Issue(key.Public(), id, validity)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := pki.ParseCert(certPEM)
	if err != nil {
		t.Fatal(err)
	}
	keyPEM, err := pki.EncodeKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return issued{key: key, keyPEM: keyPEM, certPEM: certPEM, cert: cert}
}

var hex64 = regexp.MustCompile(`^[0-9a-f]{64}$`)

func TestNewCA(t *testing.T) {
	ca := newCA(t, "pool-1")
	c := ca.Cert
	if !c.IsCA || !c.BasicConstraintsValid {
		t.Error("CA certificate is not a CA")
	}
	if c.MaxPathLen != 0 || !c.MaxPathLenZero {
		t.Errorf("CA may sign intermediates: MaxPathLen %d, zero %v", c.MaxPathLen, c.MaxPathLenZero)
	}
	if c.KeyUsage&x509.KeyUsageCertSign == 0 {
		t.Error("CA certificate cannot sign certificates")
	}
	if c.Subject.CommonName != "cais pool CA pool-1" {
		t.Errorf("CA common name %q", c.Subject.CommonName)
	}
	if err := c.CheckSignatureFrom(c); err != nil {
		t.Errorf("CA is not self-signed: %v", err)
	}
	if now := time.Now(); now.Before(c.NotBefore) || now.After(c.NotAfter) || c.NotAfter.Before(now.AddDate(19, 0, 0)) {
		t.Errorf("CA validity %v to %v", c.NotBefore, c.NotAfter)
	}
	if !pki.SamePublicKey(ca.Key.Public(), c.PublicKey) {
		t.Error("CA key does not match its certificate")
	}
	again, err := pki.ParseCA(ca.CertPEM, ca.KeyPEM)
	if err != nil {
		t.Fatal(err)
	}
	if !again.Cert.Equal(ca.Cert) || !pki.SamePublicKey(again.Key.Public(), ca.Key.Public()) {
		t.Error("ParseCA of the CA's own PEM gives another CA")
	}
	if other := newCA(t, "pool-1"); other.Cert.SerialNumber.Cmp(ca.Cert.SerialNumber) == 0 {
		t.Error("two CAs share a serial number")
	}
}

func TestParseCAErrors(t *testing.T) {
	ca := newCA(t, "p")
	if _, err := pki.ParseCA(ca.KeyPEM, ca.KeyPEM); !errors.Is(err, pki.ErrBadPEM) {
		t.Errorf("ParseCA with a key as certificate = %v, want ErrBadPEM", err)
	}
	if _, err := pki.ParseCA(ca.CertPEM, ca.CertPEM); !errors.Is(err, pki.ErrBadPEM) {
		t.Errorf("ParseCA with a certificate as key = %v, want ErrBadPEM", err)
	}
	if _, err := pki.ParseCA(nil, ca.KeyPEM); !errors.Is(err, pki.ErrBadPEM) {
		t.Errorf("ParseCA without certificate = %v, want ErrBadPEM", err)
	}
}

func TestIssue(t *testing.T) {
	ca := newCA(t, "p")
	tests := []struct {
		name string
		id   pki.Identity
	}{
		{"node", pki.Identity{CommonName: "6f1c2d3e-node", Role: pki.RoleNode, IPs: []net.IP{net.ParseIP("10.0.0.1").To4()}, DNSNames: []string{"server1"}}},
		{"admin", pki.Identity{CommonName: "alice", Role: pki.RoleAdmin}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := issue(t, ca, tt.id, time.Hour)
			if got := pki.RoleOf(c.cert); got != tt.id.Role {
				t.Errorf("RoleOf = %q, want %q", got, tt.id.Role)
			}
			if c.cert.Subject.CommonName != tt.id.CommonName {
				t.Errorf("CN = %q", c.cert.Subject.CommonName)
			}
			if len(c.cert.IPAddresses) != len(tt.id.IPs) || (len(tt.id.IPs) > 0 && !c.cert.IPAddresses[0].Equal(tt.id.IPs[0])) {
				t.Errorf("IPs = %v, want %v", c.cert.IPAddresses, tt.id.IPs)
			}
			if len(tt.id.DNSNames) > 0 {
				if err := c.cert.VerifyHostname(tt.id.DNSNames[0]); err != nil {
					t.Errorf("VerifyHostname: %v", err)
				}
			}
			if c.cert.IsCA {
				t.Error("an issued certificate is a CA")
			}
			if !pki.SamePublicKey(c.cert.PublicKey, c.key.Public()) {
				t.Error("issued certificate carries another key")
			}
			if err := c.cert.CheckSignatureFrom(ca.Cert); err != nil {
				t.Errorf("not signed by the CA: %v", err)
			}
			// Good for both ends of a connection.
			for _, u := range []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth} {
				if _, err := c.cert.Verify(x509.VerifyOptions{Roots: ca.Pool(), KeyUsages: []x509.ExtKeyUsage{u}}); err != nil {
					t.Errorf("verify for usage %v: %v", u, err)
				}
			}
			if d := time.Until(c.cert.NotAfter); d < 50*time.Minute || d > 61*time.Minute {
				t.Errorf("certificate valid for %v more, want about an hour", d)
			}
		})
	}
}

func TestRoleOf(t *testing.T) {
	if got := pki.RoleOf(&x509.Certificate{}); got != "" {
		t.Errorf("RoleOf of a certificate without OU = %q", got)
	}
	ca := newCA(t, "p")
	if got := pki.RoleOf(ca.Cert); got != "" {
		t.Errorf("RoleOf(CA) = %q, want none", got)
	}
}

func TestFingerprint(t *testing.T) {
	ca := newCA(t, "p")
	fp := pki.Fingerprint(ca.Cert)
	if !hex64.MatchString(fp) {
		t.Fatalf("fingerprint %q is not 64 lower-case hex digits", fp)
	}
	block, _ := pem.Decode(ca.CertPEM)
	sum := sha256.Sum256(block.Bytes)
	if fp != hex.EncodeToString(sum[:]) {
		t.Error("fingerprint is not the SHA-256 of the certificate's DER")
	}
	again, err := pki.ParseCert(ca.CertPEM)
	if err != nil {
		t.Fatal(err)
	}
	if pki.Fingerprint(again) != fp {
		t.Error("fingerprint changes when the certificate is parsed again")
	}
	if pki.Fingerprint(newCA(t, "p").Cert) == fp {
		t.Error("two CAs have the same fingerprint")
	}
}

func TestVerifyChain(t *testing.T) {
	ca, other := newCA(t, "p"), newCA(t, "q")
	node := issue(t, ca, pki.Identity{CommonName: "n", Role: pki.RoleNode}, time.Hour)
	if err := pki.VerifyChain(node.cert, ca.CertPEM); err != nil {
		t.Errorf("VerifyChain with the issuing CA: %v", err)
	}
	if err := pki.VerifyChain(node.cert, other.CertPEM); err == nil {
		t.Error("VerifyChain accepted another pool's CA")
	}
	if err := pki.VerifyChain(node.cert, []byte("garbage")); !errors.Is(err, pki.ErrBadPEM) {
		t.Errorf("VerifyChain with a bad CA PEM = %v, want ErrBadPEM", err)
	}
	expired := issue(t, ca, pki.Identity{CommonName: "old", Role: pki.RoleNode}, -time.Minute)
	if err := pki.VerifyChain(expired.cert, ca.CertPEM); err == nil {
		t.Error("VerifyChain accepted an expired certificate")
	}
	self, err := pki.SelfSigned(node.key, "n")
	if err != nil {
		t.Fatal(err)
	}
	selfCert, _ := x509.ParseCertificate(self.Certificate[0])
	if err := pki.VerifyChain(selfCert, ca.CertPEM); err == nil {
		t.Error("VerifyChain accepted a self-signed certificate")
	}
}

func TestCSR(t *testing.T) {
	key, err := pki.NewKey()
	if err != nil {
		t.Fatal(err)
	}
	csrPEM, err := pki.CSR(key, "joining-node")
	if err != nil {
		t.Fatal(err)
	}
	csr, err := pki.ParseCSR(csrPEM)
	if err != nil {
		t.Fatalf("ParseCSR of a fresh CSR: %v", err)
	}
	if csr.Subject.CommonName != "joining-node" {
		t.Errorf("CSR CN = %q", csr.Subject.CommonName)
	}
	if !pki.SamePublicKey(csr.PublicKey, key.Public()) {
		t.Error("CSR carries another key")
	}

	block, _ := pem.Decode(csrPEM)
	// Flip a byte of the signed part (the CN) and of the signature.
	for _, at := range []int{bytes.Index(block.Bytes, []byte("joining-node")), len(block.Bytes) - 5} {
		der := bytes.Clone(block.Bytes)
		der[at] ^= 0x01
		tampered := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der})
		if _, err := pki.ParseCSR(tampered); err == nil {
			t.Errorf("ParseCSR accepted a CSR with byte %d changed", at)
		}
	}
	if _, err := pki.ParseCSR(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: block.Bytes})); !errors.Is(err, pki.ErrBadPEM) {
		t.Errorf("ParseCSR of a wrongly labelled block = %v, want ErrBadPEM", err)
	}
	if _, err := pki.ParseCSR([]byte("not pem")); !errors.Is(err, pki.ErrBadPEM) {
		t.Errorf("ParseCSR of garbage = %v, want ErrBadPEM", err)
	}
	if _, err := pki.ParseCSR(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: []byte{0x30, 0x03, 1, 2, 3}})); err == nil {
		t.Error("ParseCSR accepted bad DER")
	}
}

func TestSelfSigned(t *testing.T) {
	key, err := pki.NewKey()
	if err != nil {
		t.Fatal(err)
	}
	tc, err := pki.SelfSigned(key, "waiting-node")
	if err != nil {
		t.Fatal(err)
	}
	if len(tc.Certificate) != 1 || tc.PrivateKey != key {
		t.Fatalf("SelfSigned = %d certificates, key %T", len(tc.Certificate), tc.PrivateKey)
	}
	c, err := x509.ParseCertificate(tc.Certificate[0])
	if err != nil {
		t.Fatal(err)
	}
	if c.Subject.CommonName != "waiting-node" || c.IsCA {
		t.Errorf("certificate CN %q, CA %v", c.Subject.CommonName, c.IsCA)
	}
	if !bytes.Equal(c.RawIssuer, c.RawSubject) {
		t.Error("issuer is not the subject")
	}
	if err := c.CheckSignature(c.SignatureAlgorithm, c.RawTBSCertificate, c.Signature); err != nil {
		t.Errorf("not signed by its own key: %v", err)
	}
	if !pki.SamePublicKey(c.PublicKey, key.Public()) {
		t.Error("certificate carries another key")
	}
	if now := time.Now(); now.Before(c.NotBefore) || now.After(c.NotAfter) {
		t.Errorf("not valid now: %v to %v", c.NotBefore, c.NotAfter)
	}
}

func TestKeyEncoding(t *testing.T) {
	ec, err := pki.NewKey()
	if err != nil {
		t.Fatal(err)
	}
	_, ed, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []crypto.Signer{ec, ed} {
		data, err := pki.EncodeKey(k)
		if err != nil {
			t.Fatalf("EncodeKey(%T): %v", k, err)
		}
		if b, _ := pem.Decode(data); b == nil || b.Type != "PRIVATE KEY" {
			t.Fatalf("EncodeKey(%T) did not give a PRIVATE KEY block", k)
		}
		back, err := pki.ParseKey(data)
		if err != nil {
			t.Fatalf("ParseKey: %v", err)
		}
		if !pki.SamePublicKey(back.Public(), k.Public()) {
			t.Errorf("ParseKey(EncodeKey(%T)) is another key", k)
		}
	}
	if _, err := pki.ParseKey(nil); !errors.Is(err, pki.ErrBadPEM) {
		t.Errorf("ParseKey(nil) = %v, want ErrBadPEM", err)
	}
	ecDER, _ := x509.MarshalECPrivateKey(ec)
	if _, err := pki.ParseKey(pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: ecDER})); !errors.Is(err, pki.ErrBadPEM) {
		t.Errorf("ParseKey of an EC PRIVATE KEY block = %v, want ErrBadPEM", err)
	}
	if _, err := pki.ParseKey(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: []byte{1, 2, 3}})); err == nil {
		t.Error("ParseKey accepted bad DER")
	}
}

func TestSamePublicKeyAndEqual(t *testing.T) {
	a, _ := pki.NewKey()
	b, _ := pki.NewKey()
	if !pki.SamePublicKey(a.Public(), a.Public()) || pki.SamePublicKey(a.Public(), b.Public()) {
		t.Error("SamePublicKey wrong for ECDSA keys")
	}
	if pki.SamePublicKey(nil, a.Public()) || pki.SamePublicKey("key", "key") {
		t.Error("SamePublicKey true for values that are not keys")
	}
	if !pki.Equal([]byte("  PEM\n"), []byte("PEM")) || pki.Equal([]byte("PEM1"), []byte("PEM2")) {
		t.Error("Equal wrong")
	}
}

func TestFiles(t *testing.T) {
	ca := newCA(t, "p")
	node := issue(t, ca, pki.Identity{CommonName: "n", Role: pki.RoleNode}, time.Hour)
	f := pki.Files{Dir: filepath.Join(t.TempDir(), "tls", "node")}
	if _, _, _, err := f.Load(); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Load of a missing directory = %v, want ErrNotExist", err)
	}
	if err := f.Write(ca.CertPEM, node.certPEM, node.keyPEM); err != nil {
		t.Fatal(err)
	}
	caPEM, certPEM, keyPEM, err := f.Load()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(caPEM, ca.CertPEM) || !bytes.Equal(certPEM, node.certPEM) || !bytes.Equal(keyPEM, node.keyPEM) {
		t.Error("Load does not return what Write stored")
	}
	modes := map[string]os.FileMode{f.Dir: 0o700 | os.ModeDir, f.Key(): 0o600, f.Cert(): 0o644, f.CA(): 0o644}
	for path, want := range modes {
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode() != want {
			t.Errorf("%s has mode %v, want %v", path, fi.Mode(), want)
		}
	}
	for _, p := range []string{f.CA(), f.Cert(), f.Key()} {
		if filepath.Dir(p) != f.Dir {
			t.Errorf("%s is not in %s", p, f.Dir)
		}
	}
	entries, _ := os.ReadDir(f.Dir)
	if len(entries) != 3 {
		t.Errorf("directory holds %d entries, want 3 (no temporary files)", len(entries))
	}

	// nil leaves a file as it is; new data replaces it.
	other := issue(t, ca, pki.Identity{CommonName: "n2", Role: pki.RoleNode}, time.Hour)
	if err := f.Write(nil, other.certPEM, other.keyPEM); err != nil {
		t.Fatal(err)
	}
	caPEM, certPEM, keyPEM, err = f.Load()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(caPEM, ca.CertPEM) || !bytes.Equal(certPEM, other.certPEM) || !bytes.Equal(keyPEM, other.keyPEM) {
		t.Error("second Write did not replace cert and key and keep the CA")
	}
	if fi, _ := os.Stat(f.Key()); fi.Mode() != 0o600 {
		t.Errorf("replaced key has mode %v", fi.Mode())
	}

	// A missing CA file fails Load even if the rest is there.
	g := pki.Files{Dir: filepath.Join(t.TempDir(), "partial")}
	if err := g.Write(nil, node.certPEM, node.keyPEM); err != nil {
		t.Fatal(err)
	}
	if _, _, _, err := g.Load(); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Load without ca.pem = %v, want ErrNotExist", err)
	}
}

func TestClientTLS(t *testing.T) {
	ca, other := newCA(t, "p"), newCA(t, "q")
	server := issue(t, ca, pki.Identity{CommonName: "server", Role: pki.RoleNode, IPs: []net.IP{net.ParseIP("127.0.0.1")}, DNSNames: []string{"server1"}}, time.Hour)
	admin := issue(t, ca, pki.Identity{CommonName: "alice", Role: pki.RoleAdmin}, time.Hour)
	stranger := issue(t, other, pki.Identity{CommonName: "mallory", Role: pki.RoleAdmin}, time.Hour)

	cfg, err := pki.ClientTLS(ca.CertPEM, admin.certPEM, admin.keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.MinVersion != tls.VersionTLS13 || len(cfg.Certificates) != 1 || cfg.RootCAs == nil {
		t.Fatalf("config: min version %x, %d certificates, roots %v", cfg.MinVersion, len(cfg.Certificates), cfg.RootCAs)
	}
	if _, err := pki.ClientTLS([]byte("junk"), admin.certPEM, admin.keyPEM); !errors.Is(err, pki.ErrBadPEM) {
		t.Errorf("ClientTLS with a bad CA = %v, want ErrBadPEM", err)
	}
	if _, err := pki.ClientTLS(ca.CertPEM, admin.certPEM, server.keyPEM); err == nil {
		t.Error("ClientTLS accepted a certificate with another key")
	}

	serverPair, err := tls.X509KeyPair(server.certPEM, server.keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	serverCfg := &tls.Config{
		Certificates: []tls.Certificate{serverPair},
		ClientCAs:    ca.Pool(),
		ClientAuth:   tls.RequireAndVerifyClientCert,
		MinVersion:   tls.VersionTLS13,
	}
	handshake := func(t *testing.T, client *tls.Config, serverName string) (role string, clientErr, serverErr error) {
		t.Helper()
		c1, c2 := net.Pipe()
		defer c1.Close()
		defer c2.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		cc := client.Clone()
		cc.ServerName = serverName
		sconn, cconn := tls.Server(c1, serverCfg), tls.Client(c2, cc)
		errc := make(chan error, 1)
		go func() {
			err := sconn.HandshakeContext(ctx)
			if err == nil {
				if pc := sconn.ConnectionState().PeerCertificates; len(pc) > 0 {
					role = pki.RoleOf(pc[0])
				}
			}
			errc <- err
			c1.Close()
		}()
		clientErr = cconn.HandshakeContext(ctx)
		c2.Close()
		serverErr = <-errc
		return role, clientErr, serverErr
	}

	t.Run("same pool", func(t *testing.T) {
		role, cerr, serr := handshake(t, cfg, "server1")
		if cerr != nil || serr != nil {
			t.Fatalf("handshake: client %v, server %v", cerr, serr)
		}
		if role != pki.RoleAdmin {
			t.Errorf("server saw role %q, want admin", role)
		}
	})
	t.Run("by IP", func(t *testing.T) {
		if _, cerr, serr := handshake(t, cfg, "127.0.0.1"); cerr != nil || serr != nil {
			t.Fatalf("handshake: client %v, server %v", cerr, serr)
		}
	})
	t.Run("wrong server name", func(t *testing.T) {
		if _, cerr, _ := handshake(t, cfg, "server2"); cerr == nil {
			t.Fatal("client accepted a certificate for another name")
		}
	})
	t.Run("client trusts another pool", func(t *testing.T) {
		c, err := pki.ClientTLS(other.CertPEM, admin.certPEM, admin.keyPEM)
		if err != nil {
			t.Fatal(err)
		}
		if _, cerr, _ := handshake(t, c, "server1"); cerr == nil {
			t.Fatal("client accepted a server of another pool")
		}
	})
	t.Run("client from another pool", func(t *testing.T) {
		c, err := pki.ClientTLS(ca.CertPEM, stranger.certPEM, stranger.keyPEM)
		if err != nil {
			t.Fatal(err)
		}
		if _, _, serr := handshake(t, c, "server1"); serr == nil {
			t.Fatal("server accepted a client of another pool")
		}
	})
}

package daemon

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/cais-platform/cais/pki"
)

// TestRegistryClientTrustsPoolCA: the engine's registry client trusts
// certificates the pool CA issued (a cais registry on another node) once
// DATA-DIR/tls/ca.pem exists, and only the system's before.
func TestRegistryClientTrustsPoolCA(t *testing.T) {
	ca, err := pki.NewCA("pool-test")
	if err != nil {
		t.Fatal(err)
	}
	key, err := pki.NewKey()
	if err != nil {
		t.Fatal(err)
	}
	certPEM, err := ca.Issue(key.Public(), pki.Identity{CommonName: "node", Role: pki.RoleNode, IPs: []net.IP{net.ParseIP("127.0.0.1")}}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	keyPEM, err := pki.EncodeKey(key)
	if err != nil {
		t.Fatal(err)
	}
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{pair}}
	srv.StartTLS()
	defer srv.Close()

	dir := t.TempDir()
	d := &Daemon{cfg: Config{DataDir: dir}, log: slog.New(slog.DiscardHandler)}
	roots := d.registryClient().Config().RootCAs
	dial := func() error {
		pool, err := roots()
		if err != nil {
			return err
		}
		c, err := tls.Dial("tcp", srv.Listener.Addr().String(), &tls.Config{RootCAs: pool, ServerName: "127.0.0.1"})
		if err == nil {
			c.Close()
		}
		return err
	}
	var unknown x509.UnknownAuthorityError
	if err := dial(); err == nil || !errors.As(err, &unknown) {
		t.Fatalf("before the node is in a pool: %v", err)
	}
	if err := os.MkdirAll(filepath.Join(dir, "tls"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(pki.Files{Dir: filepath.Join(dir, "tls")}.CA(), ca.CertPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := dial(); err != nil {
		t.Fatalf("with the pool CA: %v", err)
	}
}

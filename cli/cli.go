// Package cli is the cais command line. Its storage commands speak the
// gluster CLI's grammar and print its formats; every read command also
// takes --json.
package cli

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/cais-platform/cais/client"
	"github.com/cais-platform/cais/errdefs"
	"github.com/cais-platform/cais/pki"
	"github.com/cais-platform/cais/volume"
)

// Defaults.
const (
	DefaultSocket = "/var/lib/cais/caisd.sock"
	DefaultPort   = 24007
)

// app holds the global flags and the streams.
type app struct {
	socket      string
	server      string
	credentials string
	asJSON      bool
	mode        string
	timeout     time.Duration
	in          io.Reader
	out, errOut io.Writer
}

// ExitError carries an exit code; its message has been printed already.
type ExitError struct{ Code int }

func (e *ExitError) Error() string { return "exit status " + strconv.Itoa(e.Code) }

// MountHelperArgs turns mount(8)'s call of /sbin/mount.cais
// (SPEC DIR [-sfnv] [-o OPTIONS]) into cais arguments.
func MountHelperArgs(args []string) []string {
	var pos, flags []string
	for i := 0; i < len(args); i++ {
		switch a := args[i]; {
		case a == "-o" && i+1 < len(args):
			i++
			for _, o := range strings.Split(args[i], ",") {
				k, v, _ := strings.Cut(o, "=")
				switch k {
				case "ro":
					flags = append(flags, "--ro")
				case "acl", "selinux":
					flags = append(flags, "--"+k)
				case "log-file":
					flags = append(flags, "--log-file", v)
				case "transport":
					flags = append(flags, "--transport", v)
				case "local-io", "passthrough":
					on, err := volume.ParseBool(v)
					flags = append(flags, "--"+k+"="+strconv.FormatBool(on || err != nil))
				case "backup-volfile-servers":
					// gluster's form: server2:server3.
					flags = append(flags, "--backup-volfile-servers", strings.ReplaceAll(v, ":", ","))
				case "_netdev", "rw", "defaults", "auto", "noauto", "nofail", "user", "nouser":
					// Accepted for fstab compatibility.
				}
			}
		case strings.HasPrefix(a, "-"):
			// -s, -f (fake), -n (no mtab), -v: nothing to do
		default:
			pos = append(pos, a)
		}
	}
	return append(append([]string{"mount"}, flags...), pos...)
}

// Main runs the CLI with the process's arguments and returns the exit code.
func Main(args []string, in io.Reader, out, errOut io.Writer) int {
	a := &app{in: in, out: out, errOut: errOut}
	root := a.root()
	root.SetArgs(args)
	root.SetIn(in)
	root.SetOut(out)
	root.SetErr(errOut)
	if err := root.Execute(); err != nil {
		var ee *ExitError
		if errors.As(err, &ee) {
			return ee.Code
		}
		fmt.Fprintln(errOut, "cais:", err)
		return 2
	}
	return 0
}

func (a *app) root() *cobra.Command {
	cmd := &cobra.Command{
		Use:           "cais",
		Short:         "cais: storage pools, volumes and more, managed through caisd",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	pf := cmd.PersistentFlags()
	pf.StringVar(&a.socket, "socket", envOr("CAIS_SOCKET", DefaultSocket), "caisd's local socket (env CAIS_SOCKET)")
	pf.StringVar(&a.server, "server", os.Getenv("CAIS_SERVER"), "talk to caisd at HOST[:PORT] over TLS instead of the socket (env CAIS_SERVER)")
	pf.StringVar(&a.credentials, "credentials", envOr("CAIS_CREDENTIALS", defaultCredentials()), "directory with ca.pem, cert.pem, key.pem for --server (env CAIS_CREDENTIALS)")
	pf.BoolVar(&a.asJSON, "json", false, "print read commands' results as JSON")
	pf.StringVar(&a.mode, "mode", "", "'script' answers yes to every confirmation, as gluster --mode=script")
	pf.DurationVar(&a.timeout, "timeout", 2*time.Minute, "give up on the daemon after this long")
	cmd.AddCommand(a.peerCmd(), a.poolCmd(), a.volumeCmd(), a.versionCmd(), a.mountCmd())
	cmd.AddCommand(a.registryCmd(), a.imageCmd())
	return cmd
}

func (a *app) versionCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "print the daemon's version, node UUID and state",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.call("version", func(ctx context.Context, c *client.Client) error {
				v, err := c.Version(ctx)
				if err != nil {
					return err
				}
				if a.asJSON {
					return a.printJSON(v)
				}
				fmt.Fprintf(a.out, "caisd %s (%s, API %s)\nnode: %s\nstate: %s\n", v.Version, v.GoVersion, v.APIVersion, v.NodeUUID, v.State)
				if v.PoolID != "" {
					fmt.Fprintf(a.out, "pool: %s\n", v.PoolID)
				}
				return nil
			})
		},
	}
}

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}

func defaultCredentials() string {
	home, err := os.UserHomeDir()
	if err != nil {
		return ""
	}
	return filepath.Join(home, ".cais")
}

// connect returns a client for the daemon the flags name.
func (a *app) connect() (*client.Client, error) {
	if a.server == "" {
		return client.NewUnix(a.socket), nil
	}
	host, port, err := net.SplitHostPort(a.server)
	if err != nil {
		host, port = a.server, strconv.Itoa(DefaultPort)
	}
	files := pki.Files{Dir: a.credentials}
	ca, cert, key, err := files.Load()
	if err != nil {
		return nil, fmt.Errorf("--server needs credentials in %s (ca.pem, cert.pem, key.pem): create them with 'cais pool credentials --out DIR' on a pool node: %w", a.credentials, err)
	}
	cfg, err := pki.ClientTLS(ca, cert, key)
	if err != nil {
		return nil, err
	}
	// The daemon's certificate must come from the pool's CA and name the
	// host, by name or by one of the addresses the name resolves to.
	roots := cfg.RootCAs
	cfg.InsecureSkipVerify = true
	cfg.VerifyConnection = func(cs tls.ConnectionState) error {
		if len(cs.PeerCertificates) == 0 {
			return fmt.Errorf("%s sent no certificate", host)
		}
		leaf := cs.PeerCertificates[0]
		inter := x509.NewCertPool()
		for _, ic := range cs.PeerCertificates[1:] {
			inter.AddCert(ic)
		}
		if _, err := leaf.Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter}); err != nil {
			return fmt.Errorf("%s presented a certificate that is not from the pool in %s: %w", host, a.credentials, err)
		}
		if leaf.VerifyHostname(host) == nil {
			return nil
		}
		addrs, _ := net.LookupHost(host)
		for _, ad := range addrs {
			if leaf.VerifyHostname(ad) == nil {
				return nil
			}
		}
		return fmt.Errorf("the certificate of %s names %v %v, not %s", host, leaf.DNSNames, leaf.IPAddresses, host)
	}
	c := client.NewTLS(net.JoinHostPort(host, port), cfg)
	return c, nil
}

// call connects to the daemon and runs fn with the command's deadline. A
// failure is printed as "<what>: failed: <message>", as gluster does,
// unless fn already printed it and returned an *ExitError.
func (a *app) call(what string, fn func(ctx context.Context, c *client.Client) error) error {
	c, err := a.connect()
	if err != nil {
		return a.fail(what, err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), a.timeout)
	defer cancel()
	if err := fn(ctx, c); err != nil {
		var ee *ExitError
		if errors.As(err, &ee) {
			return err
		}
		return a.fail(what, err)
	}
	return nil
}

// fail prints "<what>: failed: <message>" as gluster does and returns the
// exit code to use.
func (a *app) fail(what string, err error) error {
	msg := errdefs.Message(err)
	fmt.Fprintf(a.errOut, "%s: failed: %s\n", what, msg)
	return &ExitError{Code: 1}
}

// readFail prints a read command's error without the "failed" wording when
// it is gluster's plain form ("Volume X does not exist").
func (a *app) readFail(err error) error {
	fmt.Fprintln(a.errOut, errdefs.Message(err))
	return &ExitError{Code: 1}
}

func (a *app) printJSON(v any) error {
	enc := json.NewEncoder(a.out)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// confirm asks a yes/no question on a terminal; scripts and pipes get yes.
func (a *app) confirm(question string) bool {
	if a.mode == "script" {
		return true
	}
	f, ok := a.in.(*os.File)
	if !ok || !term.IsTerminal(int(f.Fd())) {
		return true
	}
	fmt.Fprintf(a.out, "%s (y/n) ", question)
	line, _ := bufio.NewReader(a.in).ReadString('\n')
	switch strings.ToLower(strings.TrimSpace(line)) {
	case "y", "yes":
		return true
	case "n", "no":
		return false
	}
	fmt.Fprintln(a.out, "Invalid input, please enter y/n")
	return false
}

// usage reports wrong arguments.
func (a *app) usage(cmd *cobra.Command) error {
	fmt.Fprintf(a.errOut, "\nUsage:\n%s\n", cmd.UseLine())
	return &ExitError{Code: 1}
}

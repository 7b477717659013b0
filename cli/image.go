package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/cais-platform/cais/image/bootstrap"
	"github.com/cais-platform/cais/image/layer"
)

// DefaultDockerSocket is where caisd serves the Docker Engine API.
const DefaultDockerSocket = "/run/cais/docker.sock"

// imageCmd is `cais image`: base images made on this machine, without a
// registry.
func (a *app) imageCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "image", Short: "make base images without a registry"}
	var socket, tag, workDir string
	var quiet bool
	var deb bootstrap.DebianOptions
	boot := &cobra.Command{
		Use:   "bootstrap debian|busybox",
		Short: "make a base image on this machine and add it to caisd's engine",
		Long: `bootstrap makes a base image and adds it to the engine of the caisd whose
Docker API socket is --docker-socket, as docker import or load would.

  debian   debootstrap (apt-get install debootstrap) lays out Debian --suite
           from --mirror (the machine's Debian mirror works; no registry is
           needed), --variant minbase by default; the tree is tidied (no
           device nodes, package caches or host files) and imported as one
           layer with PATH set and CMD ["bash"], tagged debian:SUITE.
  busybox  the busybox image from Debian's busybox-static, as make up loads
           it (caisd busybox-image | docker load).

It runs on the node, as root.`,
		Args:      cobra.ExactArgs(1),
		ValidArgs: []string{"debian", "busybox"},
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			d := dockerSocket{path: socket}
			switch args[0] {
			case "debian":
				if tag == "" {
					tag = "debian:" + deb.Suite
				}
				if err := deb.Validate(); err != nil {
					return err
				}
				if err := d.ping(ctx); err != nil {
					return err
				}
				dir, err := os.MkdirTemp(workDir, "cais-debootstrap-")
				if err != nil {
					return fmt.Errorf("work directory: %w", err)
				}
				defer os.RemoveAll(dir)
				deb.Log = a.errOut
				if quiet {
					deb.Log = nil
				}
				if err := bootstrap.DebianRootfs(ctx, dir, deb); err != nil {
					return err
				}
				id, err := d.importRootfs(ctx, dir, tag, "cais image bootstrap debian "+deb.Suite, bootstrap.DebianChanges())
				if err != nil {
					return err
				}
				fmt.Fprintf(a.out, "%s\n%s\n", id, tag)
				return nil
			case "busybox":
				if err := d.ping(ctx); err != nil {
					return err
				}
				pr, pw := io.Pipe()
				go func() { pw.CloseWithError(bootstrap.BusyboxArchive(ctx, pw, "/bin/busybox")) }()
				out, err := d.post(ctx, "/images/load?quiet=1", "application/x-tar", pr)
				pr.Close()
				if err != nil {
					return err
				}
				fmt.Fprint(a.out, out)
				return nil
			default:
				return fmt.Errorf("unknown base image %q: debian or busybox", args[0])
			}
		},
	}
	f := boot.Flags()
	f.StringVar(&socket, "docker-socket", DefaultDockerSocket, "caisd's Docker API socket")
	f.StringVarP(&tag, "tag", "t", "", "name of the image (debian:SUITE by default)")
	f.StringVar(&deb.Suite, "suite", "bookworm", "Debian release")
	f.StringVar(&deb.Mirror, "mirror", "", "Debian mirror (debootstrap's default, deb.debian.org, when empty)")
	f.StringVar(&deb.Variant, "variant", "minbase", "debootstrap variant: minbase or buildd")
	f.StringVar(&workDir, "work-dir", "/var/tmp", "where the root file system is laid out (about 200 MB, removed at the end)")
	f.BoolVarP(&quiet, "quiet", "q", false, "do not show debootstrap's progress")
	cmd.AddCommand(boot)
	return cmd
}

// dockerSocket is a client of caisd's Docker Engine API, for the few calls
// the cais CLI makes there.
type dockerSocket struct{ path string }

func (d dockerSocket) client() *http.Client {
	return &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var dl net.Dialer
			return dl.DialContext(ctx, "unix", d.path)
		},
	}}
}

func (d dockerSocket) ping(ctx context.Context) error {
	if _, err := d.do(ctx, http.MethodGet, "/_ping", "", nil); err != nil {
		return fmt.Errorf("caisd's Docker API at %s does not answer (is caisd running with its engine? --docker-socket): %w", d.path, err)
	}
	return nil
}

func (d dockerSocket) post(ctx context.Context, path, ctype string, body io.Reader) (string, error) {
	return d.do(ctx, http.MethodPost, path, ctype, body)
}

// do makes one call and returns the body, or the API's error message.
func (d dockerSocket) do(ctx context.Context, method, path, ctype string, body io.Reader) (string, error) {
	req, err := http.NewRequestWithContext(ctx, method, "http://docker"+path, body)
	if err != nil {
		return "", err
	}
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	resp, err := d.client().Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return "", err
	}
	if resp.StatusCode/100 != 2 {
		var e struct{ Message string }
		if json.Unmarshal(b, &e) == nil && e.Message != "" {
			return "", errors.New(e.Message)
		}
		return "", fmt.Errorf("%s %s: %s", method, path, resp.Status)
	}
	return decodeStream(b)
}

// decodeStream turns a JSON message stream (load, import) into its text,
// or its error; a body that is not JSON (a ping's OK) comes back as it is.
func decodeStream(b []byte) (string, error) {
	if !strings.HasPrefix(strings.TrimSpace(string(b)), "{") {
		return string(b), nil
	}
	var out strings.Builder
	dec := json.NewDecoder(strings.NewReader(string(b)))
	for {
		var m struct {
			Stream, Status string
			ErrorDetail    *struct{ Message string } `json:"errorDetail"`
		}
		err := dec.Decode(&m)
		if err == io.EOF {
			return out.String(), nil
		}
		if err != nil {
			return out.String(), fmt.Errorf("reading the engine's answer: %w", err)
		}
		if m.ErrorDetail != nil {
			return out.String(), errors.New(m.ErrorDetail.Message)
		}
		out.WriteString(m.Stream)
		if m.Status != "" {
			out.WriteString(m.Status + "\n")
		}
	}
}

// importRootfs packs dir and imports it as image tag with changes
// (Dockerfile instructions), returning the image ID.
func (d dockerSocket) importRootfs(ctx context.Context, dir, tag, message string, changes []string) (string, error) {
	q := url.Values{"fromSrc": {"-"}, "repo": {tag}, "message": {message}, "changes": changes}
	pr, pw := io.Pipe()
	go func() { pw.CloseWithError(layer.Pack(ctx, pw, dir, layer.PackOptions{})) }()
	out, err := d.post(ctx, "/images/create?"+q.Encode(), "application/x-tar", pr)
	pr.Close()
	if err != nil {
		return "", fmt.Errorf("import %s: %w", tag, err)
	}
	return strings.TrimSpace(out), nil
}

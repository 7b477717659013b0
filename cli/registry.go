package cli

import (
	"bufio"
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/cais-platform/cais/registry/disk"
	"github.com/cais-platform/cais/registry/htpasswd"
)

// registryCmd is `cais registry`: maintenance of the node's OCI registry.
func (a *app) registryCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "registry", Short: "maintain the node's OCI image registry"}
	var opts disk.GCOptions
	dir := filepath.Join("/var/lib/cais", "registry")
	gc := &cobra.Command{
		Use:   "gc",
		Short: "remove registry content no repository needs (safe while pushes go on)",
		Long: `gc removes from the registry's directory the blobs and manifests no
repository links, and with --unreferenced (the default) the layers no
manifest of their repository names (the layers of deleted images).
Anything newer than --grace is spared, as content of pushes in progress.
It works on the directory directly (run it on the node, as root) and is
safe while caisd serves pushes and pulls.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			st, err := disk.Open(dir)
			if err != nil {
				return err
			}
			s, err := st.GC(cmd.Context(), opts)
			if err != nil {
				return fmt.Errorf("registry gc: %w", err)
			}
			verb := "removed"
			if opts.DryRun {
				verb = "would remove"
			}
			fmt.Fprintf(cmd.OutOrStdout(), "registry gc: %s %d blobs (%d bytes), %d unreferenced layer links and %d abandoned files; kept %d blobs in %d repositories\n",
				verb, s.Blobs, s.Bytes, s.Unlinked, s.TmpFiles, s.Kept, s.Repos)
			return nil
		},
	}
	f := gc.Flags()
	f.StringVar(&dir, "dir", dir, "the registry's directory (caisd's DATA-DIR/registry)")
	f.DurationVar(&opts.Grace, "grace", time.Hour, "spare content newer than this")
	f.BoolVar(&opts.Unreferenced, "unreferenced", true, "also drop layers no manifest of their repository names")
	f.BoolVar(&opts.DryRun, "dry-run", false, "count what would go, remove nothing")
	cmd.AddCommand(gc, a.registryUserCmd())
	return cmd
}

// registryUserCmd is `cais registry user add NAME`: a user who may push
// (and pull) once caisd uses the users file.
func (a *app) registryUserCmd() *cobra.Command {
	file := "/var/lib/cais/registry-users"
	add := &cobra.Command{
		Use:   "add NAME",
		Short: "add a registry user, or change a user's password (read from standard input)",
		Long: `add stores NAME with the password read from the first line of standard
input in the registry's users file (caisd's --registry-users, by default
DATA-DIR/registry-users), hashed with PBKDF2-SHA256. caisd rereads the
file when it changes; a caisd started without a users file needs a
restart to begin requiring credentials. Then: docker login HOST:PORT.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			line, err := bufio.NewReader(cmd.InOrStdin()).ReadString('\n')
			if err != nil && err != io.EOF {
				return err
			}
			pass := strings.TrimRight(line, "\r\n")
			if pass == "" {
				return fmt.Errorf("no password on standard input (echo PASSWORD | cais registry user add %s)", args[0])
			}
			if err := htpasswd.Set(file, args[0], pass); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "registry user %s: saved in %s\n", args[0], file)
			return nil
		},
	}
	add.Flags().StringVar(&file, "file", file, "the registry's users file")
	cmd := &cobra.Command{Use: "user", Short: "manage the registry's users"}
	cmd.AddCommand(add)
	return cmd
}

package cli

import (
	"fmt"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"

	"github.com/cais-platform/cais/registry/disk"
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
	cmd.AddCommand(gc)
	return cmd
}

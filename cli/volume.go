package cli

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/cais-platform/cais/client"

	"github.com/cais-platform/cais/errdefs"
	"github.com/cais-platform/cais/volume"
)

func (a *app) volumeCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "volume", Short: "create, start, stop, inspect and tune volumes"}
	cmd.AddCommand(
		a.volumeCreate(),
		a.volumeSimpleOp("start", "start a volume's bricks", "", "volume start"),
		a.volumeSimpleOp("stop", "stop a volume's bricks", "Stopping volume will make its data inaccessible. Do you want to continue?", "volume stop"),
		a.volumeDelete(),
		a.volumeInfo(),
		a.volumeStatus(),
		a.volumeList(),
		a.volumeSet(),
		a.volumeGet(),
		a.volumeReset(),
		a.volumeHeal(),
	)
	return cmd
}

func (a *app) volumeCreate() *cobra.Command {
	return &cobra.Command{
		Use:                "create <NEW-VOLNAME> [stripe <COUNT>] [replica <COUNT> [arbiter <COUNT>]] [disperse [<COUNT>]] [disperse-data <COUNT>] [redundancy <COUNT>] [transport <tcp>] <NEW-BRICK>... [force]",
		Short:              "create a volume from bricks HOST:/PATH",
		DisableFlagParsing: false,
		RunE: func(cmd *cobra.Command, args []string) error {
			name := "-"
			if len(args) > 0 {
				name = args[0]
			}
			req, err := volume.ParseCreateArgs(args)
			if err != nil {
				fmt.Fprintf(a.errOut, "volume create: %s: failed: %s\n", name, errdefs.Message(err))
				return a.usage(cmd)
			}
			for _, w := range req.Warnings {
				fmt.Fprintln(a.errOut, w)
			}
			return a.call("volume create: "+name, func(ctx context.Context, c *client.Client) error {
				if _, err := c.CreateVolume(ctx, req); err != nil {
					return err
				}
				fmt.Fprintf(a.out, "volume create: %s: success: please start the volume to access data\n", name)
				return nil
			})
		},
	}
}

// volumeSimpleOp is start and stop: NAME [force].
func (a *app) volumeSimpleOp(op, short, question, what string) *cobra.Command {
	return &cobra.Command{
		Use:   op + " <VOLNAME> [force]",
		Short: short,
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) < 1 || len(args) > 2 || (len(args) == 2 && args[1] != "force") {
				return a.usage(cmd)
			}
			name := args[0]
			if question != "" && !a.confirm(question) {
				return &ExitError{Code: 1}
			}
			return a.call(what+": "+name, func(ctx context.Context, c *client.Client) error {
				resp, err := c.VolumeOp(ctx, name, op, len(args) == 2)
				if err != nil {
					return err
				}
				for _, w := range resp.Warnings {
					fmt.Fprintf(a.errOut, "%s: %s: warning: %s\n", what, name, w)
				}
				fmt.Fprintf(a.out, "%s: %s: success\n", what, name)
				return nil
			})
		},
	}
}

func (a *app) volumeDelete() *cobra.Command {
	return &cobra.Command{
		Use:   "delete <VOLNAME>",
		Short: "delete a stopped volume (the bricks' data stays on disk)",
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) != 1 {
				return a.usage(cmd)
			}
			name := args[0]
			if !a.confirm("Deleting volume will erase all information about the volume. Do you want to continue?") {
				return &ExitError{Code: 1}
			}
			return a.call("volume delete: "+name, func(ctx context.Context, c *client.Client) error {
				resp, err := c.VolumeOp(ctx, name, "delete", false)
				if err != nil {
					return err
				}
				for _, w := range resp.Warnings {
					fmt.Fprintf(a.errOut, "volume delete: %s: warning: %s\n", name, w)
				}
				fmt.Fprintf(a.out, "volume delete: %s: success\n", name)
				return nil
			})
		},
	}
}

func (a *app) volumeInfo() *cobra.Command {
	return &cobra.Command{
		Use:   "info [all|<VOLNAME>]",
		Short: "show volumes' configuration",
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) > 1 {
				return a.usage(cmd)
			}
			return a.call("volume info", func(ctx context.Context, c *client.Client) error {
				var vols []volume.Volume
				var err error
				if len(args) == 0 || args[0] == "all" {
					vols, err = c.Volumes(ctx)
				} else {
					var v volume.Volume
					v, err = c.Volume(ctx, args[0])
					vols = []volume.Volume{v}
				}
				if err != nil {
					return a.readFail(err)
				}
				if a.asJSON {
					return a.printJSON(vols)
				}
				if len(vols) == 0 {
					fmt.Fprintln(a.errOut, "No volumes present")
					return nil
				}
				VolumeInfo(a.out, vols)
				return nil
			})
		},
	}
}

func (a *app) volumeStatus() *cobra.Command {
	return &cobra.Command{
		Use:   "status [all|<VOLNAME>]",
		Short: "show the bricks' processes, ports and whether they are online",
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) > 1 {
				return a.usage(cmd)
			}
			return a.call("volume status", func(ctx context.Context, c *client.Client) error {
				var names []string
				all := len(args) == 0 || args[0] == "all"
				if all {
					vols, err := c.Volumes(ctx)
					if err != nil {
						return a.readFail(err)
					}
					if len(vols) == 0 {
						fmt.Fprintln(a.errOut, "No volumes present")
						return nil
					}
					for _, v := range vols {
						names = append(names, v.Name)
					}
				} else {
					names = args
				}
				var out []any
				failed := false
				for _, n := range names {
					st, err := c.VolumeStatus(ctx, n)
					if err != nil {
						if !all || !errors.Is(err, errdefs.ErrState) {
							return a.readFail(err)
						}
						if !a.asJSON {
							fmt.Fprintln(a.errOut, errdefs.Message(err))
							fmt.Fprintln(a.out, " ")
						}
						continue
					}
					if a.asJSON {
						out = append(out, st)
						continue
					}
					VolumeStatus(a.out, st)
				}
				if a.asJSON {
					if !all && len(out) == 1 {
						return a.printJSON(out[0])
					}
					return a.printJSON(out)
				}
				if failed {
					return &ExitError{Code: 1}
				}
				return nil
			})
		},
	}
}

func (a *app) volumeList() *cobra.Command {
	return &cobra.Command{
		Use:   "list",
		Short: "list volume names",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.call("volume list", func(ctx context.Context, c *client.Client) error {
				vols, err := c.Volumes(ctx)
				if err != nil {
					return a.readFail(err)
				}
				if a.asJSON {
					names := []string{}
					for _, v := range vols {
						names = append(names, v.Name)
					}
					return a.printJSON(names)
				}
				if len(vols) == 0 {
					fmt.Fprintln(a.errOut, "No volumes present in cluster")
					return nil
				}
				VolumeList(a.out, vols)
				return nil
			})
		},
	}
}

func (a *app) volumeSet() *cobra.Command {
	return &cobra.Command{
		Use:   "set <VOLNAME> <KEY> <VALUE>",
		Short: "set a volume option",
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) != 3 {
				return a.usage(cmd)
			}
			return a.call("volume set", func(ctx context.Context, c *client.Client) error {
				if err := c.SetOption(ctx, args[0], args[1], args[2]); err != nil {
					return err
				}
				fmt.Fprintln(a.out, "volume set: success")
				return nil
			})
		},
	}
}

func (a *app) volumeGet() *cobra.Command {
	return &cobra.Command{
		Use:   "get <VOLNAME> <KEY|all>",
		Short: "show option values",
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) != 2 {
				return a.usage(cmd)
			}
			return a.call("volume get option", func(ctx context.Context, c *client.Client) error {
				opts, err := c.GetOptions(ctx, args[0], args[1])
				if err != nil {
					return err
				}
				if a.asJSON {
					return a.printJSON(opts)
				}
				Options(a.out, opts)
				return nil
			})
		},
	}
}

func (a *app) volumeReset() *cobra.Command {
	return &cobra.Command{
		Use:   "reset <VOLNAME> [<KEY>|all]",
		Short: "reset one option, or all of them, to the default",
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) < 1 || len(args) > 2 {
				return a.usage(cmd)
			}
			key := ""
			if len(args) == 2 && !strings.EqualFold(args[1], "all") && args[1] != "force" {
				key = args[1]
			}
			return a.call("volume reset", func(ctx context.Context, c *client.Client) error {
				if err := c.ResetOptions(ctx, args[0], key); err != nil {
					return err
				}
				fmt.Fprintln(a.out, "volume reset: success: reset volume successful")
				return nil
			})
		},
	}
}

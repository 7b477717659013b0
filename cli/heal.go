package cli

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/cais-platform/cais/api"
	"github.com/cais-platform/cais/client"
	"github.com/cais-platform/cais/errdefs"
)

// volumeHeal is gluster's heal grammar:
//
//	volume heal NAME [full | info [split-brain] | statistics |
//	                  split-brain {bigger-file FILE | latest-mtime FILE | source-brick HOST:BRICK [FILE]}]
func (a *app) volumeHeal() *cobra.Command {
	return &cobra.Command{
		Use:   "heal <VOLNAME> [full | info [split-brain] | statistics | split-brain {bigger-file <FILE> | latest-mtime <FILE> | source-brick <HOSTNAME:BRICKNAME> [<FILE>]}]",
		Short: "heal a replicated volume's bricks, or show what needs healing",
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) < 1 {
				return a.usage(cmd)
			}
			name, rest := args[0], args[1:]
			switch {
			case len(rest) == 0, len(rest) == 1 && rest[0] == "full":
				full := len(rest) == 1
				kind := "index"
				if full {
					kind = "full"
				}
				what := fmt.Sprintf("Launching heal operation to perform %s self heal on volume %s has been", kind, name)
				return a.call("volume heal", func(ctx context.Context, c *client.Client) error {
					if err := c.Heal(ctx, name, full); err != nil {
						fmt.Fprintf(a.errOut, "%s unsuccessful:\n%s\n", what, errMessage(err))
						return &ExitError{Code: 1}
					}
					fmt.Fprintf(a.out, "%s successful \nUse heal info commands to check status.\n", what)
					return nil
				})
			case rest[0] == "info" && (len(rest) == 1 || len(rest) == 2 && rest[1] == "split-brain"):
				return a.healInfo(name, len(rest) == 2)
			case len(rest) == 1 && rest[0] == "statistics":
				return a.healStatistics(name)
			case rest[0] == "split-brain" && len(rest) >= 3:
				req := api.SplitBrainRequest{Policy: rest[1]}
				switch {
				case (rest[1] == "bigger-file" || rest[1] == "latest-mtime") && len(rest) == 3:
					req.File = rest[2]
				case rest[1] == "source-brick" && (len(rest) == 3 || len(rest) == 4):
					req.Brick = rest[2]
					if len(rest) == 4 {
						req.File = rest[3]
					}
				default:
					return a.usage(cmd)
				}
				return a.call("volume heal", func(ctx context.Context, c *client.Client) error {
					resp, err := c.ResolveSplitBrain(ctx, name, req)
					if err != nil {
						fmt.Fprintln(a.errOut, errMessage(err))
						fmt.Fprintln(a.errOut, "Volume heal failed.")
						return &ExitError{Code: 1}
					}
					for _, f := range resp.Healed {
						fmt.Fprintf(a.out, "Healed %s.\n", f)
					}
					if len(resp.Healed) == 0 {
						fmt.Fprintln(a.out, "No files in split-brain.")
					}
					return nil
				})
			}
			return a.usage(cmd)
		},
	}
}

func (a *app) healInfo(name string, splitOnly bool) error {
	return a.call("volume heal", func(ctx context.Context, c *client.Client) error {
		info, err := c.HealInfo(ctx, name, splitOnly)
		if err != nil {
			return a.readFail(err)
		}
		if a.asJSON {
			return a.printJSON(info)
		}
		for _, b := range info.Bricks {
			fmt.Fprintf(a.out, "Brick %s\n", b.Brick)
			if !b.Connected {
				fmt.Fprintf(a.out, "Status: %s\nNumber of entries: -\n\n", b.Error)
				continue
			}
			sort.Slice(b.Entries, func(i, j int) bool { return b.Entries[i].Path < b.Entries[j].Path })
			for _, e := range b.Entries {
				p := e.Path
				if p == "" {
					p = "<gfid:" + e.GFID + ">"
				}
				if e.SplitBrain && !splitOnly {
					p += " - Is in split-brain"
				}
				fmt.Fprintln(a.out, p)
			}
			fmt.Fprintln(a.out, "Status: Connected")
			if splitOnly {
				fmt.Fprintf(a.out, "Number of entries in split-brain: %d\n\n", len(b.Entries))
			} else {
				fmt.Fprintf(a.out, "Number of entries: %d\n\n", len(b.Entries))
			}
		}
		return nil
	})
}

func (a *app) healStatistics(name string) error {
	return a.call("volume heal", func(ctx context.Context, c *client.Client) error {
		stats, err := c.HealStatistics(ctx, name)
		if err != nil {
			return a.readFail(err)
		}
		if a.asJSON {
			return a.printJSON(stats)
		}
		fmt.Fprintf(a.out, "Gathering crawl statistics on volume %s has been successful \n", name)
		fmt.Fprintln(a.out, "------------------------------------------------")
		sort.Slice(stats, func(i, j int) bool { return stats[i].Hostname < stats[j].Hostname })
		for i, s := range stats {
			fmt.Fprintf(a.out, "\nCrawl statistics for node no %d\nHostname of node %s\n\n", i, s.Hostname)
			if s.Type == "" {
				fmt.Fprintf(a.out, "No crawl has healed anything yet (%d crawls)\n", s.Crawls)
				continue
			}
			fmt.Fprintf(a.out, "Starting time of crawl: %s\n\n", s.Start.Local().Format(time.ANSIC))
			fmt.Fprintf(a.out, "Ending time of crawl: %s\n\n", s.End.Local().Format(time.ANSIC))
			fmt.Fprintf(a.out, "Type of crawl: %s\n", s.Type)
			fmt.Fprintf(a.out, "No. of entries healed: %d\n", s.Healed)
			fmt.Fprintf(a.out, "No. of entries in split-brain: %d\n", s.SplitBrain)
			fmt.Fprintf(a.out, "No. of heal failed entries: %d\n", s.Failed)
			fmt.Fprintf(a.out, "Total entries healed by this node: %d\n", s.Total)
		}
		if len(stats) == 0 {
			fmt.Fprintln(a.out, "\nNo self-heal daemon has crawled this volume yet.")
		}
		return nil
	})
}

func errMessage(err error) string {
	return strings.TrimSpace(errdefs.Message(err))
}

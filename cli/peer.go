package cli

import (
	"context"
	"fmt"
	"net"
	"strconv"

	"github.com/spf13/cobra"

	"github.com/cais-platform/cais/client"

	"github.com/cais-platform/cais/pki"
)

func (a *app) peerCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "peer", Short: "manage the trusted storage pool's members"}
	probe := &cobra.Command{
		Use:   "probe <HOSTNAME|IP>[:PORT]",
		Short: "add a node to the pool (it must run 'caisd --join-token TOKEN')",
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) != 1 {
				return a.usage(cmd)
			}
			host, port := args[0], 0
			if h, p, err := net.SplitHostPort(args[0]); err == nil {
				n, err := strconv.Atoi(p)
				if err != nil || n <= 0 || n > 65535 {
					fmt.Fprintf(a.errOut, "%s is an invalid address\n", args[0])
					return a.usage(cmd)
				}
				host, port = h, n
			}
			return a.call("peer probe", func(ctx context.Context, c *client.Client) error {
				resp, err := c.Probe(ctx, host, port)
				if err != nil {
					return err
				}
				if resp.Message != "" {
					fmt.Fprintf(a.out, "peer probe: %s\n", resp.Message)
				} else {
					fmt.Fprintln(a.out, "peer probe: success")
				}
				return nil
			})
		},
	}
	status := &cobra.Command{
		Use:   "status",
		Short: "show the other members of the pool",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.call("peer status", func(ctx context.Context, c *client.Client) error {
				peers, err := c.Peers(ctx)
				if err != nil {
					return err
				}
				if a.asJSON {
					return a.printJSON(peers)
				}
				PeerStatus(a.out, peers)
				return nil
			})
		},
	}
	detach := &cobra.Command{
		Use:   "detach <HOSTNAME|IP> [force]",
		Short: "remove a member from the pool (refused while it holds bricks)",
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) < 1 || len(args) > 2 || (len(args) == 2 && args[1] != "force") {
				return a.usage(cmd)
			}
			force := len(args) == 2
			if !a.confirm("All clients mounted through the peer which is getting detached need to be remounted using one of the other active peers in the trusted storage pool to ensure client gets notification on any changes done on the configuration and if the same has been done do you want to proceed?") {
				return &ExitError{Code: 1}
			}
			return a.call("peer detach", func(ctx context.Context, c *client.Client) error {
				if err := c.Detach(ctx, args[0], force); err != nil {
					return err
				}
				fmt.Fprintln(a.out, "peer detach: success")
				return nil
			})
		},
	}
	cmd.AddCommand(probe, status, detach)
	return cmd
}

func (a *app) poolCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "pool", Short: "the trusted storage pool as a whole"}
	list := &cobra.Command{
		Use:   "list",
		Short: "list every member, this node as localhost",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.call("pool list", func(ctx context.Context, c *client.Client) error {
				peers, err := c.Pool(ctx)
				if err != nil {
					return err
				}
				if a.asJSON {
					return a.printJSON(peers)
				}
				PoolList(a.out, peers)
				return nil
			})
		},
	}
	var rotate bool
	token := &cobra.Command{
		Use:   "token",
		Short: "print the join token a new node needs (caisd --join-token)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.call("pool token", func(ctx context.Context, c *client.Client) error {
				t, err := c.Token(ctx, rotate)
				if err != nil {
					return err
				}
				if a.asJSON {
					return a.printJSON(map[string]string{"token": t})
				}
				fmt.Fprintln(a.out, t)
				return nil
			})
		},
	}
	token.Flags().BoolVar(&rotate, "rotate", false, "replace the token; the old one stops working")
	var out, name string
	var days int
	creds := &cobra.Command{
		Use:   "credentials --out DIR",
		Short: "issue an administrator certificate for 'cais --server'",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if out == "" {
				return a.usage(cmd)
			}
			return a.call("pool credentials", func(ctx context.Context, c *client.Client) error {
				cr, err := c.Credentials(ctx, name, days)
				if err != nil {
					return err
				}
				if err := (pki.Files{Dir: out}).Write([]byte(cr.CA), []byte(cr.Cert), []byte(cr.Key)); err != nil {
					return err
				}
				fmt.Fprintf(a.out, "pool credentials: success: wrote %s/{ca,cert,key}.pem; use them with 'cais --server HOST --credentials %s' or CAIS_CREDENTIALS\n", out, out)
				return nil
			})
		},
	}
	creds.Flags().StringVar(&out, "out", "", "directory to write ca.pem, cert.pem and key.pem to")
	creds.Flags().StringVar(&name, "name", envOr("USER", "admin"), "name in the certificate")
	creds.Flags().IntVar(&days, "days", 365, "validity in days")
	cmd.AddCommand(list, token, creds)
	return cmd
}

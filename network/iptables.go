package network

import (
	"fmt"
	"strings"

	"github.com/coreos/go-iptables/iptables"
	"golang.org/x/sys/unix"
)

// firewall applies rules with the iptables command (Debian 12's iptables
// package, nf_tables underneath), waiting for the xtables lock.
type firewall struct {
	ipt *iptables.IPTables
}

func newFirewall() (*firewall, error) {
	ipt, err := iptables.New(iptables.Timeout(10))
	if err != nil {
		return nil, fmt.Errorf("iptables: %w (install Debian's iptables package)", err)
	}
	return &firewall{ipt: ipt}, nil
}

// lockPath serializes the changes to cais's chains of every caisd on the
// host: one removing the chains when its last network goes must not race
// another adding its rules to them.
const lockPath = "/run/cais-iptables.lock"

func (f *firewall) lock() (func(), error) {
	fd, err := unix.Open(lockPath, unix.O_CREAT|unix.O_RDWR|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return nil, fmt.Errorf("iptables lock %s: %w", lockPath, err)
	}
	if err := unix.Flock(fd, unix.LOCK_EX); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("iptables lock %s: %w", lockPath, err)
	}
	return func() { unix.Flock(fd, unix.LOCK_UN); unix.Close(fd) }, nil
}

// apply makes sure cais's chains exist and adds rules to them.
func (f *firewall) apply(rules []Rule) error {
	if len(rules) == 0 {
		return nil
	}
	unlock, err := f.lock()
	if err != nil {
		return err
	}
	defer unlock()
	if err := f.ensureBase(); err != nil {
		return err
	}
	return f.add(rules)
}

// withdraw removes rules and, with dropBase, cais's chains if no rule is
// left in them.
func (f *firewall) withdraw(rules []Rule, dropBase bool) error {
	if len(rules) == 0 && !dropBase {
		return nil
	}
	unlock, err := f.lock()
	if err != nil {
		return err
	}
	defer unlock()
	err = f.remove(rules)
	if dropBase {
		if berr := f.removeBaseIfUnused(); err == nil {
			err = berr
		}
	}
	return err
}

// ensureBase creates cais's chains and the jumps to them, if missing.
func (f *firewall) ensureBase() error {
	for _, c := range BaseChains() {
		ok, err := f.ipt.ChainExists(c.Table, c.Name)
		if err != nil {
			return fmt.Errorf("iptables: %w", err)
		}
		if !ok {
			if err := f.ipt.NewChain(c.Table, c.Name); err != nil {
				return fmt.Errorf("iptables: create chain %s: %w", c.Name, err)
			}
		}
		if c.Jump.Chain == "" {
			continue
		}
		ok, err = f.ipt.Exists(c.Jump.Table, c.Jump.Chain, c.Jump.Spec...)
		if err != nil {
			return fmt.Errorf("iptables: %w", err)
		}
		if !ok {
			if err := f.ipt.Insert(c.Jump.Table, c.Jump.Chain, 1, c.Jump.Spec...); err != nil {
				return fmt.Errorf("iptables: %s %s: %w", c.Jump.Chain, strings.Join(c.Jump.Spec, " "), err)
			}
		}
	}
	return nil
}

// removeBaseIfUnused deletes cais's chains and their jumps when no rule
// of any network (of this caisd or another on the host) is left in them.
func (f *firewall) removeBaseIfUnused() error {
	chains := BaseChains()
	for _, c := range chains {
		rules, err := f.ipt.List(c.Table, c.Name)
		if err != nil {
			continue // gone already
		}
		for _, r := range rules {
			if strings.HasPrefix(r, "-A ") && !isBaseJump(r) {
				return nil // in use
			}
		}
	}
	for i := len(chains) - 1; i >= 0; i-- {
		c := chains[i]
		if c.Jump.Chain != "" {
			f.ipt.DeleteIfExists(c.Jump.Table, c.Jump.Chain, c.Jump.Spec...)
		}
	}
	for i := len(chains) - 1; i >= 0; i-- {
		c := chains[i]
		if ok, _ := f.ipt.ChainExists(c.Table, c.Name); ok {
			if err := f.ipt.ClearAndDeleteChain(c.Table, c.Name); err != nil {
				return fmt.Errorf("iptables: delete chain %s: %w", c.Name, err)
			}
		}
	}
	return nil
}

func isBaseJump(listed string) bool {
	return strings.HasSuffix(listed, "-j "+ChainIsolation1) && strings.HasPrefix(listed, "-A "+ChainForward+" ")
}

// add appends rules that are not there yet.
func (f *firewall) add(rules []Rule) error {
	for _, r := range rules {
		if err := f.ipt.AppendUnique(r.Table, r.Chain, r.Spec...); err != nil {
			return fmt.Errorf("iptables -t %s -A %s %s: %w", r.Table, r.Chain, strings.Join(r.Spec, " "), err)
		}
	}
	return nil
}

// remove deletes rules, those missing included; it returns the first
// error but tries every rule.
func (f *firewall) remove(rules []Rule) error {
	var first error
	for _, r := range rules {
		if !f.chainsExist(r) {
			continue // the rule went with its chain
		}
		if err := f.ipt.DeleteIfExists(r.Table, r.Chain, r.Spec...); err != nil && first == nil {
			first = fmt.Errorf("iptables -t %s -D %s %s: %w", r.Table, r.Chain, strings.Join(r.Spec, " "), err)
		}
	}
	return first
}

// chainsExist reports whether a rule's chain, and the chain of cais's it
// jumps to if any, exist.
func (f *firewall) chainsExist(r Rule) bool {
	if ok, err := f.ipt.ChainExists(r.Table, r.Chain); err != nil || !ok {
		return false
	}
	for i, a := range r.Spec {
		if a == "-j" && i+1 < len(r.Spec) && strings.HasPrefix(r.Spec[i+1], "CAIS") {
			if ok, err := f.ipt.ChainExists(r.Table, r.Spec[i+1]); err != nil || !ok {
				return false
			}
		}
	}
	return true
}

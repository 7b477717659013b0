package daemon

import (
	"crypto"
	"encoding/json"
	"errors"
	"fmt"
	"os"

	"github.com/google/uuid"

	"github.com/cais-platform/cais/pki"
)

// identity is what a node remembers about itself across restarts.
type identity struct {
	UUID string `json:"uuid"`
	// PoolID is empty until the node founds or joins a pool.
	PoolID string `json:"poolID,omitempty"`
	// InitialCluster is the etcd cluster a joining node was handed; it is
	// used on the member's first start only.
	InitialCluster string   `json:"initialCluster,omitempty"`
	Endpoints      []string `json:"endpoints,omitempty"`
	ExternalEtcd   bool     `json:"externalEtcd,omitempty"`
	// Addr is the address the node had when it founded or joined its
	// pool; its certificate and etcd member are bound to it.
	Addr string `json:"addr,omitempty"`
}

func loadIdentity(c *Config) (identity, error) {
	var id identity
	b, err := os.ReadFile(c.identityPath())
	if errors.Is(err, os.ErrNotExist) {
		id.UUID = uuid.NewString()
		return id, saveIdentity(c, id)
	}
	if err != nil {
		return id, fmt.Errorf("read node identity: %w", err)
	}
	if err := json.Unmarshal(b, &id); err != nil || id.UUID == "" {
		return id, fmt.Errorf("node identity %s is corrupt: %v", c.identityPath(), err)
	}
	return id, nil
}

func saveIdentity(c *Config, id identity) error {
	b, _ := json.MarshalIndent(id, "", "  ")
	tmp := c.identityPath() + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return fmt.Errorf("write node identity: %w", err)
	}
	if err := os.Rename(tmp, c.identityPath()); err != nil {
		return fmt.Errorf("write node identity: %w", err)
	}
	return nil
}

// loadNodeKey returns the node's private key, creating it on first start.
// The key survives joins and detaches: a node is its key.
func loadNodeKey(c *Config) (crypto.Signer, error) {
	files := pki.Files{Dir: c.tlsDir()}
	if b, err := os.ReadFile(files.Key()); err == nil {
		return pki.ParseKey(b)
	} else if !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("read node key: %w", err)
	}
	k, err := pki.NewKey()
	if err != nil {
		return nil, err
	}
	pemKey, err := pki.EncodeKey(k)
	if err != nil {
		return nil, err
	}
	if err := files.Write(nil, nil, pemKey); err != nil {
		return nil, err
	}
	return k, nil
}

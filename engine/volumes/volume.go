package volumes

import (
	"context"
	"time"
)

// Volume is one volume, as docker volume inspect shows it.
type Volume struct {
	Name       string            `json:"Name"`
	Driver     string            `json:"Driver"`
	Mountpoint string            `json:"Mountpoint"`
	CreatedAt  time.Time         `json:"CreatedAt"`
	Labels     map[string]string `json:"Labels"`
	Options    map[string]string `json:"Options"`
	Scope      string            `json:"Scope"`
	// Anonymous volumes were made for one container (docker run -v /path,
	// an image's VOLUME) and go away with it on docker rm -v.
	Anonymous bool `json:"Anonymous,omitempty"`
}

// AnonymousLabel marks anonymous volumes, as Docker marks them.
const AnonymousLabel = "com.docker.volume.anonymous"

// Driver makes volumes of one kind. The store calls Create once when a
// volume is made (after which its Mountpoint directory exists), Mount
// when the first running container needs the volume and Unmount after
// the last one stopped, and Remove when it is deleted (never while
// mounted). Drivers are called with the store's lock for the volume held.
type Driver interface {
	// Name is what docker volume create -d names.
	Name() string
	// Create checks the volume's options and prepares it.
	Create(ctx context.Context, v Volume) error
	// Mount makes the volume's content appear at v.Mountpoint. Mounting
	// what is mounted already (after a caisd restart) is no error.
	Mount(ctx context.Context, v Volume) error
	// Unmount undoes Mount.
	Unmount(ctx context.Context, v Volume) error
	// Remove deletes what Create made beyond the volume's directory.
	Remove(ctx context.Context, v Volume) error
}

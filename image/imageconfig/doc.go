// Package imageconfig holds the "config" object of an image config: what
// a container of the image runs (entrypoint, command, environment, user,
// working directory, ports, volumes, labels, health check, …), with
// Docker's JSON names.
//
// It is pure data shared by the parts that read and write it: the image
// store keeps it in image configs, the Dockerfile evaluator changes it
// step by step, the builder and docker commit write it into new images,
// and the engine merges it with what docker run asks for.
//
//	c := imageconfig.Config{Env: []string{"PATH=/bin"}}
//	c.SetEnv("HOME", "/root")
//	home, _ := c.GetEnv("HOME") // "/root"
package imageconfig

package imageconfig

import (
	"encoding/json"
	"slices"
	"testing"
	"time"
)

func TestEnv(t *testing.T) {
	c := Config{Env: []string{"PATH=/bin", "A=1"}}
	c.SetEnv("A", "2")
	c.SetEnv("B", "x=y")
	if want := []string{"PATH=/bin", "A=2", "B=x=y"}; !slices.Equal(c.Env, want) {
		t.Fatalf("Env = %q, want %q", c.Env, want)
	}
	if v, ok := c.GetEnv("B"); !ok || v != "x=y" {
		t.Fatalf("GetEnv(B) = %q, %v", v, ok)
	}
	if _, ok := c.GetEnv("C"); ok {
		t.Fatal("GetEnv(C) found a variable never set")
	}
}

func TestCloneIsDeep(t *testing.T) {
	c := Config{Env: []string{"A=1"}, Labels: map[string]string{"l": "v"}, Healthcheck: &Healthcheck{Test: []string{"CMD", "true"}}}
	d := c.Clone()
	d.Env[0] = "A=2"
	d.Labels["l"] = "w"
	d.Healthcheck.Test[1] = "false"
	if c.Env[0] != "A=1" || c.Labels["l"] != "v" || c.Healthcheck.Test[1] != "true" {
		t.Fatalf("changing the clone changed the original: %+v", c)
	}
}

// The JSON names are Docker's: an image config written by Docker reads
// into Config and back unchanged.
func TestDockerJSON(t *testing.T) {
	in := `{"User":"nobody","ExposedPorts":{"80/tcp":{}},"Env":["PATH=/bin"],"Cmd":["sh"],"WorkingDir":"/w","Labels":{"a":"b"},"Healthcheck":{"Test":["CMD","true"],"Interval":30000000000}}`
	var c Config
	if err := json.Unmarshal([]byte(in), &c); err != nil {
		t.Fatal(err)
	}
	if c.Healthcheck.Interval != 30*time.Second || c.User != "nobody" {
		t.Fatalf("decoded %+v", c)
	}
	out, err := json.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	if string(out) != in {
		t.Fatalf("round trip:\n got %s\nwant %s", out, in)
	}
}

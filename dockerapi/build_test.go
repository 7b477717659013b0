package dockerapi

import (
	"encoding/base64"
	"net/url"
	"testing"
)

func TestDecodeBuildOptions(t *testing.T) {
	q, _ := url.ParseQuery(`t=app&t=reg.example:5000/app:v2&dockerfile=sub/Dockerfile.dev&buildargs={"A":"1","FROM_ENV":null}&labels={"k":"v"}&nocache=1&rm=0&forcerm=1&q=true&target=build&memory=1048576&cpushares=512&networkmode=host`)
	o, err := DecodeBuildOptions(q)
	if err != nil {
		t.Fatal(err)
	}
	if len(o.Tags) != 2 || o.Tags[0].String() != "docker.io/library/app:latest" || o.Tags[1].String() != "reg.example:5000/app:v2" {
		t.Errorf("tags %v", o.Tags)
	}
	if o.Dockerfile != "sub/Dockerfile.dev" || o.BuildArgs["A"] != "1" || len(o.BuildArgs) != 1 || o.Labels["k"] != "v" {
		t.Errorf("options %+v", o)
	}
	if !o.NoCache || o.Remove || !o.ForceRemove || !o.Quiet || o.Target != "build" || o.Host.Memory != 1<<20 || o.Host.CPUShares != 512 || o.Host.NetworkMode != "host" {
		t.Errorf("options %+v", o)
	}
	if o, _ := DecodeBuildOptions(url.Values{}); !o.Remove || o.NoCache {
		t.Errorf("defaults: %+v", o)
	}
	for _, bad := range []string{"t=UPPER", "buildargs={", "labels=[1]", "memory=lots", "remote=https://x/y.git", "version=2", "t=a@sha256:" + "0123456789012345678901234567890123456789012345678901234567890123"} {
		q, _ := url.ParseQuery(bad)
		if _, err := DecodeBuildOptions(q); err == nil {
			t.Errorf("%s accepted", bad)
		}
	}
}

func FuzzDecodeBuildOptions(f *testing.F) {
	f.Add(`t=a&buildargs={"A":"1"}&labels={"k":"v"}`)
	f.Add(`buildargs={"A":null}&memory=-1&t=x:y`)
	f.Add(`labels=null&extrahosts=a:1.2.3.4,b:::1`)
	f.Fuzz(func(t *testing.T, query string) {
		q, err := url.ParseQuery(query)
		if err != nil {
			return
		}
		DecodeBuildOptions(q)
	})
}

func TestDecodeRegistryConfig(t *testing.T) {
	// What the docker CLI sends after docker login to a local registry and
	// to Docker Hub.
	h := base64.URLEncoding.EncodeToString([]byte(`{"127.0.0.9:5000":{"username":"alice","password":"s3cret","serveraddress":"127.0.0.9:5000"},"https://index.docker.io/v1/":{"auth":"Ym9iOnB3"}}`))
	got, err := DecodeRegistryConfig(h)
	if err != nil {
		t.Fatal(err)
	}
	if a := got["127.0.0.9:5000"]; a.Username != "alice" || a.Password != "s3cret" {
		t.Errorf("local registry: %+v", a)
	}
	if a := got["docker.io"]; a.Username != "bob" || a.Password != "pw" {
		t.Errorf("Docker Hub: %+v", a)
	}
	if m, err := DecodeRegistryConfig(""); err != nil || len(m) != 0 {
		t.Errorf("empty header: %v %v", m, err)
	}
	for _, bad := range []string{"!!!", base64.StdEncoding.EncodeToString([]byte("[]")), base64.StdEncoding.EncodeToString([]byte(`{"r":{"auth":"bm9jb2xvbg=="}}`))} {
		if _, err := DecodeRegistryConfig(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func FuzzDecodeRegistryConfig(f *testing.F) {
	f.Add(base64.URLEncoding.EncodeToString([]byte(`{"r:5000":{"username":"u","password":"p"}}`)))
	f.Add(base64.StdEncoding.EncodeToString([]byte(`{"https://index.docker.io/v1/":{"auth":"dTpw"}}`)))
	f.Add("e30")
	f.Fuzz(func(t *testing.T, h string) {
		DecodeRegistryConfig(h)
	})
}

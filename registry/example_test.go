package registry_test

import (
	"fmt"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"

	"github.com/opencontainers/go-digest"

	"github.com/cais-platform/cais/registry"
	"github.com/cais-platform/cais/registry/disk"
)

// Example serves a registry on a temporary directory, pushes a blob in one
// request and reads it back.
func Example() {
	dir, _ := os.MkdirTemp("", "registry-example")
	defer os.RemoveAll(dir)
	st, err := disk.Open(dir)
	if err != nil {
		log.Fatal(err)
	}
	srv := httptest.NewServer(registry.New(st, registry.Options{}))
	defer srv.Close()

	content := "hello, registry"
	d := digest.FromString(content)
	resp, err := http.Post(srv.URL+"/v2/demo/app/blobs/uploads/?digest="+d.String(), "application/octet-stream", strings.NewReader(content))
	if err != nil {
		log.Fatal(err)
	}
	resp.Body.Close()
	fmt.Println(resp.Status, resp.Header.Get("Location"))

	resp, err = http.Head(srv.URL + "/v2/demo/app/blobs/" + d.String())
	if err != nil {
		log.Fatal(err)
	}
	resp.Body.Close()
	fmt.Println(resp.Status, resp.ContentLength)
	// Output:
	// 201 Created /v2/demo/app/blobs/sha256:d4ceac3b8b759b17b86618c4165bb23a506c157c81a034147cf8e3510691aa1c
	// 200 OK 15
}

package reference_test

import (
	"fmt"

	"github.com/cais-platform/cais/image/reference"
)

func ExampleParseDockerRef() {
	for _, s := range []string{"busybox", "me/app:1", "localhost:5000/app", "Busybox"} {
		ref, err := reference.ParseDockerRef(s)
		if err != nil {
			fmt.Println(err)
			continue
		}
		fmt.Println(ref, "=", ref.Familiar())
	}
	// Output:
	// docker.io/library/busybox:latest = busybox:latest
	// docker.io/me/app:1 = me/app:1
	// localhost:5000/app:latest = localhost:5000/app:latest
	// invalid reference format: repository name (library/Busybox) must be lowercase
}

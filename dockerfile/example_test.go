package dockerfile_test

import (
	"fmt"
	"strings"

	"github.com/cais-platform/cais/dockerfile"
)

func Example() {
	src := `FROM busybox
ARG NAME=world
ENV GREETING="hello ${NAME}"
WORKDIR /app
COPY hello.sh .
RUN chmod +x hello.sh
CMD ["./hello.sh"]
`
	res, err := dockerfile.Parse(strings.NewReader(src))
	if err != nil {
		fmt.Println(err)
		return
	}
	df, err := dockerfile.ParseStages(res)
	if err != nil {
		fmt.Println(err)
		return
	}
	ev, _ := dockerfile.NewEvaluator(df, map[string]string{"NAME": "cais"})
	base, _, _, _ := ev.Base(0)
	fmt.Println("FROM", base)
	// The builder would fetch busybox's config here.
	plan, err := ev.Eval(0, dockerfile.Config{Env: []string{"PATH=/bin"}, Cmd: []string{"sh"}})
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, s := range plan.Steps {
		switch s.Kind {
		case dockerfile.StepRun:
			fmt.Printf("run %q env %q\n", s.Args, s.Env)
		case dockerfile.StepCopy:
			fmt.Printf("copy %q to %s\n", s.Copy.Sources, s.Copy.Dest)
		case dockerfile.StepWorkdir:
			fmt.Println("mkdir", s.Config.WorkingDir)
		}
	}
	fmt.Printf("env %q cmd %q\n", plan.Config.Env, plan.Config.Cmd)

	_, err = dockerfile.Parse(strings.NewReader("FROM busybox\nRUN true\nFOO bar\n"))
	fmt.Println(err)
	// Output:
	// FROM busybox
	// mkdir /app
	// copy ["hello.sh"] to /app/
	// run ["/bin/sh" "-c" "chmod +x hello.sh"] env ["PATH=/bin" "GREETING=hello cais" "NAME=cais"]
	// env ["PATH=/bin" "GREETING=hello cais"] cmd ["./hello.sh"]
	// dockerfile parse error line 3: unknown instruction: FOO
}

package fop

import (
	"strings"
	"sync/atomic"
	"testing"
)

func TestGroupWaitsAndRaisesPanics(t *testing.T) {
	var g Group
	var n atomic.Int32
	for range 4 {
		g.Go(func() { n.Add(1) })
	}
	g.Wait()
	if n.Load() != 4 {
		t.Fatalf("%d calls ran before Wait returned, want 4", n.Load())
	}

	var g2 Group
	g2.Go(func() { n.Add(1) })
	g2.Go(func() {
		var m map[string]int
		m["x"]++
	})
	got := func() (r any) {
		defer func() { r = recover() }()
		g2.Wait()
		return nil
	}()
	s, _ := got.(string)
	if !strings.Contains(s, "assignment to entry in nil map") || !strings.Contains(s, "TestGroupWaitsAndRaisesPanics") {
		t.Fatalf("Wait's panic: %v", got)
	}
	if n.Load() != 5 {
		t.Fatalf("the other call did not run: %d", n.Load())
	}
}

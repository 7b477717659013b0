package pathcache

import (
	"testing"
	"time"
)

func TestFreshnessTakeAndBound(t *testing.T) {
	c := New[int](50*time.Millisecond, 3)
	c.Put("a", 1)
	if v, ok := c.Get("a"); !ok || v != 1 {
		t.Fatalf("Get a = %d %v", v, ok)
	}
	if v, ok := c.Take("a"); !ok || v != 1 {
		t.Fatalf("Take a = %d %v", v, ok)
	}
	if _, ok := c.Get("a"); ok {
		t.Fatal("a still there after Take")
	}
	c.Put("b", 2)
	time.Sleep(60 * time.Millisecond)
	if _, ok := c.Get("b"); ok {
		t.Fatal("b served after its TTL")
	}
	for i, p := range []string{"x", "y", "z", "w"} {
		c.Put(p, i)
	}
	if _, ok := c.Get("x"); ok {
		t.Fatal("the cache grew past its bound")
	}
	if v, ok := c.Get("w"); !ok || v != 3 {
		t.Fatalf("w = %d %v", v, ok)
	}
	c.Forget("w")
	if _, ok := c.Get("w"); ok {
		t.Fatal("w after Forget")
	}
	c.Put("v", 9)
	c.Clear()
	if _, ok := c.Get("v"); ok {
		t.Fatal("v after Clear")
	}
}

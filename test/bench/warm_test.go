package main

import "testing"

func TestHasFeature(t *testing.T) {
	// The features of this machine's balloon: bits 1, 2 and 5 set.
	const f = "01100101000000000000000000000000100000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000\n"
	for bit, want := range map[int]bool{0: false, 1: true, 2: true, 3: false, 5: true, 32: true, 200: false} {
		if got := hasFeature(f, bit); got != want {
			t.Errorf("bit %d: %v, want %v", bit, got, want)
		}
	}
	if hasFeature("", 0) {
		t.Error("an empty features file has no bit")
	}
}

func TestParseMemAvailable(t *testing.T) {
	got, err := parseMemAvailable([]byte("MemTotal:       24683840 kB\nMemFree:        22056972 kB\nMemAvailable:   23001212 kB\n"))
	if err != nil || got != 23001212<<10 {
		t.Fatalf("got %d, %v", got, err)
	}
	if _, err := parseMemAvailable([]byte("MemTotal: 1 kB\n")); err == nil {
		t.Fatal("no MemAvailable line: want an error")
	}
	if _, err := parseMemAvailable([]byte("MemAvailable: x kB\n")); err == nil {
		t.Fatal("a bad number: want an error")
	}
}

func TestWarmMemory(t *testing.T) {
	if err := warmMemory(8 << 20); err != nil {
		t.Fatal(err)
	}
}

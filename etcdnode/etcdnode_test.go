package etcdnode_test

import (
	"path/filepath"
	"slices"
	"testing"

	"github.com/cais-platform/cais/etcdnode"
)

func voter(id uint64, name string) etcdnode.Member {
	return etcdnode.Member{ID: id, Name: name,
		PeerURLs:   []string{"https://peer-" + name + ":2380"},
		ClientURLs: []string{"https://client-" + name + ":2379"}}
}

func learner(id uint64, name string) etcdnode.Member {
	m := voter(id, name)
	m.Learner = true
	return m
}

func TestPlanPromotion(t *testing.T) {
	tests := []struct {
		name    string
		members []etcdnode.Member
		voters  int
		want    uint64
		wantOK  bool
	}{
		{"lowest started learner", []etcdnode.Member{voter(1, "a"), voter(2, "b"), learner(9, "i"), learner(5, "e"), learner(7, "g")}, 3, 5, true},
		{"unstarted learner skipped", []etcdnode.Member{voter(1, "a"), learner(3, ""), learner(8, "h")}, 3, 8, true},
		{"only unstarted learners", []etcdnode.Member{voter(1, "a"), learner(3, ""), learner(4, "")}, 3, 0, false},
		{"enough voters", []etcdnode.Member{voter(1, "a"), voter(2, "b"), voter(3, "c"), learner(4, "d")}, 3, 0, false},
		{"more voters than wanted", []etcdnode.Member{voter(1, "a"), voter(2, "b"), voter(3, "c"), learner(4, "d")}, 1, 0, false},
		{"no learners", []etcdnode.Member{voter(1, "a")}, 3, 0, false},
		{"single node pool grows", []etcdnode.Member{voter(10, "a"), learner(2, "b")}, 3, 2, true},
		{"voter added but not started counts", []etcdnode.Member{voter(1, "a"), voter(2, ""), learner(3, "c")}, 2, 0, false},
		{"nothing", nil, 3, 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := slices.Clone(tt.members)
			id, ok := etcdnode.PlanPromotion(in, tt.voters)
			if id != tt.want || ok != tt.wantOK {
				t.Errorf("PlanPromotion = %x, %v; want %x, %v", id, ok, tt.want, tt.wantOK)
			}
			if !slices.EqualFunc(in, tt.members, func(a, b etcdnode.Member) bool { return a.ID == b.ID }) {
				t.Error("PlanPromotion reordered its input")
			}
		})
	}
}

// TestPlanPromotionSameOnEveryNode: the pick does not depend on the order
// the member list comes in.
func TestPlanPromotionSameOnEveryNode(t *testing.T) {
	ms := []etcdnode.Member{voter(1, "a"), learner(40, "d"), learner(30, "c"), learner(35, ""), learner(50, "e")}
	want, ok := etcdnode.PlanPromotion(ms, 5)
	if !ok || want != 30 {
		t.Fatalf("PlanPromotion = %d, %v; want 30", want, ok)
	}
	for i := range ms {
		rot := append(slices.Clone(ms[i:]), ms[:i]...)
		if got, _ := etcdnode.PlanPromotion(rot, 5); got != want {
			t.Errorf("rotation %d picks %d, want %d", i, got, want)
		}
	}
}

func TestInitialCluster(t *testing.T) {
	ms := []etcdnode.Member{
		voter(3, "node-c"),
		{ID: 7, PeerURLs: []string{"https://10.0.0.7:2380"}, Learner: true},             // the new member: no name yet
		{ID: 8, PeerURLs: []string{"https://10.0.0.8:2380"}, Learner: true},             // added earlier, never started
		{ID: 1, Name: "node-a", PeerURLs: []string{"https://b:2380", "https://a:2380"}}, // two peer URLs
	}
	got := etcdnode.InitialCluster(ms, 7, "node-new")
	want := "node-a=https://a:2380,node-a=https://b:2380,node-c=https://peer-node-c:2380,node-new=https://10.0.0.7:2380"
	if got != want {
		t.Errorf("InitialCluster =\n  %s\nwant\n  %s", got, want)
	}
	// The new member's name wins even if etcd reported one.
	ms[1].Name = "stale"
	if got := etcdnode.InitialCluster(ms, 7, "node-new"); got != want {
		t.Errorf("InitialCluster with a stale name = %s", got)
	}
	if got := etcdnode.InitialCluster(nil, 7, "x"); got != "" {
		t.Errorf("InitialCluster(nil) = %q", got)
	}
}

func TestVoterClientURLs(t *testing.T) {
	ms := []etcdnode.Member{
		voter(2, "b"),
		learner(3, "c"),
		{ID: 4, Name: "", ClientURLs: []string{"https://unstarted:2379"}}, // voter added, not started
		{ID: 1, Name: "a", ClientURLs: []string{"https://a2:2379", "https://a1:2379"}},
	}
	got := etcdnode.VoterClientURLs(ms)
	want := []string{"https://a1:2379", "https://a2:2379", "https://client-b:2379"}
	if !slices.Equal(got, want) {
		t.Errorf("VoterClientURLs = %v, want %v", got, want)
	}
	if got := etcdnode.VoterClientURLs([]etcdnode.Member{learner(1, "a")}); len(got) != 0 {
		t.Errorf("VoterClientURLs of learners only = %v", got)
	}
}

func TestURLs(t *testing.T) {
	tests := []struct {
		addr string
		port int
		want string
	}{
		{"10.0.0.1", 2379, "https://10.0.0.1:2379"},
		{"node1.example.com", 2380, "https://node1.example.com:2380"},
		{"fe80::1", 2380, "https://[fe80::1]:2380"},
	}
	for _, tt := range tests {
		if got := etcdnode.ClientURL(tt.addr, tt.port); got != tt.want {
			t.Errorf("ClientURL(%s, %d) = %s, want %s", tt.addr, tt.port, got, tt.want)
		}
		if got := etcdnode.PeerURL(tt.addr, tt.port); got != tt.want {
			t.Errorf("PeerURL(%s, %d) = %s, want %s", tt.addr, tt.port, got, tt.want)
		}
	}
	if got := etcdnode.DataDir("/var/lib/cais"); got != filepath.Join("/var/lib/cais", "etcd") {
		t.Errorf("DataDir = %s", got)
	}
}
